package dns

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// maxUDPSize is the largest UDP reply the server sends and the buffer it
// advertises (DNS Flag Day 2020: 1232 bytes avoids IP fragmentation);
// longer answers are truncated and the client retries over TCP.
const maxUDPSize = 1232

// ServeDNS answers one query: from the cluster's records for names in the
// cluster domain (and PTRs of the asking tenant), from the upstreams for the
// rest. It never panics on what a client sends.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	defer func() {
		// The server runs inside the node agent: a bug must cost one
		// query, not every pod on the node.
		if r := recover(); r != nil {
			s.logger.Error(nil, "Panic answering a DNS query", "panic", r, "question", req.Question)
			_ = w.WriteMsg(new(dns.Msg).SetRcode(req, dns.RcodeServerFailure))
		}
	}()
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	resp := s.respond(w.RemoteAddr(), req)
	fit(resp, req, tcp)
	if err := w.WriteMsg(resp); err != nil {
		s.logger.V(2).Info("Writing a DNS reply failed", "client", w.RemoteAddr(), "err", err)
	}
}

// respond builds the reply to req from client src, before it is fitted to
// the transport.
func (s *Server) respond(src net.Addr, req *dns.Msg) *dns.Msg {
	switch {
	case len(req.Question) != 1:
		return new(dns.Msg).SetRcode(req, dns.RcodeFormatError)
	case req.Opcode != dns.OpcodeQuery:
		return new(dns.Msg).SetRcode(req, dns.RcodeNotImplemented)
	case req.IsEdns0() != nil && req.IsEdns0().Version() != 0:
		// RFC 6891 6.1.3: only EDNS version 0 exists.
		return new(dns.Msg).SetRcode(req, dns.RcodeBadVers)
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	tenant, hasTenant := s.tenantOf(src)
	if dns.IsSubDomain(s.zone, name) {
		if !hasTenant {
			s.logger.V(4).Info("Refused a cluster name to a source that is no pod", "client", src, "name", q.Name)
			return new(dns.Msg).SetRcode(req, dns.RcodeRefused)
		}
		if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
			return new(dns.Msg).SetRcode(req, dns.RcodeNotImplemented)
		}
		return s.authoritative(req, s.lookup(tenant, q))
	}
	if hasTenant && q.Qtype == dns.TypePTR {
		if res, ok := s.reverse(tenant, q); ok {
			return s.authoritative(req, res)
		}
	}
	return s.forward(req)
}

// tenantOf is the tenant of the pod that sent a query from src: the only
// thing that decides whose records a query sees.
func (s *Server) tenantOf(src net.Addr) (string, bool) {
	var ap netip.AddrPort
	switch a := src.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		return "", false
	}
	// A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
	ip := ap.Addr().Unmap().WithZone("")
	tenant, _, ok := s.cfg.Records.PodByIP(ip)
	return tenant, ok && tenant != ""
}

// authoritative turns a lookup result into the reply to req.
func (s *Server) authoritative(req *dns.Msg, res result) *dns.Msg {
	m := new(dns.Msg).SetRcode(req, res.rcode)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Answer, m.Extra = res.answer, res.extra
	if len(m.Answer) == 0 {
		// RFC 2308: negative answers carry the SOA, whose minimum is
		// how long they may be cached.
		m.Ns = []dns.RR{s.soa()}
	}
	return m
}

// fit makes a reply fit what the client can take: EDNS0 only for clients
// that sent it, and UDP replies truncated to their buffer.
func fit(resp, req *dns.Msg, tcp bool) {
	resp.Id = req.Id
	resp.Compress = true
	// EDNS0 is hop by hop: an upstream's OPT (its buffer size, cookies)
	// is not the client's. Its extended rcode is already in resp.Rcode.
	resp.Extra = slices.DeleteFunc(resp.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT })
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(size, min(int(opt.UDPSize()), maxUDPSize))
		reply := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		reply.SetUDPSize(maxUDPSize)
		reply.SetDo(opt.Do()) // RFC 3225: the DO bit is copied
		resp.Extra = append(resp.Extra, reply)
	} else if resp.Rcode > 0xF {
		// An extended rcode cannot reach a client without EDNS0.
		resp.Rcode = dns.RcodeServerFailure
	}
	if tcp {
		size = dns.MaxMsgSize
	}
	resp.Truncate(size)
}
