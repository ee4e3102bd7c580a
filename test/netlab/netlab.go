// Package netlab makes test hosts on one machine for the pod network:
// network namespaces joined by a bridge, so that a control plane and
// nodes, each with its own addresses, routes and nftables, run side by
// side without touching the machine's own network.
//
// The control plane's namespace holds the bridge and the lab's first
// address (Subnet.1); node i is a namespace of its own at Subnet.(2+i),
// linked to the bridge by a veth pair. Programs run in a namespace through
// Command (nsenter, which keeps the caller's mounts: containerd and runc
// need the cgroup hierarchy that `ip netns exec` hides under a fresh
// sysfs); a client in this process reaches an address that exists only in
// a namespace through DialIn.
package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kplex/kplex/dataplane/cni"
	"github.com/kplex/kplex/test/containerd"
)

// Subnet is the hosts' network, a /24: the control plane is .1, node i
// .(2+i).
const Subnet = "10.250.0"

// Lab is a network of test hosts made by New.
type Lab struct {
	// Ctl is the control plane's namespace, with the bridge.
	Ctl string
	// Nodes are the nodes' namespaces.
	Nodes []string
}

// Missing reports nil when this machine can run a lab with containerd
// nodes on the pod network; otherwise the error names what is missing and
// how to install it.
func Missing() error {
	var errs []error
	if err := containerd.Available(); err != nil {
		errs = append(errs, err)
	}
	if err := cni.Missing(containerd.CNIBinDir); err != nil {
		errs = append(errs, err)
	}
	for _, need := range [][2]string{{"ip", "iproute2"}, {"nft", "nftables"}, {"nsenter", "util-linux"}} {
		if _, err := exec.LookPath(need[0]); err != nil {
			errs = append(errs, fmt.Errorf("%s not on PATH (apt-get install %s)", need[0], need[1]))
		}
	}
	return errors.Join(errs...)
}

// New makes a lab of nodes nodes, its namespaces named <prefix>-ctl and
// <prefix>-n<i>. On failure it removes what it made.
func New(prefix string, nodes int) (l *Lab, err error) {
	l = &Lab{Ctl: prefix + "-ctl"}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Destroy())
		}
	}()
	if err := ipRun("netns", "add", l.Ctl); err != nil {
		return nil, err
	}
	if err := ipRun("-n", l.Ctl, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	if err := ipRun("-n", l.Ctl, "link", "add", "br0", "type", "bridge"); err != nil {
		return nil, err
	}
	if err := ipRun("-n", l.Ctl, "addr", "add", l.CtlIP()+"/24", "dev", "br0"); err != nil {
		return nil, err
	}
	if err := ipRun("-n", l.Ctl, "link", "set", "br0", "up"); err != nil {
		return nil, err
	}
	for i := range nodes {
		ns := fmt.Sprintf("%s-n%d", prefix, i+1)
		if err := ipRun("netns", "add", ns); err != nil {
			return nil, err
		}
		l.Nodes = append(l.Nodes, ns)
		veth := fmt.Sprintf("veth%d", i+1)
		for _, args := range [][]string{
			{"-n", ns, "link", "set", "lo", "up"},
			{"-n", l.Ctl, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", l.Ctl, "link", "set", veth, "master", "br0", "up"},
			{"-n", ns, "addr", "add", l.NodeIP(i) + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
		} {
			if err := ipRun(args...); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// CtlIP is the control plane's address.
func (l *Lab) CtlIP() string { return Subnet + ".1" }

// NodeIP is node i's address.
func (l *Lab) NodeIP(i int) string { return fmt.Sprintf("%s.%d", Subnet, 2+i) }

// Destroy removes the lab's namespaces, and with them their links. It may
// be called more than once.
func (l *Lab) Destroy() error {
	var errs []error
	for _, ns := range append(l.Nodes, l.Ctl) {
		if _, err := os.Stat(Path(ns)); err == nil {
			errs = append(errs, ipRun("netns", "del", ns))
		}
	}
	return errors.Join(errs...)
}

// Path is the file of namespace ns (`ip netns`), for nsenter --net and
// DialIn.
func Path(ns string) string { return filepath.Join("/run/netns", ns) }

// Command runs name in the network namespace at path (Path(ns), or a
// process's /proc/<pid>/ns/net) through nsenter, which execs it: the
// command's pid is name's.
func Command(path, name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + path, name}, args...)...)
}

// DialIn returns a dial function (rest.Config's Dial, or any client's)
// whose connections are made in the network namespace at path. Each dial
// locks a goroutine to its OS thread, moves the thread into the namespace
// to make the socket, and moves it back before unlocking it; should the
// way back fail, the thread stays locked and ends with its goroutine, so
// no other goroutine ever runs in the namespace. Threads are not ended
// otherwise: a child started with Pdeathsig (containerd, see package
// containerd) dies with the thread that started it.
func DialIn(path string) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		type dialed struct {
			conn net.Conn
			err  error
		}
		done := make(chan dialed, 1)
		go func() {
			runtime.LockOSThread()
			conn, back, err := dialFrom(ctx, path, network, address)
			if back {
				runtime.UnlockOSThread()
			}
			done <- dialed{conn, err}
		}()
		d := <-done
		return d.conn, d.err
	}
}

// dialFrom dials from the namespace at path on the calling thread, which
// must be locked; back says whether the thread is in its own namespace
// again.
func dialFrom(ctx context.Context, path, network, address string) (conn net.Conn, back bool, err error) {
	own, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, true, fmt.Errorf("this thread's network namespace: %w", err)
	}
	defer own.Close()
	target, err := os.Open(path)
	if err != nil {
		return nil, true, fmt.Errorf("network namespace: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, true, fmt.Errorf("entering network namespace %s: %w", path, err)
	}
	var d net.Dialer
	conn, err = d.DialContext(ctx, network, address)
	if restoreErr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); restoreErr != nil {
		return conn, false, err
	}
	return conn, true, err
}

func ipRun(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
