package isolation

import (
	"net/netip"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

func TestInertRules(t *testing.T) {
	t.Parallel()
	podNetwork := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00::/48")}
	block := func(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
	}
	const inert = " overlaps the pod network, where other tenants' pods may run: it opens nothing to them, kplex never lets traffic between tenants"
	for _, tc := range []struct {
		name   string
		policy *networkingv1.NetworkPolicy
		want   []string
	}{{
		name: "selectors and addresses outside the pod network say nothing",
		policy: testPolicy("acme", "default", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: selector()}, {NamespaceSelector: selector()}, block("192.0.2.0/24"), block("2001:db8::/64"),
			}}},
		}),
	}, {
		name: "ipBlocks in the pod network, either family",
		policy: testPolicy("acme", "default", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{}, {From: []networkingv1.NetworkPolicyPeer{{PodSelector: selector()}, block("0.0.0.0/0")}}},
			Egress:  []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{block("fd00::1/128")}}},
		}),
		want: []string{
			"spec.ingress[1].from[1].ipBlock 0.0.0.0/0" + inert,
			"spec.egress[0].to[0].ipBlock fd00::1/128" + inert,
		},
	}, {
		name: "except can carve the pod network out",
		policy: testPolicy("acme", "default", "p", networkingv1.NetworkPolicySpec{
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{block("10.0.0.0/8", "10.244.0.0/16")}}},
		}),
	}, {
		name: "an ipBlock that does not parse",
		policy: testPolicy("acme", "default", "p", networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{block("10.244.0.0")}}},
		}),
		want: []string{`spec.ingress[0].from[0].ipBlock: ipBlock cidr "10.244.0.0": netip.ParsePrefix("10.244.0.0"): no '/'; the peer matches nothing`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := InertRules(tc.policy, podNetwork); !slices.Equal(got, tc.want) {
				t.Errorf("InertRules =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}
