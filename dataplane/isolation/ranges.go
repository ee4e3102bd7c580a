package isolation

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
)

// ipRange is an inclusive range of addresses of one family. nft interval sets
// reject overlapping elements, so ranges are merged before they become
// elements, and rendered as prefixes, the one syntax nft reads the same way
// for IPv4 and IPv6.
type ipRange struct{ lo, hi netip.Addr }

func prefixRange(p netip.Prefix) ipRange {
	p = p.Masked()
	return ipRange{p.Addr(), lastAddr(p)}
}

// lastAddr is the highest address of p: its host bits all set.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// mergeRanges sorts ranges and joins those that overlap or touch.
func mergeRanges(rs []ipRange) []ipRange {
	if len(rs) == 0 {
		return nil
	}
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b ipRange) int {
		if c := a.lo.Compare(b.lo); c != 0 {
			return c
		}
		return a.hi.Compare(b.hi)
	})
	out := []ipRange{rs[0]}
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.lo.Is4() != last.lo.Is4() {
			out = append(out, r)
			continue
		}
		next := last.hi.Next()
		if r.lo.Compare(last.hi) <= 0 || (next.IsValid() && r.lo == next) {
			if r.hi.Compare(last.hi) > 0 {
				last.hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtractRange removes cut from every range of rs.
func subtractRange(rs []ipRange, cut ipRange) []ipRange {
	var out []ipRange
	for _, r := range rs {
		if r.lo.Is4() != cut.lo.Is4() || cut.hi.Less(r.lo) || r.hi.Less(cut.lo) {
			out = append(out, r)
			continue
		}
		if r.lo.Less(cut.lo) {
			out = append(out, ipRange{r.lo, cut.lo.Prev()})
		}
		if cut.hi.Less(r.hi) {
			out = append(out, ipRange{cut.hi.Next(), r.hi})
		}
	}
	return out
}

func (r ipRange) contains(a netip.Addr) bool {
	return a.Is4() == r.lo.Is4() && r.lo.Compare(a) <= 0 && a.Compare(r.hi) <= 0
}

// prefixes splits r into the fewest prefixes that cover exactly r.
func (r ipRange) prefixes() []netip.Prefix {
	var out []netip.Prefix
	lo := r.lo
	for {
		// The widest prefix starting at lo that ends at or before hi.
		var p netip.Prefix
		for bits := 0; bits <= lo.BitLen(); bits++ {
			c := netip.PrefixFrom(lo, bits)
			if c.Masked().Addr() == lo && lastAddr(c).Compare(r.hi) <= 0 {
				p = c
				break
			}
		}
		out = append(out, p)
		end := lastAddr(p)
		if end == r.hi {
			return out
		}
		lo = end.Next()
	}
}

// portRange is an inclusive range of ports of one protocol ("tcp", "udp" or
// "sctp", the names nft knows for inet_proto).
type portRange struct {
	proto  string
	lo, hi int32
}

func (p portRange) element() []string {
	if p.lo == p.hi {
		return []string{p.proto, itoa(p.lo)}
	}
	return []string{p.proto, itoa(p.lo) + "-" + itoa(p.hi)}
}

// mergePorts joins overlapping ranges of the same protocol, because a
// concatenated interval set refuses overlapping elements.
func mergePorts(ps []portRange) []portRange {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b portRange) int {
		return cmp.Or(cmp.Compare(a.proto, b.proto), cmp.Compare(a.lo, b.lo), cmp.Compare(a.hi, b.hi))
	})
	var out []portRange
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].proto == p.proto && p.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, p.hi)
			continue
		}
		out = append(out, p)
	}
	return out
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
