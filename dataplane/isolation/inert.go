package isolation

import (
	"fmt"
	"net/netip"

	networkingv1 "k8s.io/api/networking/v1"
)

// InertRules explains the parts of policy that can never take effect because
// kplex isolates tenants first: ipBlock peers that overlap the cluster's pod
// network (podNetwork: every node's pod CIDRs), where other tenants' pods
// may run and stay unreachable whatever the policy says, and ipBlocks that
// do not parse. Each message names the field and says why, for the caller
// to emit as a Warning event on the policy. It depends on the policy and
// the cluster's configuration only: telling where other tenants' pods run
// would let a tenant map them, one ipBlock at a time.
func InertRules(policy *networkingv1.NetworkPolicy, podNetwork []netip.Prefix) []string {
	covers := func(rs []ipRange) bool {
		for _, p := range podNetwork {
			pr := prefixRange(p.Masked())
			for _, r := range rs {
				if r.lo.Is4() == pr.lo.Is4() && r.lo.Compare(pr.hi) <= 0 && pr.lo.Compare(r.hi) <= 0 {
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
				out = append(out, fmt.Sprintf("%s %s overlaps the pod network, where other tenants' pods may run: it opens nothing to them, kplex never lets traffic between tenants", path, peer.IPBlock.CIDR))
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
