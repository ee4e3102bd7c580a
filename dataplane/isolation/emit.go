package isolation

import (
	"net/netip"
	"strings"
)

// maxComment is nft's limit on a rule comment.
const maxComment = 128

// ruleWriter writes the compiled rules of one policy into its tenant's
// chains. Of the two ends of a packet, "local" is the pod the policy selects
// (the destination for ingress, the source for egress) and "peer" the other.
type ruleWriter struct {
	rs       *ruleset
	ix       *index
	tenant   string
	policy   string // policyID
	selected []*podInfo
}

// emit writes rule number i of direction d, once per address family. A rule
// line returns to the forward chain when the packet is allowed, so an allowed
// egress still meets the destination's ingress check; the chain's final drop
// catches the rest.
func (w *ruleWriter) emit(d direction, i int, cr compiledRule, comment string) {
	if len(comment) > maxComment {
		comment = comment[:maxComment]
	}
	localField, peerField := "daddr", "saddr"
	if d == egress {
		localField, peerField = "saddr", "daddr"
	}
	c := w.rs.chain(policyChain(d, w.tenant))
	for _, f := range families {
		localSet := policyPodsSet(w.tenant, w.policy, f)
		if w.rs.sets[localSet] == nil {
			continue // no selected pod of this family
		}
		local := f.ip + " " + localField + " @" + localSet

		var peer string
		var peerRanges []ipRange
		if !cr.anyPeer {
			for _, r := range cr.peers {
				if familyOf(r.lo) == f {
					peerRanges = append(peerRanges, r)
				}
			}
			if len(peerRanges) == 0 {
				continue // no peer of this family: the rule allows nothing here
			}
			name := ruleSet(d, w.tenant, w.policy, i, "peers", f.suffix)
			s := w.rs.set(name, f.addr, true)
			for _, r := range peerRanges {
				for _, p := range r.prefixes() {
					s.add(nil, prefixString(p))
				}
			}
			peer = f.ip + " " + peerField + " @" + name
		}

		if cr.anyPort {
			c.add(join(local, peer, "return"), comment)
			continue
		}
		if len(cr.ports) > 0 {
			// Ports do not depend on the family: both halves share one set.
			name := ruleSet(d, w.tenant, w.policy, i, "ports", "")
			s := w.rs.set(name, "inet_proto . inet_service", true)
			for _, p := range cr.ports {
				s.add(nil, p.element()...)
			}
			c.add(join(local, peer, "meta l4proto . th dport @"+name, "return"), comment)
		}
		if len(cr.named) == 0 {
			continue
		}
		// A named port means a number on each destination pod, so it is
		// matched as destination address . protocol . port: on the selected
		// pods for ingress, on the tenant's pods among the peers for egress.
		name := ruleSet(d, w.tenant, w.policy, i, "named", f.suffix)
		if !w.addNamed(name, d, f, cr, peerRanges) {
			continue // the name resolves on no destination: nothing to allow
		}
		match := f.ip + " daddr . meta l4proto . th dport @" + name
		if d == ingress {
			c.add(join(match, peer, "return"), comment)
		} else {
			c.add(join(local, match, "return"), comment)
		}
	}
}

// addNamed fills the named-port set and reports whether it has elements.
func (w *ruleWriter) addNamed(name string, d direction, f family, cr compiledRule, peerRanges []ipRange) bool {
	dsts := w.selected
	if d == egress {
		dsts = w.ix.tenants[w.tenant]
	}
	var s *set
	for _, pod := range dsts {
		for _, a := range pod.ipsOf(f) {
			if d == egress && !cr.anyPeer && !inRanges(peerRanges, a) {
				continue
			}
			for _, n := range cr.named {
				for _, port := range n.resolve(pod) {
					if s == nil {
						s = w.rs.set(name, f.addr+" . inet_proto . inet_service", false)
					}
					s.add(nil, a.String(), n.proto, itoa(port))
				}
			}
		}
	}
	return s != nil
}

func inRanges(rs []ipRange, a netip.Addr) bool {
	for _, r := range rs {
		if r.contains(a) {
			return true
		}
	}
	return false
}

// prefixString writes a host prefix as a bare address, the way nft lists it.
func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func join(parts ...string) string {
	out := parts[:0:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}
