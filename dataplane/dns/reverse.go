package dns

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// reverse answers a PTR question for an address of tenant: one of its pods
// (<a-b-c-d>.<ns>.pod.<domain>) or, when the Records have ServiceIPs, one
// of its ClusterIPs (<svc>.<ns>.svc.<domain>). ok is false for any other
// address, which is then the upstreams' to answer: another tenant's
// addresses are never named.
func (s *Server) reverse(tenant string, q dns.Question) (res result, ok bool) {
	ip, ok := parseReverse(strings.ToLower(q.Name))
	if !ok {
		return result{}, false
	}
	var name string
	if ips, isSvc := s.cfg.Records.(ServiceIPs); isSvc {
		if ns, svc, found := ips.ServiceByClusterIP(tenant, ip); found {
			name = strings.ToLower(svc + "." + ns + ".svc." + s.zone)
		}
	}
	if name == "" {
		if t, ns, found := s.cfg.Records.PodByIP(ip); found && t == tenant {
			name = strings.NewReplacer(".", "-", ":", "-").Replace(ip.String()) + "." + ns + ".pod." + s.zone
		}
	}
	if name == "" {
		return result{}, false
	}
	return result{answer: []dns.RR{&dns.PTR{Hdr: s.hdr(q.Name, dns.TypePTR), Ptr: name}}}, true
}

// parseReverse returns the address of a full in-addr.arpa or ip6.arpa name.
func parseReverse(name string) (netip.Addr, bool) {
	labels := dns.SplitDomainName(name)
	var b []byte
	switch {
	case len(labels) == 6 && strings.HasSuffix(name, ".in-addr.arpa."):
		for i := 3; i >= 0; i-- {
			n, err := strconv.ParseUint(labels[i], 10, 8)
			if err != nil || (len(labels[i]) > 1 && labels[i][0] == '0') {
				return netip.Addr{}, false
			}
			b = append(b, byte(n))
		}
	case len(labels) == 34 && strings.HasSuffix(name, ".ip6.arpa."):
		for i := 31; i > 0; i -= 2 {
			hi, err1 := strconv.ParseUint(labels[i], 16, 4)
			lo, err2 := strconv.ParseUint(labels[i-1], 16, 4)
			if err1 != nil || err2 != nil || len(labels[i]) != 1 || len(labels[i-1]) != 1 {
				return netip.Addr{}, false
			}
			b = append(b, byte(hi<<4|lo))
		}
	default:
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(b)
	return ip, ok
}
