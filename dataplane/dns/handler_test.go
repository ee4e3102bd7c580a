package dns

import (
	"testing"

	"github.com/miekg/dns"
)

func TestMessageHandling(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, newFakeRecords())
	query := func(name string, edns int, opts ...func(*dns.Msg)) *dns.Msg {
		m := new(dns.Msg).SetQuestion(name, dns.TypeA)
		if edns > 0 {
			m.SetEdns0(uint16(edns), true)
		}
		for _, o := range opts {
			o(m)
		}
		return m
	}
	const big = "big.default.svc.cluster.local." // 100 endpoints: about 1.6 kB
	tests := []struct {
		name      string
		req       *dns.Msg
		tcp       bool
		rcode     int
		opt       bool // the reply carries EDNS0
		truncated bool
		answers   int // -1: any
	}{
		{"plain query", query("web.default.svc.cluster.local.", 0), false, dns.RcodeSuccess, false, false, 1},
		{"EDNS0 is echoed", query("web.default.svc.cluster.local.", 4096), false, dns.RcodeSuccess, true, false, 1},
		{"unknown EDNS version", query("web.default.svc.cluster.local.", 4096, func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }), false, dns.RcodeBadVers, true, false, 0},
		{"no question", query("web.default.svc.cluster.local.", 0, func(m *dns.Msg) { m.Question = nil }), false, dns.RcodeFormatError, false, false, 0},
		{"two questions", query("web.default.svc.cluster.local.", 0, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), false, dns.RcodeFormatError, false, false, 0},
		{"update opcode", query("web.default.svc.cluster.local.", 0, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), false, dns.RcodeNotImplemented, false, false, 0},
		{"CHAOS class in the zone", query("web.default.svc.cluster.local.", 0, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), false, dns.RcodeNotImplemented, false, false, 0},
		{"big answer over UDP is truncated to 512", query(big, 0), false, dns.RcodeSuccess, false, true, -1},
		{"big answer within the EDNS0 buffer, at most 1232", query(big, 65000), false, dns.RcodeSuccess, true, true, -1},
		{"big answer over TCP is whole", query(big, 0), true, dns.RcodeSuccess, false, false, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := ask(t, s, "10.1.0.5", tt.tcp, tt.req)
			if resp.Id != tt.req.Id {
				t.Errorf("ID %d, want %d", resp.Id, tt.req.Id)
			}
			if resp.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
			opt := resp.IsEdns0()
			if (opt != nil) != tt.opt {
				t.Errorf("OPT %v, want one: %v", opt, tt.opt)
			}
			if opt != nil && (opt.UDPSize() != maxUDPSize || !opt.Do()) {
				t.Errorf("OPT %v, want size %d and the query's DO bit", opt, maxUDPSize)
			}
			if resp.Truncated != tt.truncated {
				t.Errorf("truncated %v, want %v", resp.Truncated, tt.truncated)
			}
			if tt.answers >= 0 && len(resp.Answer) != tt.answers {
				t.Errorf("%d answers, want %d", len(resp.Answer), tt.answers)
			}
			wire, err := resp.Pack()
			if err != nil {
				t.Fatal(err)
			}
			limit := dns.MinMsgSize
			switch {
			case tt.tcp:
				limit = dns.MaxMsgSize
			case tt.opt:
				limit = maxUDPSize
			}
			if len(wire) > limit {
				t.Errorf("reply of %d bytes, want at most %d", len(wire), limit)
			}
		})
	}
}
