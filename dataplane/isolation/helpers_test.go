package isolation

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/knftables"

	"github.com/kplex/kplex/tenant"
)

// testPod is a pod of tenant t in namespace ns with one or more IPs and
// labels given as "k=v" pairs.
func testPod(t, ns, name string, ips []string, lbls ...string) Pod {
	p := Pod{Tenant: t, Namespace: ns, Name: name, Labels: map[string]string{}}
	for _, ip := range ips {
		p.IPs = append(p.IPs, netip.MustParseAddr(ip))
	}
	for _, l := range lbls {
		k, v, _ := strings.Cut(l, "=")
		p.Labels[k] = v
	}
	return p
}

func withPorts(p Pod, ports ...corev1.ContainerPort) Pod {
	p.Ports = ports
	return p
}

func testPolicy(t, ns, name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{tenant.Annotation: t}},
		Spec:       spec,
	}
}

func selector(lbls ...string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for _, l := range lbls {
		k, v, _ := strings.Cut(l, "=")
		s.MatchLabels[k] = v
	}
	return s
}

func port(proto corev1.Protocol, p intstr.IntOrString, end ...int32) networkingv1.NetworkPolicyPort {
	np := networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
	if len(end) > 0 {
		np.EndPort = &end[0]
	}
	return np
}

var (
	ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
)

// syncFake runs one Sync of snap against a fresh fake table.
func syncFake(t *testing.T, snap Snapshot) *knftables.Fake {
	t.Helper()
	fake := knftables.NewFake(knftables.InetFamily, Table)
	if err := New(fake).Sync(context.Background(), snap); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return fake
}

// rules lists a fake chain's rules without comments; nil if it is absent.
func rules(fake *knftables.Fake, chain string) []string {
	c := fake.Table.Chains[chain]
	if c == nil {
		return nil
	}
	out := []string{}
	for _, r := range c.Rules {
		out = append(out, r.Rule)
	}
	return out
}

// elements lists a fake set's or map's elements as "key" or "key : value",
// sorted; nil if it is absent.
func elements(fake *knftables.Fake, name string) []string {
	var els []*knftables.Element
	if s := fake.Table.Sets[name]; s != nil {
		els = s.Elements
	} else if m := fake.Table.Maps[name]; m != nil {
		els = m.Elements
	} else {
		return nil
	}
	out := []string{}
	for _, e := range els {
		s := strings.Join(e.Key, " . ")
		if len(e.Value) > 0 {
			s += " : " + strings.Join(e.Value, " . ")
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// richSnapshot uses every feature once: two tenants with identical pods and
// namespaces, dual-stack pods, every peer kind, numeric, ranged and named
// ports, ingress and egress, a fenced pod and a contested IP.
func richSnapshot() Snapshot {
	http := corev1.ContainerPort{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}
	dns := corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}
	snap := Snapshot{
		Namespaces: []Namespace{
			{Tenant: "acme", Name: "default", Labels: map[string]string{"team": "web"}},
			{Tenant: "acme", Name: "ops", Labels: map[string]string{"team": "ops"}},
			{Tenant: "beta", Name: "default", Labels: map[string]string{"team": "web"}},
			{Tenant: "beta", Name: "ops", Labels: map[string]string{"team": "ops"}},
		},
	}
	for i, t := range []string{"acme", "beta"} {
		n := 10 * (i + 1)
		ip := func(k int) []string {
			return []string{fmt.Sprintf("10.244.1.%d", n+k), fmt.Sprintf("fd00:10:244:1::%d", n+k)}
		}
		snap.Pods = append(snap.Pods,
			withPorts(testPod(t, "default", "web", ip(1), "app=web"), http),
			testPod(t, "default", "client", ip(2), "app=client"),
			withPorts(testPod(t, "ops", "monitor", ip(3), "app=monitor"), dns),
		)
	}
	// The longest names the API allows still make valid nft identifiers.
	long := strings.Repeat("t", 62) + "1"
	snap.Pods = append(snap.Pods, testPod(long, strings.Repeat("n", 63), "p", []string{"10.244.3.1", "fd00:10:244:3::1"}))
	snap.Policies = append(snap.Policies, testPolicy(long, strings.Repeat("n", 63), strings.Repeat("p", 253), networkingv1.NetworkPolicySpec{
		Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolUDP, intstr.FromInt32(53))}}},
	}))
	snap.Pods = append(snap.Pods,
		testPod("", "default", "orphan", []string{"10.244.2.9"}),
		testPod("acme", "default", "stale", []string{"10.244.2.10"}),
		testPod("beta", "default", "reuser", []string{"10.244.2.10"}),
	)
	for _, t := range []string{"acme", "beta"} {
		snap.Policies = append(snap.Policies,
			testPolicy(t, "default", "web", networkingv1.NetworkPolicySpec{
				PodSelector: *selector("app=web"),
				PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{
					{From: []networkingv1.NetworkPolicyPeer{{PodSelector: selector("app=client")}},
						Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolTCP, intstr.FromString("http"))}},
					{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: selector("team=ops"), PodSelector: selector("app=monitor")}},
						Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolTCP, intstr.FromInt32(9000), 9100), port(corev1.ProtocolSCTP, intstr.FromInt32(7))}},
					{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}},
						{IPBlock: &networkingv1.IPBlock{CIDR: "2001:db8::/32", Except: []string{"2001:db8:1::/48"}}}}},
				},
			}),
			testPolicy(t, "default", "client", networkingv1.NetworkPolicySpec{
				PodSelector: *selector("app=client"),
				PolicyTypes: egressOnly,
				Egress: []networkingv1.NetworkPolicyEgressRule{
					{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: selector()}},
						Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolUDP, intstr.FromString("dns"))}},
					{To: []networkingv1.NetworkPolicyPeer{{PodSelector: selector("app=web")}}},
				},
			}),
		)
	}
	return snap
}
