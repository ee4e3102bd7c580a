package dns

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
)

// upstream is a test resolver on 127.0.0.1 that knows example.org (one A)
// and big.example.org (100 A, truncated over UDP as a real server would).
type upstream struct {
	addr          string
	udpQ, tcpQ    atomic.Int32
	stopUDP, stop func()
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg).SetReply(req)
		m.RecursionAvailable = true
		q := req.Question[0]
		switch q.Name {
		case "example.org.":
			m.Answer = append(m.Answer, mustRR("example.org. 60 IN A 192.0.2.1"))
		case "big.example.org.":
			for i := range 100 {
				m.Answer = append(m.Answer, mustRR(fmt.Sprintf("big.example.org. 60 IN A 192.0.2.%d", i)))
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
		size := dns.MaxMsgSize
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			u.udpQ.Add(1)
			size = dns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
		} else {
			u.tcpQ.Add(1)
		}
		m.Truncate(size)
		_ = w.WriteMsg(m)
	})
	// The TCP port is the UDP one's, which another process may hold over
	// TCP: take another, as the server does.
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if attempt == 10 {
			t.Fatal(err)
		}
	}
	u.addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h}
	for _, srv := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
	}
	u.stopUDP = func() { udp.Shutdown() }
	u.stop = func() { udp.Shutdown(); tcp.Shutdown() }
	t.Cleanup(u.stop)
	return u
}

// testContext carries a logger that writes to t.
func testContext(t *testing.T) context.Context {
	logger, _ := ktesting.NewTestContext(t)
	return klog.NewContext(t.Context(), logger)
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

// deadAddress is a loopback address where nothing listens.
func deadAddress(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func startServer(t *testing.T, upstreams ...string) *Server {
	t.Helper()
	s := newTestServer(t, newFakeRecords(), upstreams...)
	s.upstreamTimeout = 500 * time.Millisecond
	if err := s.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// exchange asks addr over network, from source IP from ("" for any).
func exchange(t *testing.T, network, from, addr, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	if from != "" {
		c.Dialer = &net.Dialer{Timeout: 3 * time.Second}
		if network == "udp" {
			c.Dialer.LocalAddr = &net.UDPAddr{IP: net.ParseIP(from)}
		} else {
			c.Dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
		}
	}
	req := new(dns.Msg).SetQuestion(name, qtype)
	if edns {
		req.SetEdns0(4096, false)
	}
	resp, _, err := c.Exchange(req, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", network, name, err)
	}
	return resp
}

func TestServeOverSockets(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	s := startServer(t, up.addr)
	addrs := s.Addrs()
	if len(addrs) != 1 {
		t.Fatalf("Addrs %v, want one", addrs)
	}
	addr := addrs[0]
	tests := []struct {
		name    string
		from    string // 127.0.0.1 is tenant a's pod; 127.0.0.2 is no pod
		qname   string
		qtype   uint16
		rcode   int
		answer  []string
		aa      bool
		minAnsw int
	}{
		{"tenant a's service", "127.0.0.1", "web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.96.0.20"}, true, 1},
		{"tenant a's headless service", "127.0.0.1", "db.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.0.7", "A 10.1.0.9"}, true, 2},
		{"missing service", "127.0.0.1", "nope.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil, true, 0},
		{"no pod is refused", "127.0.0.2", "web.default.svc.cluster.local.", dns.TypeA, dns.RcodeRefused, nil, false, 0},
		{"forwarded", "127.0.0.1", "example.org.", dns.TypeA, dns.RcodeSuccess, []string{"A 192.0.2.1"}, false, 1},
		{"forwarded for no pod too", "127.0.0.2", "example.org.", dns.TypeA, dns.RcodeSuccess, []string{"A 192.0.2.1"}, false, 1},
		{"upstream's NXDOMAIN relayed", "127.0.0.1", "nope.example.org.", dns.TypeA, dns.RcodeNameError, nil, false, 0},
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tt.name+"/"+network, func(t *testing.T) {
				resp := exchange(t, network, tt.from, addr, tt.qname, tt.qtype, false)
				if resp.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
				}
				if got := rdata(resp.Answer); !slices.Equal(got, tt.answer) {
					t.Errorf("answer %q, want %q", got, tt.answer)
				}
				if resp.Authoritative != tt.aa {
					t.Errorf("authoritative %v, want %v", resp.Authoritative, tt.aa)
				}
			})
		}
	}

	t.Run("truncated upstream answer is retried over TCP", func(t *testing.T) {
		tcpBefore := up.tcpQ.Load()
		resp := exchange(t, "udp", "", addr, "big.example.org.", dns.TypeA, false)
		if !resp.Truncated || len(resp.Answer) == 0 {
			t.Errorf("a 1.6 kB answer over UDP: truncated %v with %d answers, want the first ones and TC", resp.Truncated, len(resp.Answer))
		}
		if up.tcpQ.Load() == tcpBefore {
			t.Errorf("the upstream saw no TCP query after a truncated answer")
		}
		resp = exchange(t, "tcp", "", addr, "big.example.org.", dns.TypeA, true)
		if resp.Truncated || len(resp.Answer) != 100 {
			t.Errorf("over TCP: truncated %v with %d answers, want all 100", resp.Truncated, len(resp.Answer))
		}
	})
}

func TestForwardingFailures(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	tests := []struct {
		name      string
		upstreams func() []string
		rcode     int
	}{
		{"no upstreams", func() []string { return nil }, dns.RcodeServerFailure},
		{"upstream down", func() []string { return []string{deadAddress(t)} }, dns.RcodeServerFailure},
		{"first upstream down, second answers", func() []string { return []string{deadAddress(t), up.addr} }, dns.RcodeSuccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, tt.upstreams()...)
			start := time.Now()
			resp := exchange(t, "udp", "", s.Addrs()[0], "example.org.", dns.TypeA, false)
			if resp.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(testContext(t))
	s := newTestServer(t, newFakeRecords())
	s.cfg.Addresses = []string{"127.0.0.1:0", "127.0.0.1:0"}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	addrs := s.Addrs()
	if len(addrs) != 2 || addrs[0] == addrs[1] {
		t.Fatalf("Addrs %v, want two different", addrs)
	}
	for _, a := range addrs {
		exchange(t, "udp", "", a, "web.default.svc.cluster.local.", dns.TypeA, false)
	}

	// Binding an address in use fails and leaves nothing open.
	busy := newTestServer(t, newFakeRecords())
	busy.cfg.Addresses = []string{"127.0.0.1:0", addrs[0]}
	if err := busy.Start(testContext(t)); err == nil {
		busy.Close()
		t.Error("Start on an address in use succeeded")
	}

	// Ending the context stops the server; Close is idempotent.
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := &dns.Client{Net: "tcp", Timeout: 200 * time.Millisecond}
		_, _, err := c.Exchange(new(dns.Msg).SetQuestion("web.default.svc.cluster.local.", dns.TypeA), addrs[0])
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still serving after the context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(testContext(t))
	s := newTestServer(t, newFakeRecords())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Addrs()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	exchange(t, "tcp", "", s.Addrs()[0], "web.default.svc.cluster.local.", dns.TypeA, false)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}
}
