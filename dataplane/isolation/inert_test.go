package isolation

import (
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

func TestInertRules(t *testing.T) {
	t.Parallel()
	snap := Snapshot{Pods: []Pod{
		testPod("acme", "default", "web", []string{"10.244.1.2", "fd00::2"}),
		testPod("beta", "default", "web", []string{"10.244.2.2", "fd00:0:0:1::2"}),
		testPod("", "default", "orphan", []string{"10.244.3.2"}),
	}}
	block := func(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
	}
	for _, tc := range []struct {
		name   string
		policy *networkingv1.NetworkPolicy
		want   []string
	}{{
		name: "selectors and own pods say nothing",
		policy: testPolicy("acme", "default", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: selector()}, {NamespaceSelector: selector()}, block("10.244.1.0/24"), block("fd00::/112"),
			}}},
		}),
	}, {
		name: "a cluster-wide ipBlock covers other tenants",
		policy: testPolicy("acme", "default", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{}, {From: []networkingv1.NetworkPolicyPeer{{PodSelector: selector()}, block("10.244.0.0/16")}}},
			Egress:  []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{block("fd00::/48")}}},
		}),
		want: []string{
			"spec.ingress[1].from[1].ipBlock 10.244.0.0/16 covers addresses where other tenants' pods run; kplex never opens traffic between tenants",
			"spec.egress[0].to[0].ipBlock fd00::/48 covers addresses where other tenants' pods run; kplex never opens traffic between tenants",
		},
	}, {
		name: "except can carve the other tenants out",
		policy: testPolicy("acme", "default", "p", networkingv1.NetworkPolicySpec{
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{block("10.244.0.0/16", "10.244.2.0/24", "10.244.3.0/24")}}},
		}),
	}, {
		name: "blocks, not addresses: a free address next to another tenant's pod counts",
		policy: testPolicy("acme", "default", "p", networkingv1.NetworkPolicySpec{
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{block("10.244.2.200/32"), block("10.244.4.0/24")}}},
		}),
		want: []string{"spec.egress[0].to[0].ipBlock 10.244.2.200/32 covers addresses where other tenants' pods run; kplex never opens traffic between tenants"},
	}, {
		name: "fenced pods count as other tenants'",
		policy: testPolicy("acme", "default", "p", networkingv1.NetworkPolicySpec{
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{block("10.244.3.0/24")}}},
		}),
		want: []string{"spec.egress[0].to[0].ipBlock 10.244.3.0/24 covers addresses where other tenants' pods run; kplex never opens traffic between tenants"},
	}, {
		name: "an ipBlock that does not parse",
		policy: testPolicy("acme", "default", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{block("10.244.0.0")}}},
		}),
		want: []string{`spec.ingress[0].from[0].ipBlock: ipBlock cidr "10.244.0.0": netip.ParsePrefix("10.244.0.0"): no '/'; the peer matches nothing`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := InertRules(tc.policy, snap); !slices.Equal(got, tc.want) {
				t.Errorf("InertRules =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}
