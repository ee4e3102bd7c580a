package isolation

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// pid is the id compile gives a tenant's only policy ns/name.
func pid(ns, name string) string { return policyID(ns, name, map[string]bool{}) }

func TestSyncRules(t *testing.T) {
	t.Parallel()
	web := func(tn string, ips ...string) Pod { return testPod(tn, "default", "web", ips, "app=web") }
	client := func(tn string, ips ...string) Pod { return testPod(tn, "default", "client", ips, "app=client") }
	onlyWeb := func(tn string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
		spec.PodSelector = *selector("app=web")
		return testPolicy(tn, "default", "p", spec)
	}
	id := pid("default", "p")
	pods4 := "policy-acme-" + id + "-pods4"
	set := func(d direction, rule int, what, suffix string) string {
		return ruleSet(d, "acme", id, rule, what, suffix)
	}

	for _, tc := range []struct {
		name string
		snap Snapshot
		// want lists chains (by name) and sets or maps (by name) with their
		// rules or elements; nil means "must not exist".
		wantRules    map[string][]string
		wantElements map[string][]string
	}{{
		name: "two tenants, no policy",
		snap: Snapshot{Pods: []Pod{web("acme", "10.0.0.1", "fd00::1"), web("beta", "10.0.0.2")}},
		wantRules: map[string][]string{
			"tenant-acme":  {"ip daddr @pods4 ip daddr != @tenant-acme-pods4 drop", "ip6 daddr @pods6 ip6 daddr != @tenant-acme-pods6 drop"},
			"tenant-beta":  {"ip daddr @pods4 ip daddr != @tenant-beta-pods4 drop"},
			"ingress-acme": nil,
		},
		wantElements: map[string][]string{
			"pods4":             {"10.0.0.1", "10.0.0.2"},
			"tenants4":          {"10.0.0.1 : jump tenant-acme", "10.0.0.2 : jump tenant-beta"},
			"tenants6":          {"fd00::1 : jump tenant-acme"},
			"tenant-acme-pods4": {"10.0.0.1"},
			"tenant-beta-pods4": {"10.0.0.2"},
			"tenant-beta-pods6": nil,
			"ingress4":          {},
		},
	}, {
		name: "default deny ingress isolates the namespace's pods only",
		snap: Snapshot{
			Pods: []Pod{web("acme", "10.0.0.1"), client("acme", "10.0.0.2"), testPod("acme", "other", "x", []string{"10.0.0.3"}), web("beta", "10.0.0.4")},
			Policies: []*networkingv1.NetworkPolicy{testPolicy("acme", "default", "deny", networkingv1.NetworkPolicySpec{
				PolicyTypes: ingressOnly,
			})},
		},
		wantRules: map[string][]string{"ingress-acme": {"drop"}, "egress-acme": nil, "ingress-beta": nil},
		wantElements: map[string][]string{
			"ingress4": {"10.0.0.1 : jump ingress-acme", "10.0.0.2 : jump ingress-acme"},
			"egress4":  {},
		},
	}, {
		name: "allow all ingress",
		snap: Snapshot{
			Pods: []Pod{web("acme", "10.0.0.1")},
			Policies: []*networkingv1.NetworkPolicy{onlyWeb("acme", networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{{}},
			})},
		},
		wantRules: map[string][]string{"ingress-acme": {"ip daddr @" + pods4 + " return", "drop"}},
	}, {
		name: "podSelector peer and port",
		snap: Snapshot{
			Pods: []Pod{web("acme", "10.0.0.1"), client("acme", "10.0.0.2"), client("beta", "10.0.0.3")},
			Policies: []*networkingv1.NetworkPolicy{onlyWeb("acme", networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: selector("app=client")}},
					Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolTCP, intstr.FromInt32(80))},
				}},
			})},
		},
		wantRules: map[string][]string{"ingress-acme": {
			"ip daddr @" + pods4 + " ip saddr @" + set(ingress, 0, "peers", "4") + " meta l4proto . th dport @" + set(ingress, 0, "ports", "") + " return",
			"drop",
		}},
		wantElements: map[string][]string{
			pods4:                         {"10.0.0.1"},
			set(ingress, 0, "peers", "4"): {"10.0.0.2"},
			set(ingress, 0, "ports", ""):  {"tcp . 80"},
		},
	}, {
		name: "namespaceSelector sees only the tenant's namespaces",
		snap: Snapshot{
			Namespaces: []Namespace{
				{Tenant: "acme", Name: "ops", Labels: map[string]string{"team": "ops"}},
				{Tenant: "beta", Name: "ops", Labels: map[string]string{"team": "ops"}},
			},
			Pods: []Pod{web("acme", "10.0.0.1"), testPod("acme", "ops", "m", []string{"10.0.1.1"}), testPod("beta", "ops", "m", []string{"10.0.2.1"})},
			Policies: []*networkingv1.NetworkPolicy{onlyWeb("acme", networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: selector("team=ops")}}}},
			})},
		},
		wantElements: map[string][]string{set(ingress, 0, "peers", "4"): {"10.0.1.1"}},
	}, {
		name: "namespaceSelector by metadata.name without a Namespace object",
		snap: Snapshot{
			Pods: []Pod{web("acme", "10.0.0.1"), testPod("acme", "ops", "m", []string{"10.0.1.1"})},
			Policies: []*networkingv1.NetworkPolicy{onlyWeb("acme", networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: selector("kubernetes.io/metadata.name=ops")}}}},
			})},
		},
		wantElements: map[string][]string{set(ingress, 0, "peers", "4"): {"10.0.1.1"}},
	}, {
		name: "pod and namespace selectors combined",
		snap: Snapshot{
			Namespaces: []Namespace{{Tenant: "acme", Name: "ops", Labels: map[string]string{"team": "ops"}}},
			Pods: []Pod{
				web("acme", "10.0.0.1"),
				testPod("acme", "ops", "m", []string{"10.0.1.1"}, "app=monitor"),
				testPod("acme", "ops", "other", []string{"10.0.1.2"}, "app=other"),
				testPod("acme", "default", "m", []string{"10.0.0.9"}, "app=monitor"),
			},
			Policies: []*networkingv1.NetworkPolicy{onlyWeb("acme", networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: selector("team=ops"), PodSelector: selector("app=monitor"),
				}}}},
			})},
		},
		wantElements: map[string][]string{set(ingress, 0, "peers", "4"): {"10.0.1.1"}},
	}, {
		name: "ipBlock with except, per family",
		snap: Snapshot{
			Pods: []Pod{web("acme", "10.0.0.1", "fd00::1")},
			Policies: []*networkingv1.NetworkPolicy{onlyWeb("acme", networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
					{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/22", Except: []string{"192.168.1.0/24", "192.168.2.128/25"}}},
				}}},
			})},
		},
		wantRules: map[string][]string{"ingress-acme": {
			"ip daddr @" + pods4 + " ip saddr @" + set(ingress, 0, "peers", "4") + " return",
			"drop", // nothing of IPv6 is allowed
		}},
		wantElements: map[string][]string{
			set(ingress, 0, "peers", "4"): {"192.168.0.0/24", "192.168.2.0/25", "192.168.3.0/24"},
			set(ingress, 0, "peers", "6"): nil,
			"ingress6":                    {"fd00::1 : jump ingress-acme"},
		},
	}, {
		name: "named port resolves on each destination pod",
		snap: Snapshot{
			Pods: []Pod{
				withPorts(web("acme", "10.0.0.1"), corev1.ContainerPort{Name: "http", ContainerPort: 8080}),
				withPorts(testPod("acme", "default", "web-2", []string{"10.0.0.2"}, "app=web"), corev1.ContainerPort{Name: "http", ContainerPort: 8081}, corev1.ContainerPort{Name: "http", ContainerPort: 8081, Protocol: corev1.ProtocolUDP}),
				testPod("acme", "default", "web-3", []string{"10.0.0.3"}, "app=web"),
			},
			Policies: []*networkingv1.NetworkPolicy{onlyWeb("acme", networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolTCP, intstr.FromString("http"))}}},
			})},
		},
		wantRules: map[string][]string{"ingress-acme": {
			"ip daddr . meta l4proto . th dport @" + set(ingress, 0, "named", "4") + " return",
			"drop",
		}},
		wantElements: map[string][]string{set(ingress, 0, "named", "4"): {"10.0.0.1 . tcp . 8080", "10.0.0.2 . tcp . 8081"}},
	}, {
		name: "egress named port resolves on the peers",
		snap: Snapshot{
			Pods: []Pod{
				web("acme", "10.0.0.1"),
				withPorts(client("acme", "10.0.0.2"), corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}),
				withPorts(testPod("acme", "default", "dns-elsewhere", []string{"10.0.9.9"}), corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}),
				withPorts(client("beta", "10.0.0.3"), corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}),
			},
			Policies: []*networkingv1.NetworkPolicy{onlyWeb("acme", networkingv1.NetworkPolicySpec{
				PolicyTypes: egressOnly,
				Egress: []networkingv1.NetworkPolicyEgressRule{{
					To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/24"}}},
					Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolUDP, intstr.FromString("dns"))},
				}},
			})},
		},
		wantRules: map[string][]string{
			"egress-acme":  {"ip saddr @" + pods4 + " ip daddr . meta l4proto . th dport @" + set(egress, 0, "named", "4") + " return", "drop"},
			"ingress-acme": nil,
		},
		wantElements: map[string][]string{
			set(egress, 0, "named", "4"): {"10.0.0.2 . udp . 53"},
			"egress4":                    {"10.0.0.1 : jump egress-acme"},
		},
	}, {
		name: "endPort ranges and overlapping ports merge",
		snap: Snapshot{
			Pods: []Pod{web("acme", "10.0.0.1")},
			Policies: []*networkingv1.NetworkPolicy{onlyWeb("acme", networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
					port(corev1.ProtocolTCP, intstr.FromInt32(8000), 8100),
					port(corev1.ProtocolTCP, intstr.FromInt32(8050), 8200),
					port(corev1.ProtocolTCP, intstr.FromInt32(8201)),
					port(corev1.ProtocolUDP, intstr.FromInt32(8000)),
					{Protocol: ptr(corev1.ProtocolSCTP)},
				}}},
			})},
		},
		wantRules: map[string][]string{"ingress-acme": {
			"ip daddr @" + pods4 + " meta l4proto . th dport @" + set(ingress, 0, "ports", "") + " return",
			"drop",
		}},
		wantElements: map[string][]string{set(ingress, 0, "ports", ""): {"sctp . 0-65535", "tcp . 8000-8201", "udp . 8000"}},
	}, {
		name: "policyTypes default to Ingress, plus Egress when there are egress rules",
		snap: Snapshot{
			Pods: []Pod{web("acme", "10.0.0.1"), client("acme", "10.0.0.2")},
			Policies: []*networkingv1.NetworkPolicy{
				testPolicy("acme", "default", "a", networkingv1.NetworkPolicySpec{PodSelector: *selector("app=web")}),
				testPolicy("acme", "default", "b", networkingv1.NetworkPolicySpec{
					PodSelector: *selector("app=client"),
					Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
				}),
			},
		},
		wantElements: map[string][]string{
			"ingress4": {"10.0.0.1 : jump ingress-acme", "10.0.0.2 : jump ingress-acme"},
			"egress4":  {"10.0.0.2 : jump egress-acme"},
		},
	}, {
		name: "pods without a tenant and IPs two tenants claim are fenced",
		snap: Snapshot{Pods: []Pod{
			web("", "10.0.0.1"), web("Not_A_Tenant", "10.0.0.2"),
			web("acme", "10.0.0.3"), client("beta", "10.0.0.3"), client("acme", "10.0.0.4"),
		}},
		wantElements: map[string][]string{
			"pods4":             {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"},
			"tenants4":          {"10.0.0.1 : drop", "10.0.0.2 : drop", "10.0.0.3 : drop", "10.0.0.4 : jump tenant-acme"},
			"ingress4":          {"10.0.0.1 : drop", "10.0.0.2 : drop", "10.0.0.3 : drop"},
			"tenant-acme-pods4": {"10.0.0.4"},
			"tenant-beta-pods4": nil,
		},
		wantRules: map[string][]string{"tenant-beta": nil},
	}, {
		name: "a policy without a tenant is ignored",
		snap: Snapshot{
			Pods:     []Pod{web("acme", "10.0.0.1")},
			Policies: []*networkingv1.NetworkPolicy{testPolicy("", "default", "p", networkingv1.NetworkPolicySpec{})},
		},
		wantElements: map[string][]string{"ingress4": {}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := syncFake(t, tc.snap)
			for chain, want := range tc.wantRules {
				if got := rules(fake, chain); !slices.Equal(got, want) || (got == nil) != (want == nil) {
					t.Errorf("chain %s:\n got %q\nwant %q", chain, got, want)
				}
			}
			for name, want := range tc.wantElements {
				if got := elements(fake, name); !slices.Equal(got, want) || (got == nil) != (want == nil) {
					t.Errorf("set %s:\n got %q\nwant %q", name, got, want)
				}
			}
			if t.Failed() {
				t.Log(fake.Dump())
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestForwardChainOrder pins the order the model depends on: floods and
// link-local first, the tenant check before the conntrack shortcut, egress
// before ingress.
func TestForwardChainOrder(t *testing.T) {
	t.Parallel()
	got := rules(syncFake(t, Snapshot{}), forwardChain)
	want := []string{
		"fib daddr type { broadcast, multicast } jump neighbour-only",
		"ip6 saddr fe80::/10 jump neighbour-only",
		"ip6 daddr fe80::/10 jump neighbour-only",
		"ip saddr vmap @tenants4",
		"ip6 saddr vmap @tenants6",
		"ct state established,related accept",
		"icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept",
		"ip saddr vmap @egress4",
		"ip6 saddr vmap @egress6",
		"ip daddr vmap @ingress4",
		"ip6 daddr vmap @ingress6",
	}
	if !slices.Equal(got, want) {
		t.Errorf("forward chain:\n got %q\nwant %q", got, want)
	}
}
