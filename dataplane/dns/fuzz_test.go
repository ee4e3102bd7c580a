package dns

import (
	"math/rand/v2"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// seedQueries are well-formed queries that reach every part of the server;
// the tests below mangle them.
func seedQueries() [][]byte {
	var out [][]byte
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.default.svc.cluster.local.", dns.TypeA},
		{"db-0.db.default.svc.cluster.local.", dns.TypeAAAA},
		{"_pg._tcp.db.default.svc.cluster.local.", dns.TypeSRV},
		{"10-1-0-5.default.pod.cluster.local.", dns.TypeA},
		{"fd00--5.default.pod.cluster.local.", dns.TypeANY},
		{"5.0.1.10.in-addr.arpa.", dns.TypePTR},
		{"ext.default.svc.cluster.local.", dns.TypeCNAME},
		{"cluster.local.", dns.TypeSOA},
		{"example.com.", dns.TypeA},
	} {
		m := new(dns.Msg).SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, true)
		wire, err := m.Pack()
		if err != nil {
			panic(err)
		}
		out = append(out, wire)
	}
	return out
}

// serveWire answers wire as the server's listeners would: only what
// unpacks reaches the handler. It calls respond and fit directly, so a
// panic fails the test instead of being recovered by ServeDNS.
func serveWire(t testing.TB, s *Server, wire []byte, tcp bool) {
	req := new(dns.Msg)
	if err := req.Unpack(wire); err != nil {
		return
	}
	var src net.Addr = &net.UDPAddr{IP: net.IPv4(10, 1, 0, 5), Port: 1}
	resp := s.respond(src, req)
	fit(resp, req, tcp)
	packed, err := resp.Pack()
	if err != nil {
		t.Fatalf("reply to %v does not pack: %v", req, err)
	}
	if !tcp && len(packed) > maxUDPSize {
		t.Fatalf("UDP reply of %d bytes", len(packed))
	}
}

func TestMalformedQueries(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, newFakeRecords())
	rng := rand.New(rand.NewPCG(1, 2))
	seeds := seedQueries()
	for i := range 20000 {
		var wire []byte
		if i%2 == 0 {
			// Random bytes: mostly rejected by Unpack.
			wire = make([]byte, rng.IntN(300))
			for j := range wire {
				wire[j] = byte(rng.UintN(256))
			}
		} else {
			// A real query with a few bytes changed: mostly unpacks.
			wire = append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
			for range 1 + rng.IntN(4) {
				wire[rng.IntN(len(wire))] = byte(rng.UintN(256))
			}
		}
		serveWire(t, s, wire, i%3 == 0)
	}
}

func FuzzServe(f *testing.F) {
	for _, q := range seedQueries() {
		f.Add(q, false)
	}
	s := newTestServer(f, newFakeRecords())
	f.Fuzz(func(t *testing.T, wire []byte, tcp bool) {
		serveWire(t, s, wire, tcp)
	})
}
