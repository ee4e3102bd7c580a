package isolation

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"
)

// requireRoot skips integration tests where they cannot run, and says why.
func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping integration test under -short: it creates network namespaces and nftables tables")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping integration test: creating network namespaces and nftables tables needs root")
	}
	for _, bin := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("integration test needs %s: %v", bin, err)
		}
	}
}

var netnsSeq atomic.Int32

// newNetns creates a network namespace named uniquely for this test process
// and deletes it when the test ends, with everything in it (links, tables).
func newNetns(t *testing.T, role string) string {
	t.Helper()
	name := fmt.Sprintf("kplex-iso-%d-%d-%s", os.Getpid(), netnsSeq.Add(1), role)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNetns runs fn on an OS thread switched into network namespace name.
// Sockets fn opens stay in that namespace, and processes it starts (nft)
// inherit it. The thread is thrown away if it cannot be switched back.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering netns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- fmt.Errorf("leaving netns %s: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// netnsNFT is a knftables.Interface whose nft runs in a network namespace,
// so the Syncer under test never touches the host's tables.
type netnsNFT struct {
	knftables.Interface
	ns string
}

func newNetnsNFT(t *testing.T, ns string) *netnsNFT {
	t.Helper()
	var nft knftables.Interface
	err := inNetns(ns, func() (err error) {
		nft, err = NewInterface()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return &netnsNFT{Interface: nft, ns: ns}
}

func (n *netnsNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	return inNetns(n.ns, func() error { return n.Interface.Run(ctx, tx) })
}

func (n *netnsNFT) Check(ctx context.Context, tx *knftables.Transaction) error {
	return inNetns(n.ns, func() error { return n.Interface.Check(ctx, tx) })
}

func (n *netnsNFT) ListAll(ctx context.Context) (out map[string][]string, err error) {
	err = inNetns(n.ns, func() error { out, err = n.Interface.ListAll(ctx); return err })
	return out, err
}

func (n *netnsNFT) List(ctx context.Context, kind string) (out []string, err error) {
	err = inNetns(n.ns, func() error { out, err = n.Interface.List(ctx, kind); return err })
	return out, err
}

func (n *netnsNFT) ListRules(ctx context.Context, chain string) (out []*knftables.Rule, err error) {
	err = inNetns(n.ns, func() error { out, err = n.Interface.ListRules(ctx, chain); return err })
	return out, err
}

func (n *netnsNFT) ListElements(ctx context.Context, kind, name string) (out []*knftables.Element, err error) {
	err = inNetns(n.ns, func() error { out, err = n.Interface.ListElements(ctx, kind, name); return err })
	return out, err
}

func (n *netnsNFT) ListCounters(ctx context.Context) (out []*knftables.Counter, err error) {
	err = inNetns(n.ns, func() error { out, err = n.Interface.ListCounters(ctx); return err })
	return out, err
}
