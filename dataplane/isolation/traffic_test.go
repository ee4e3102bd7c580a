package isolation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The pod network of one node, as the CNI bridge plugin builds it: a bridge
// in the node's namespace with a gateway address, and one veth per pod into
// the pod's own namespace. br_netfilter makes bridged traffic pass the
// node's forward hook.
const (
	gateway4 = "10.244.1.1"
	gateway6 = "fd00:10:244:1::1"
)

// listenPorts are served by every test pod: accept and close. echoPort
// echoes, for connections that stay open across a Sync.
var listenPorts = []int{8080, 9090}

const echoPort = 7777

type netPod struct {
	Pod
	ns string
}

func newNode(t *testing.T) string {
	t.Helper()
	node := newNetns(t, "node")
	run(t, "ip", "-n", node, "link", "add", "cni0", "type", "bridge")
	run(t, "ip", "-n", node, "addr", "add", gateway4+"/24", "dev", "cni0")
	run(t, "ip", "-n", node, "addr", "add", gateway6+"/64", "dev", "cni0", "nodad")
	run(t, "ip", "-n", node, "link", "set", "cni0", "up")
	run(t, "ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	run(t, "ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	run(t, "ip", "netns", "exec", node, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
	run(t, "ip", "netns", "exec", node, "sysctl", "-qw", "net.bridge.bridge-nf-call-ip6tables=1")
	// kube-proxy's table needs conntrack, so on a real node every connection
	// is tracked from its first packet, before kplex's table exists.
	run(t, "ip", "netns", "exec", node, "nft", "add table ip kube-proxy-standin; "+
		"add chain ip kube-proxy-standin forward { type filter hook forward priority 10 ; } ; "+
		"add rule ip kube-proxy-standin forward ct state new counter")
	return node
}

// addPod wires a pod namespace to the node's bridge and serves listenPorts
// in it until the test ends.
func addPod(t *testing.T, node string, index int, p Pod) netPod {
	t.Helper()
	ns := newNetns(t, fmt.Sprintf("pod%d", index))
	veth := fmt.Sprintf("veth%d", index)
	run(t, "ip", "-n", node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	run(t, "ip", "-n", node, "link", "set", veth, "master", "cni0", "up")
	for _, a := range p.IPs {
		if a.Is4() {
			run(t, "ip", "-n", ns, "addr", "add", a.String()+"/24", "dev", "eth0")
		} else {
			run(t, "ip", "-n", ns, "addr", "add", a.String()+"/64", "dev", "eth0", "nodad")
		}
	}
	// No duplicate address detection: the link-local address is usable at once.
	run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
	run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	run(t, "ip", "-n", ns, "route", "add", "default", "via", gateway4)
	for _, port := range append(listenPorts, echoPort) {
		var ls []net.Listener
		err := inNetns(ns, func() error {
			for _, network := range []string{"tcp4", "tcp6"} {
				l, err := net.Listen(network, fmt.Sprintf(":%d", port))
				if err != nil {
					return err
				}
				ls = append(ls, l)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("listening in %s: %v", ns, err)
		}
		for _, l := range ls {
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					if port == echoPort {
						go func() { _, _ = io.Copy(c, c); c.Close() }()
						continue
					}
					c.Close()
				}
			}()
		}
	}
	return netPod{Pod: p, ns: ns}
}

// dialTimeout is how long a connection may take before it counts as dropped.
// Well under the 3 s IPv6 neighbour discovery takes to give up, so an
// unanswered SYN shows as a timeout and not as "no route to host".
const dialTimeout = 1500 * time.Millisecond

// dial connects from pod src to dst's address of family v6 on port.
func dial(src, dst netPod, v6 bool, port int) error {
	var to netip.Addr
	for _, a := range dst.IPs {
		if a.Is6() == v6 {
			to = a
		}
	}
	return inNetns(src.ns, func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(to, uint16(port)).String(), dialTimeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

func expectConnects(t *testing.T, src, dst netPod, v6 bool, port int) {
	t.Helper()
	if err := dial(src, dst, v6, port); err != nil {
		t.Errorf("%s/%s -> %s/%s :%d (v6=%v): %v, want a connection", src.Tenant, src.Name, dst.Tenant, dst.Name, port, v6, err)
	}
}

// expectDropped wants a timeout: a drop, not a reset or an unreachable.
func expectDropped(t *testing.T, src, dst netPod, v6 bool, port int) {
	t.Helper()
	err := dial(src, dst, v6, port)
	switch {
	case err == nil:
		t.Errorf("%s/%s -> %s/%s :%d (v6=%v) connected, want it dropped", src.Tenant, src.Name, dst.Tenant, dst.Name, port, v6)
	case !isTimeout(err):
		t.Errorf("%s/%s -> %s/%s :%d (v6=%v): %v, want a timeout", src.Tenant, src.Name, dst.Tenant, dst.Name, port, v6, err)
	}
}

// linkLocal is the IPv6 link-local address of a pod's eth0, which the
// kernel gave it and no pod IP list names.
func linkLocal(t *testing.T, p netPod) netip.Addr {
	t.Helper()
	out := run(t, "ip", "-n", p.ns, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
	for _, f := range strings.Fields(out) {
		if pfx, err := netip.ParsePrefix(f); err == nil {
			return pfx.Addr().WithZone("eth0")
		}
	}
	t.Fatalf("no link-local address in %s: %s", p.ns, out)
	return netip.Addr{}
}

// expectLinkLocal dials dst's link-local address from src.
func expectLinkLocal(t *testing.T, src, dst netPod, wantConnect bool) {
	t.Helper()
	to := netip.AddrPortFrom(linkLocal(t, dst), 8080).String()
	err := inNetns(src.ns, func() error {
		c, err := net.DialTimeout("tcp6", to, dialTimeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
	switch {
	case wantConnect && err != nil:
		t.Errorf("%s/%s -> %s/%s at %s: %v, want a connection", src.Tenant, src.Name, dst.Tenant, dst.Name, to, err)
	case !wantConnect && !isTimeout(err):
		t.Errorf("%s/%s -> %s/%s at %s: %v, want a timeout", src.Tenant, src.Name, dst.Tenant, dst.Name, to, err)
	}
}

// expectBroadcast sends UDP to the pod subnet's broadcast address from src
// and reports whether dst heard it.
func expectBroadcast(t *testing.T, src, dst netPod, wantHeard bool) {
	t.Helper()
	const port = 5353
	var pc net.PacketConn
	if err := inNetns(dst.ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listening for broadcasts: %v", err)
	}
	defer pc.Close()
	if err := inNetns(src.ns, func() error {
		c, err := net.Dial("udp4", fmt.Sprintf("10.244.1.255:%d", port))
		if err != nil {
			return err
		}
		defer c.Close()
		for range 3 {
			if _, err := c.Write([]byte("hello")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("broadcasting: %v", err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(dialTimeout))
	_, _, err := pc.ReadFrom(make([]byte, 16))
	switch {
	case wantHeard && err != nil:
		t.Errorf("%s/%s did not hear %s/%s's broadcast: %v", dst.Tenant, dst.Name, src.Tenant, src.Name, err)
	case !wantHeard && err == nil:
		t.Errorf("%s/%s heard %s/%s's broadcast", dst.Tenant, dst.Name, src.Tenant, src.Name)
	}
}

func isTimeout(err error) bool {
	var nerr net.Error
	return errors.As(err, &nerr) && nerr.Timeout()
}

// openEcho connects src to dst's echo port over IPv4 and keeps the
// connection until the test ends.
func openEcho(t *testing.T, src, dst netPod) net.Conn {
	t.Helper()
	var c net.Conn
	err := inNetns(src.ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(dst.IPs[0], echoPort).String(), dialTimeout)
		return err
	})
	if err != nil {
		t.Fatalf("echo connection: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends one byte and waits for it to come back.
func roundTrip(c net.Conn) error {
	if err := c.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, 1))
	return err
}

// TestIntegrationTraffic sends real connections across a bridge between pod
// namespaces of two tenants whose pods, namespaces and labels are identical.
func TestIntegrationTraffic(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	node := newNode(t)
	pods := map[string]netPod{}
	for i, spec := range []struct{ tenant, name string }{
		{"acme", "web"}, {"acme", "client"}, {"beta", "web"}, {"beta", "client"},
	} {
		n := 11 + i
		p := withPorts(testPod(spec.tenant, "default", spec.name,
			[]string{fmt.Sprintf("10.244.1.%d", n), fmt.Sprintf("fd00:10:244:1::%d", n)}, "app="+spec.name),
			corev1.ContainerPort{Name: "metrics", ContainerPort: 9090})
		pods[spec.tenant+"/"+spec.name] = addPod(t, node, i, p)
	}
	aWeb, aClient, bWeb, bClient := pods["acme/web"], pods["acme/client"], pods["beta/web"], pods["beta/client"]

	snap := Snapshot{Namespaces: []Namespace{{Tenant: "acme", Name: "default"}, {Tenant: "beta", Name: "default"}}}
	for _, p := range []netPod{aWeb, aClient, bWeb, bClient} {
		snap.Pods = append(snap.Pods, p.Pod)
	}
	s := New(newNetnsNFT(t, node))
	sync := func(policies ...*networkingv1.NetworkPolicy) {
		t.Helper()
		snap.Policies = policies
		if err := s.Sync(ctx, snap); err != nil {
			t.Fatalf("Sync: %v", err)
		}
	}

	// Without rules the bridge connects everybody: the test's baseline. The
	// echo connection stays open across the first Sync.
	expectConnects(t, aClient, bWeb, false, 8080)
	echo := openEcho(t, aClient, bWeb)
	if err := roundTrip(echo); err != nil {
		t.Fatalf("echo before any rules: %v", err)
	}
	expectBroadcast(t, aClient, bWeb, true)
	expectLinkLocal(t, aClient, bWeb, true)

	sync()
	t.Run("tenants", func(t *testing.T) {
		// The tenant check runs before the conntrack shortcut, so a
		// connection opened before the rules does not survive them.
		if err := roundTrip(echo); err == nil || !isTimeout(err) {
			t.Errorf("echo across tenants after Sync: %v, want a timeout", err)
		}
		for _, v6 := range []bool{false, true} {
			expectConnects(t, aClient, aWeb, v6, 8080)
			expectConnects(t, bClient, bWeb, v6, 8080)
			expectDropped(t, aClient, bWeb, v6, 8080)
			expectDropped(t, bWeb, aClient, v6, 8080)
		}
		// What the tenant check cannot see, because no pod IP names it.
		expectBroadcast(t, aClient, bWeb, false)
		expectLinkLocal(t, aClient, bWeb, false)
	})

	denyWeb := testPolicy("acme", "default", "deny-web", networkingv1.NetworkPolicySpec{
		PodSelector: *selector("app=web"), PolicyTypes: ingressOnly,
	})
	sync(denyWeb)
	t.Run("ingress deny in one tenant", func(t *testing.T) {
		expectDropped(t, aClient, aWeb, false, 8080)
		expectDropped(t, aClient, aWeb, true, 8080)
		expectConnects(t, aWeb, aClient, false, 8080) // only web is isolated
		expectConnects(t, bClient, bWeb, false, 8080) // beta's twin is not
		expectConnects(t, bClient, bWeb, true, 8080)
	})

	allowClient := testPolicy("acme", "default", "allow-client", networkingv1.NetworkPolicySpec{
		PodSelector: *selector("app=web"), PolicyTypes: ingressOnly,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: selector("app=client")}},
			Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolTCP, intstr.FromInt32(8080))},
		}},
	})
	sync(denyWeb, allowClient)
	t.Run("allow by podSelector and port", func(t *testing.T) {
		expectConnects(t, aClient, aWeb, false, 8080)
		expectConnects(t, aClient, aWeb, true, 8080)
		expectDropped(t, aClient, aWeb, false, 9090)
		expectDropped(t, bClient, aWeb, false, 8080) // a podSelector never reaches into beta
		expectConnects(t, bClient, bWeb, false, 9090)
	})

	allowAll := testPolicy("beta", "default", "allow-all", networkingv1.NetworkPolicySpec{
		PodSelector: *selector(), PolicyTypes: ingressOnly,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}}}},
	})
	sync(denyWeb, allowClient, allowAll)
	t.Run("ipBlock never opens another tenant", func(t *testing.T) {
		expectDropped(t, aClient, bWeb, false, 8080)
		expectConnects(t, bClient, bWeb, false, 8080)
		if msgs := InertRules(allowAll, []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}); len(msgs) != 1 {
			t.Errorf("InertRules = %q, want one message", msgs)
		}
	})

	egressMetrics := testPolicy("acme", "default", "client-egress", networkingv1.NetworkPolicySpec{
		PodSelector: *selector("app=client"), PolicyTypes: egressOnly,
		Egress: []networkingv1.NetworkPolicyEgressRule{{
			To:    []networkingv1.NetworkPolicyPeer{{PodSelector: selector("app=web")}},
			Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolTCP, intstr.FromString("metrics"))},
		}},
	})
	sync(egressMetrics)
	t.Run("egress by named port", func(t *testing.T) {
		expectConnects(t, aClient, aWeb, false, 9090)
		expectConnects(t, aClient, aWeb, true, 9090)
		expectDropped(t, aClient, aWeb, false, 8080)
		expectConnects(t, aWeb, aClient, false, 8080) // replies and other pods are not isolated
		expectConnects(t, bClient, bWeb, false, 8080)
	})

	if err := s.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	expectConnects(t, aClient, bWeb, false, 8080)
}
