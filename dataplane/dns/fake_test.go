package dns

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// fakeRecords holds two tenants, "a" and "b", each with a Service
// default/web of its own ClusterIP. 127.0.0.1 is a pod of tenant a, so
// tests over loopback sockets ask as tenant a.
type fakeRecords struct {
	pods     map[netip.Addr][2]string // tenant, namespace
	services map[string]*corev1.Service
	slices   map[string][]*discoveryv1.EndpointSlice
}

var _ ServiceIPs = (*fakeRecords)(nil)

func key(parts ...string) string { return strings.Join(parts, "/") }

func (f *fakeRecords) PodByIP(ip netip.Addr) (string, string, bool) {
	p, ok := f.pods[ip]
	return p[0], p[1], ok
}

func (f *fakeRecords) Service(tenant, ns, name string) *corev1.Service {
	return f.services[key(tenant, ns, name)]
}

func (f *fakeRecords) EndpointSlices(tenant, ns, svc string) []*discoveryv1.EndpointSlice {
	return f.slices[key(tenant, ns, svc)]
}

func (f *fakeRecords) PodIPInNamespace(tenant, ns string, ip netip.Addr) bool {
	p, ok := f.pods[ip]
	return ok && p == [2]string{tenant, ns}
}

func (f *fakeRecords) ServiceByClusterIP(tenant string, ip netip.Addr) (string, string, bool) {
	for k, svc := range f.services {
		if strings.HasPrefix(k, tenant+"/") && slices.Contains(svc.Spec.ClusterIPs, ip.String()) {
			return svc.Namespace, svc.Name, true
		}
	}
	return "", "", false
}

func (f *fakeRecords) addService(tenant string, svc *corev1.Service, slices ...*discoveryv1.EndpointSlice) {
	f.services[key(tenant, svc.Namespace, svc.Name)] = svc
	f.slices[key(tenant, svc.Namespace, svc.Name)] = slices
}

func service(ns, name string, spec corev1.ServiceSpec) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

func clusterIP(ips ...string) corev1.ServiceSpec {
	return corev1.ServiceSpec{ClusterIP: ips[0], ClusterIPs: ips, Ports: []corev1.ServicePort{
		{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80},
		{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
	}}
}

// ep is a ready endpoint unless ready says otherwise.
func ep(ip, hostname string, ready *bool) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	if hostname != "" {
		e.Hostname = ptr.To(hostname)
	}
	return e
}

func slice(addressType discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{AddressType: addressType, Ports: ports, Endpoints: eps}
}

func newFakeRecords() *fakeRecords {
	f := &fakeRecords{pods: map[netip.Addr][2]string{}, services: map[string]*corev1.Service{}, slices: map[string][]*discoveryv1.EndpointSlice{}}
	for ip, p := range map[string][2]string{
		"127.0.0.1": {"a", "default"},
		"10.1.0.5":  {"a", "default"},
		"fd00::5":   {"a", "default"},
		"10.2.0.5":  {"b", "default"},
		"10.2.0.6":  {"b", "prod"},
	} {
		f.pods[netip.MustParseAddr(ip)] = p
	}
	pg := []discoveryv1.EndpointPort{{Name: ptr.To("pg"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](5432)}}
	headless := corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone}}

	f.addService("a", service("default", "web", clusterIP("10.96.0.20", "fd00:96::20")))
	f.addService("a", service("default", "db", headless),
		slice(discoveryv1.AddressTypeIPv4, pg,
			ep("10.1.0.7", "db-0", ptr.To(true)),
			ep("10.1.0.8", "db-1", ptr.To(false)),
			ep("10.1.0.9", "", nil)),
		slice(discoveryv1.AddressTypeFQDN, pg, ep("db.example.com", "db-x", nil)))
	f.addService("a", service("default", "warm", corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true}),
		slice(discoveryv1.AddressTypeIPv4, nil, ep("10.1.0.10", "", ptr.To(false))))
	f.addService("a", service("default", "empty", headless),
		slice(discoveryv1.AddressTypeIPv4, pg, ep("10.1.0.11", "", ptr.To(false))))
	f.addService("a", service("default", "ext", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}))
	var many []discoveryv1.Endpoint
	for i := range 100 {
		many = append(many, ep(fmt.Sprintf("10.1.1.%d", i), "", nil))
	}
	f.addService("a", service("default", "big", headless), slice(discoveryv1.AddressTypeIPv4, nil, many...))

	f.addService("b", service("default", "web", clusterIP("10.96.0.30")))
	return f
}

// fakeWriter is a dns.ResponseWriter for a client at remote; it checks
// that what is written packs.
type fakeWriter struct {
	t      testing.TB
	remote net.Addr
	msg    *dns.Msg
}

func (w *fakeWriter) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *fakeWriter) RemoteAddr() net.Addr { return w.remote }
func (w *fakeWriter) WriteMsg(m *dns.Msg) error {
	if _, err := m.Pack(); err != nil {
		w.t.Errorf("reply does not pack: %v\n%v", err, m)
	}
	w.msg = m
	return nil
}
func (w *fakeWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("not used") }
func (*fakeWriter) Close() error                { return nil }
func (*fakeWriter) TsigStatus() error           { return nil }
func (*fakeWriter) TsigTimersOnly(bool)         {}
func (*fakeWriter) Hijack()                     {}

// ask sends req to s's ServeDNS from ip over UDP (tcp false) and returns the
// reply.
func ask(t testing.TB, s *Server, ip string, tcp bool, req *dns.Msg) *dns.Msg {
	t.Helper()
	var remote net.Addr = &net.UDPAddr{IP: net.ParseIP(ip), Port: 40000}
	if tcp {
		remote = &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}
	}
	w := &fakeWriter{t: t, remote: remote}
	s.ServeDNS(w, req)
	if w.msg == nil {
		t.Fatalf("no reply to %v", req.Question)
	}
	return w.msg
}

// rdata lists records as "TYPE data", sorted, for comparing answers.
func rdata(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		f := strings.Split(rr.String(), "\t")
		out = append(out, strings.Join(f[3:], " "))
	}
	slices.Sort(out)
	return out
}

func newTestServer(t testing.TB, records Records, upstreams ...string) *Server {
	t.Helper()
	s, err := New(Config{Addresses: []string{"127.0.0.1:0"}, Records: records, Upstreams: upstreams})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
