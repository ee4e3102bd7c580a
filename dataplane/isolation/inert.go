package isolation

import (
	"fmt"
	"net/netip"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kplex/kplex/client/crosstenant"
)

// Granularity of InertRules: the block around each other tenant's pod that
// counts as covered. Reporting exact addresses would let a tenant learn,
// one /32 ipBlock at a time, which addresses other tenants' pods hold;
// blocks the size of a node's pod range tell it little more than that
// nodes are shared.
const (
	inertBits4 = 24
	inertBits6 = 64
)

// InertRules explains the parts of policy that can never take effect because
// kplex isolates tenants first: ipBlock peers that cover addresses where
// other tenants' pods run (their traffic stays dropped whatever the policy
// says), and ipBlocks that do not parse. Each message names the field and
// says why, for the caller to emit as a Warning event on the policy. The
// messages name no other tenant or pod.
func InertRules(policy *networkingv1.NetworkPolicy, snap Snapshot) []string {
	t := crosstenant.TenantOf(policy)
	foreign := map[netip.Prefix]bool{}
	for _, p := range snap.Pods {
		if p.Tenant == t && validTenant(t) {
			continue
		}
		for _, a := range p.IPs {
			a = a.Unmap()
			bits := inertBits6
			if a.Is4() {
				bits = inertBits4
			}
			if b, err := a.Prefix(bits); err == nil {
				foreign[b] = true
			}
		}
	}
	covers := func(rs []ipRange) bool {
		for b := range foreign {
			br := prefixRange(b)
			for _, r := range rs {
				if r.lo.Is4() == br.lo.Is4() && r.lo.Compare(br.hi) <= 0 && br.lo.Compare(r.hi) <= 0 {
					return true
				}
			}
		}
		return false
	}
	var out []string
	check := func(field string, peers []networkingv1.NetworkPolicyPeer) {
		for j, peer := range peers {
			if peer.IPBlock == nil {
				continue
			}
			path := fmt.Sprintf("%s[%d].ipBlock", field, j)
			rs, err := ipBlockRanges(peer.IPBlock)
			switch {
			case err != nil:
				out = append(out, fmt.Sprintf("%s: %v; the peer matches nothing", path, err))
			case covers(rs):
				out = append(out, fmt.Sprintf("%s %s covers addresses where other tenants' pods run; kplex never opens traffic between tenants", path, peer.IPBlock.CIDR))
			}
		}
	}
	for i, r := range policy.Spec.Ingress {
		check(fmt.Sprintf("spec.ingress[%d].from", i), r.From)
	}
	for i, r := range policy.Spec.Egress {
		check(fmt.Sprintf("spec.egress[%d].to", i), r.To)
	}
	return out
}
