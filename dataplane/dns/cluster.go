package dns

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
)

// dnsSchemaVersion is the Kubernetes DNS specification version served at
// dns-version.<domain>.
const dnsSchemaVersion = "1.1.0"

// result is the answer to a question in the cluster domain.
type result struct {
	rcode         int
	answer, extra []dns.RR
}

var (
	nxdomain = result{rcode: dns.RcodeNameError}
	nodata   = result{rcode: dns.RcodeSuccess}
)

// lookup answers q, a name in the cluster domain, from tenant's records.
func (s *Server) lookup(tenant string, q dns.Question) result {
	labels := dns.SplitDomainName(strings.ToLower(q.Name))
	n := len(labels) - dns.CountLabel(s.zone)
	if n < 0 {
		return nxdomain // only for names with escapes the two count apart
	}
	labels = labels[:n]
	switch {
	case n == 0:
		return s.apex(q)
	case n == 1 && labels[0] == "dns-version":
		if !wants(q, dns.TypeTXT) {
			return nodata
		}
		return result{answer: []dns.RR{&dns.TXT{Hdr: s.hdr(q.Name, dns.TypeTXT), Txt: []string{dnsSchemaVersion}}}}
	case n <= 2 && (labels[n-1] == "svc" || labels[n-1] == "pod"):
		// svc.<domain>, pod.<domain> and any namespace under them exist
		// as far as DNS goes: NODATA keeps resolvers from caching
		// "nothing below here" for names that may have children.
		return nodata
	case n == 3 && labels[2] == "pod":
		return s.pod(tenant, labels[1], labels[0], q)
	case n >= 3 && n <= 5 && labels[n-1] == "svc":
		svc := s.cfg.Records.Service(tenant, labels[n-2], labels[n-3])
		if svc == nil {
			return nxdomain
		}
		switch n {
		case 3:
			return s.service(tenant, svc, q)
		case 4:
			return s.endpoint(tenant, svc, labels[0], q)
		default:
			return s.srv(tenant, svc, strings.TrimPrefix(labels[0], "_"), strings.TrimPrefix(labels[1], "_"), q)
		}
	}
	return nxdomain
}

// apex answers the zone's own name: its SOA and NS.
func (s *Server) apex(q dns.Question) result {
	var res result
	if wants(q, dns.TypeSOA) {
		soa := s.soa()
		soa.Hdr.Name = q.Name
		res.answer = append(res.answer, soa)
	}
	if wants(q, dns.TypeNS) {
		res.answer = append(res.answer, &dns.NS{Hdr: s.hdr(q.Name, dns.TypeNS), Ns: "ns.dns." + s.zone})
	}
	return res
}

// soa is the zone's SOA record, as CoreDNS writes it; its minimum (the
// negative-caching TTL) is the records' TTL.
func (s *Server) soa() *dns.SOA {
	return &dns.SOA{
		Hdr:     s.hdr(s.zone, dns.TypeSOA),
		Ns:      "ns.dns." + s.zone,
		Mbox:    "hostmaster." + s.zone,
		Serial:  s.serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  s.cfg.TTL,
	}
}

// service answers <svc>.<ns>.svc.<domain>.
func (s *Server) service(tenant string, svc *corev1.Service, q dns.Question) result {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		// A CNAME stands for every type at its name; following it is the
		// client's (or its resolver's) job.
		return result{answer: []dns.RR{&dns.CNAME{Hdr: s.hdr(q.Name, dns.TypeCNAME), Target: dns.Fqdn(svc.Spec.ExternalName)}}}
	}
	targets := s.targets(tenant, svc)
	if len(targets) == 0 && headless(svc) {
		// As CoreDNS: a headless Service without ready endpoints has no
		// name yet.
		return nxdomain
	}
	if q.Qtype == dns.TypeSRV {
		return s.srvRecords(q.Name, targets, "", "")
	}
	return s.addresses(q, targets)
}

// endpoint answers <endpoint>.<svc>.<ns>.svc.<domain>, where endpoint is an
// endpoint's hostname or its dashed IP.
func (s *Server) endpoint(tenant string, svc *corev1.Service, name string, q dns.Question) result {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nxdomain
	}
	var matched []target
	for _, t := range s.endpoints(tenant, svc) {
		if t.label == name {
			matched = append(matched, t)
		}
	}
	if len(matched) == 0 {
		return nxdomain
	}
	return s.addresses(q, matched)
}

// srv answers _<port>._<proto>.<svc>.<ns>.svc.<domain>.
func (s *Server) srv(tenant string, svc *corev1.Service, port, proto string, q dns.Question) result {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nxdomain
	}
	res := s.srvRecords(q.Name, s.targets(tenant, svc), port, proto)
	switch {
	case len(res.answer) == 0:
		return nxdomain
	case !wants(q, dns.TypeSRV):
		return nodata
	}
	return res
}

// pod answers <a-b-c-d>.<ns>.pod.<domain> (IPv6: colons as dashes) when
// tenant has a pod with that IP in ns ("pods verified"): no name can be
// made up for an address that is not the tenant's own.
func (s *Server) pod(tenant, ns, label string, q dns.Question) result {
	var ip netip.Addr
	var err error
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		ip, err = netip.ParseAddr(strings.ReplaceAll(label, "-", "."))
	} else {
		ip, err = netip.ParseAddr(strings.ReplaceAll(label, "-", ":"))
	}
	if err != nil || ip.Zone() != "" || !s.cfg.Records.PodIPInNamespace(tenant, ns, ip) {
		return nxdomain
	}
	return s.addresses(q, []target{{name: q.Name, ip: ip}})
}

// addresses answers A and AAAA questions at q.Name with the targets' IPs.
func (s *Server) addresses(q dns.Question, targets []target) result {
	var res result
	for _, t := range targets {
		if rr := s.addressRR(q.Name, t.ip, q); rr != nil {
			res.answer = append(res.answer, rr)
		}
	}
	res.answer = dns.Dedup(res.answer, nil)
	return res
}

// addressRR is ip's A or AAAA record at name when q asks for its type.
func (s *Server) addressRR(name string, ip netip.Addr, q dns.Question) dns.RR {
	switch {
	case ip.Is4() && wants(q, dns.TypeA):
		return &dns.A{Hdr: s.hdr(name, dns.TypeA), A: ip.AsSlice()}
	case ip.Is6() && wants(q, dns.TypeAAAA):
		return &dns.AAAA{Hdr: s.hdr(name, dns.TypeAAAA), AAAA: ip.AsSlice()}
	}
	return nil
}

// wants reports whether q asks for records of type t.
func wants(q dns.Question, t uint16) bool {
	return q.Qtype == t || q.Qtype == dns.TypeANY
}

func (s *Server) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: s.cfg.TTL}
}
