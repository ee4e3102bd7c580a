package netlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// TestIntegrationLabAndDialIn makes a lab of two nodes and dials from
// node 1's namespace: the socket lives there (its source is node 1's
// address, which this process's own namespace has not), and the lab's
// routes reach the control plane and node 2.
func TestIntegrationLabAndDialIn(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: makes network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip not on PATH (apt-get install iproute2)")
	}
	l, err := New(fmt.Sprintf("kt%d", os.Getpid()%100000), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Destroy(); err != nil {
			t.Error(err)
		}
		for _, ns := range append(l.Nodes, l.Ctl) {
			if _, err := os.Stat(Path(ns)); err == nil {
				t.Errorf("namespace %s left after Destroy", ns)
			}
		}
	})
	dial := DialIn(Path(l.Nodes[0]))
	for _, to := range []string{l.CtlIP(), l.NodeIP(1)} {
		// A UDP dial sends nothing; it picks the route and source address.
		c, err := dial(context.Background(), "udp", net.JoinHostPort(to, "53"))
		if err != nil {
			t.Fatalf("dial %s from %s: %v", to, l.Nodes[0], err)
		}
		if got := c.LocalAddr().(*net.UDPAddr).IP.String(); got != l.NodeIP(0) {
			t.Errorf("dial %s from %s: source %s, want %s", to, l.Nodes[0], got, l.NodeIP(0))
		}
		c.Close()
	}
	if _, err := dial(context.Background(), "udp", "192.0.2.1:53"); err == nil {
		t.Errorf("dial 192.0.2.1 from %s: no error, want no route (the lab has no default route)", l.Nodes[0])
	}
	// The dialing threads came back: this process's own dials never leave
	// from the lab.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if c, err := dial(context.Background(), "udp", net.JoinHostPort(l.CtlIP(), "53")); err == nil {
				c.Close()
			}
		})
		wg.Go(func() {
			c, err := net.Dial("udp", net.JoinHostPort(l.CtlIP(), "53"))
			if err != nil {
				return // no route from this machine's namespace: not the lab's
			}
			defer c.Close()
			if got := c.LocalAddr().(*net.UDPAddr).IP.String(); got == l.NodeIP(0) {
				t.Errorf("a plain dial left from %s's address %s: a thread stayed in the lab", l.Nodes[0], got)
			}
		})
	}
	wg.Wait()
}
