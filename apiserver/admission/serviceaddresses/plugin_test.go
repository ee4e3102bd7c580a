package serviceaddresses

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/admission"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	api "k8s.io/kubernetes/pkg/apis/core"

	"github.com/kplex/kplex/tenant"
)

func testPlugin(t *testing.T) *Plugin {
	t.Helper()
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "192.168.1.10"},
		{Type: corev1.NodeExternalIP, Address: "198.51.100.1"},
		{Type: corev1.NodeInternalIP, Address: "2001:db8:1::10"},
		{Type: corev1.NodeHostName, Address: "192.168.1.99"},
	}}}
	if err := indexer.Add(node); err != nil {
		t.Fatal(err)
	}
	p := New()
	p.nodes = corev1listers.NewNodeLister(indexer)
	p.SetNetworks(Networks{
		Pods:     []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/56")},
		Services: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00:10:96::/112")},
	})
	if err := p.ValidateInitialization(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	t.Parallel()
	p := testPlugin(t)
	ext := func(ips ...string) *api.Service { return &api.Service{Spec: api.ServiceSpec{ExternalIPs: ips}} }
	lb := func(ip string) *api.Service { return &api.Service{Spec: api.ServiceSpec{LoadBalancerIP: ip}} }
	ingress := func(in ...api.LoadBalancerIngress) *api.Service {
		return &api.Service{Status: api.ServiceStatus{LoadBalancer: api.LoadBalancerStatus{Ingress: in}}}
	}
	tests := []struct {
		name, tenant, subresource string
		svc                       *api.Service
		want                      string // in the refusal; "" accepts
	}{
		{"external IP outside every range", "a", "", ext("203.0.113.7"), ""},
		{"external IP in the pod network", "a", "", ext("10.244.3.4"), `spec.externalIPs[0]: Invalid value: "10.244.3.4": must not be an address of the cluster's pod network (10.244.0.0/16); ` + why},
		{"second external IP in the pod network", "a", "", ext("203.0.113.7", "10.244.1.5"), "spec.externalIPs[1]"},
		{"external IP in the service network", "a", "", ext("10.96.0.10"), "service network (10.96.0.0/12)"},
		{"external IP just past the service network", "a", "", ext("10.112.0.1"), ""},
		{"external IP a node's InternalIP", "a", "", ext("192.168.1.10"), "spec.externalIPs[0]: Invalid value: \"192.168.1.10\": must not be a node's address"},
		{"external IP a node's ExternalIP", "a", "", ext("198.51.100.1"), "a node's address"},
		{"external IP a node's host name address", "a", "", ext("192.168.1.99"), ""},
		{"external IP with leading zeros", "a", "", ext("010.244.001.005"), "pod network"},
		{"external IP IPv4-mapped", "a", "", ext("::ffff:10.244.1.5"), "pod network"},
		{"IPv6 external IP in the pod network", "a", "", ext("fd00:10:244::5"), "pod network (fd00:10:244::/56)"},
		{"IPv6 external IP in the service network", "a", "", ext("fd00:10:96::a"), "service network (fd00:10:96::/112)"},
		{"IPv6 external IP a node's", "a", "", ext("2001:db8:1::10"), "a node's address"},
		{"IPv6 external IP outside every range", "a", "", ext("2001:db8::1"), ""},
		{"load balancer IP in the service network", "a", "", lb("10.96.5.5"), "spec.loadBalancerIP: Invalid value"},
		{"load balancer IP in the pod network", "a", "", lb("10.244.0.1"), "spec.loadBalancerIP"},
		{"load balancer IP a node's", "a", "", lb("192.168.1.10"), "spec.loadBalancerIP"},
		{"load balancer IP outside", "a", "", lb("203.0.113.8"), ""},
		{"ingress IP in the pod network", "a", "status", ingress(api.LoadBalancerIngress{IP: "203.0.113.9"}, api.LoadBalancerIngress{IP: "10.244.2.2"}), "status.loadBalancer.ingress[1].ip"},
		{"IPv6 ingress IP a node's", "a", "status", ingress(api.LoadBalancerIngress{IP: "2001:db8:1::10"}), "status.loadBalancer.ingress[0].ip"},
		{"ingress IP outside", "a", "status", ingress(api.LoadBalancerIngress{IP: "203.0.113.9"}), ""},
		{"ingress host name", "a", "status", ingress(api.LoadBalancerIngress{Hostname: "lb.example.com"}), ""},
		{"ingress is the status subresource's", "a", "", ingress(api.LoadBalancerIngress{IP: "10.244.2.2"}), ""},
		{"spec is the main resource's", "a", "status", ext("10.244.3.4"), ""},
		{"root is exempt", tenant.Root, "", ext("10.244.3.4", "192.168.1.10"), ""},
		{"root's status is exempt", tenant.Root, "status", ingress(api.LoadBalancerIngress{IP: "10.96.0.1"}), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.svc.Name, tc.svc.Namespace = "web", "default"
			a := admission.NewAttributesRecord(tc.svc, nil, api.SchemeGroupVersion.WithKind("Service"), "default", "web",
				api.SchemeGroupVersion.WithResource("services"), tc.subresource, admission.Create, &metav1.CreateOptions{}, false, nil)
			err := p.Validate(tenant.WithTenant(context.Background(), tc.tenant), a, nil)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want == "":
			case !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), `Service "web" is invalid: `):
				t.Errorf("got %v, want 422 Invalid naming %q", err, tc.want)
			}
		})
	}
}

func TestPrefixes(t *testing.T) {
	t.Parallel()
	_, v4, _ := net.ParseCIDR("10.96.0.0/12")
	_, v6, _ := net.ParseCIDR("fd00::/108")
	wide := &net.IPNet{IP: net.ParseIP("10.244.0.0"), Mask: net.CIDRMask(112, 128)}
	got := Prefixes(v4, nil, &net.IPNet{}, v6, wide)
	want := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00::/108"), netip.MustParsePrefix("10.244.0.0/16")}
	if !slices.Equal(got, want) {
		t.Errorf("Prefixes = %v, want %v", got, want)
	}
}
