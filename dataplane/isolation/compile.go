package isolation

import (
	"net/netip"
	"slices"

	"k8s.io/klog/v2"
)

// family is what differs between the IPv4 and the IPv6 half of the ruleset.
type family struct {
	ip     string // payload protocol in rules: "ip" or "ip6"
	addr   string // set key type: "ipv4_addr" or "ipv6_addr"
	suffix string // set name suffix: "4" or "6"
}

var (
	ipv4     = family{ip: "ip", addr: "ipv4_addr", suffix: "4"}
	ipv6     = family{ip: "ip6", addr: "ipv6_addr", suffix: "6"}
	families = []family{ipv4, ipv6}
)

func familyOf(a netip.Addr) family {
	if a.Is4() {
		return ipv4
	}
	return ipv6
}

// direction is the policy type a chain enforces; it also names the chain.
type direction string

const (
	ingress direction = "ingress"
	egress  direction = "egress"
)

// compile turns a Snapshot into the table's desired content.
func compile(logger klog.Logger, snap Snapshot) *ruleset {
	ix := buildIndex(logger, snap)
	rs := newRuleset()
	addForward(rs)
	addTenants(rs, ix)
	addPolicies(logger, rs, ix, snap.Policies)
	return rs
}

// addForward adds the hook chain and the sets and maps it consults. The order
// of its rules is the model: the tenant check runs first and on every packet,
// established connections included, so nothing a tenant writes (and no
// connection that predates a pod's IP moving to another tenant) gets past it;
// only then may NetworkPolicy narrow what remains.
func addForward(rs *ruleset) {
	for _, f := range families {
		rs.set(podsSet+f.suffix, f.addr, false)
		rs.vmap(tenantsMap+f.suffix, f.addr)
		rs.vmap(egressMap+f.suffix, f.addr)
		rs.vmap(ingressMap+f.suffix, f.addr)
	}
	c := rs.chain(forwardChain)
	c.base = true
	// Before the tenant check, what it cannot see: a bridge floods broadcast
	// and multicast to every pod on it, whatever their tenant, and IPv6
	// link-local addresses are no pod's IP. Routers never forward either, so
	// here they only ever come from one pod on the bridge to another; pods
	// need them for neighbour discovery and nothing else.
	c.add("fib daddr type { broadcast, multicast } jump "+neighbourChain, "floods reach every tenant's pods")
	c.add("ip6 saddr fe80::/10 jump "+neighbourChain, "link-local addresses are no pod's")
	c.add("ip6 daddr fe80::/10 jump "+neighbourChain, "link-local addresses are no pod's")
	nd := rs.chain(neighbourChain)
	nd.add("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } return", "")
	nd.add("drop", "")
	for _, f := range families {
		c.add(f.ip+" saddr vmap @"+tenantsMap+f.suffix, "from a pod: to its tenant's chain")
	}
	c.add("ct state established,related accept", "replies of allowed connections")
	// IPv6 neighbour discovery between pods on one bridge is IP traffic and
	// passes this hook; without it an ingress-isolated pod could not even
	// answer for its own address.
	c.add("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept", "IPv6 neighbour discovery")
	for _, f := range families {
		c.add(f.ip+" saddr vmap @"+egressMap+f.suffix, "from an egress-isolated pod")
	}
	for _, f := range families {
		c.add(f.ip+" daddr vmap @"+ingressMap+f.suffix, "to an ingress-isolated pod")
	}
}

// addTenants fills the pod sets and gives every tenant a chain that drops
// traffic from its pods to any pod that is not its own.
func addTenants(rs *ruleset, ix *index) {
	addrs := make([]netip.Addr, 0, len(ix.owner))
	for a := range ix.owner {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		f, t := familyOf(a), ix.owner[a]
		rs.sets[podsSet+f.suffix].add(nil, a.String())
		if t == "" {
			// Fenced: no pod may send from it, and the ingress map keeps the
			// outside world away from it too.
			rs.sets[tenantsMap+f.suffix].add([]string{"drop"}, a.String())
			rs.sets[ingressMap+f.suffix].add([]string{"drop"}, a.String())
			continue
		}
		rs.sets[tenantsMap+f.suffix].add([]string{"jump " + tenantChain(t)}, a.String())
		rs.set(tenantPodsSet(t, f), f.addr, false).add(nil, a.String())
	}
	for _, t := range sortedKeys(ix.tenants) {
		c := rs.chain(tenantChain(t))
		for _, f := range families {
			own := tenantPodsSet(t, f)
			if rs.sets[own] == nil {
				continue
			}
			c.add(f.ip+" daddr @"+podsSet+f.suffix+" "+f.ip+" daddr != @"+own+" drop", "to another tenant's pod")
		}
	}
}
