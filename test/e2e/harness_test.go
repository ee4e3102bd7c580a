package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	binDir = os.Getenv("KPLEX_BIN_DIR")
	cleanup := func() {}
	if binDir == "" && !testing.Short() {
		dir, err := os.MkdirTemp("", "kplex-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cleanup = func() { os.RemoveAll(dir) }
		build := exec.Command("make", "-C", "../..", "build", "BIN="+dir)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building kplex:", err)
			os.Exit(1)
		}
		binDir = dir
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// machine is one user's machine: a kubeconfig, a data directory and a port.
type machine struct {
	t          *testing.T
	kubeconfig string
	dataDir    string
	port       int
	// netns, when set, runs kplex and kubectl in that network namespace.
	netns string
}

func newMachine(t *testing.T) *machine {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e test: runs the kplex binaries and kubectl")
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatal("kubectl is not installed; .ci/run installs it")
	}
	dir := t.TempDir()
	m := &machine{t: t, kubeconfig: filepath.Join(dir, "kubeconfig"), dataDir: filepath.Join(dir, "data"), port: freePort(t)}
	t.Cleanup(func() {
		// Never leave a server behind, whatever the test did.
		_, _, _ = m.kplex("down", "--data-dir", m.dataDir)
	})
	return m
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (m *machine) run(name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if m.netns != "" {
		name, args = "ip", append([]string{"netns", "exec", m.netns, name}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+m.kubeconfig, "KPLEX_DATA_DIR="+m.dataDir)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func (m *machine) kplex(args ...string) (string, string, error) {
	return m.run(filepath.Join(binDir, "kplex"), args...)
}

func (m *machine) kubectl(args ...string) (string, string, error) {
	return m.run("kubectl", args...)
}

// must runs a command that has to succeed and returns its stdout.
func (m *machine) must(out, errOut string, err error) string {
	m.t.Helper()
	if err != nil {
		m.t.Fatalf("command failed: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	return out
}

// mustFail runs a command that has to fail and returns its stderr.
func (m *machine) mustFail(out, errOut string, err error) string {
	m.t.Helper()
	if err == nil {
		m.t.Fatalf("command succeeded, want failure\nstdout: %s\nstderr: %s", out, errOut)
	}
	return errOut
}

// up brings kplex up. Tests that place pods on nodes of their own making
// run it without the local node agent, unless they ask for a --runtime.
func (m *machine) up(flags ...string) {
	m.t.Helper()
	if !slices.ContainsFunc(flags, func(f string) bool { return strings.HasPrefix(f, "--runtime") }) {
		flags = append(flags, "--runtime=none")
	}
	for attempt := 1; ; attempt++ {
		out, errOut, err := m.kplex(append([]string{"up", "--data-dir", m.dataDir, "--secure-port", strconv.Itoa(m.port)}, flags...)...)
		// A port found free may be taken (another test's server, an
		// outgoing connection) before kplex binds it: take another.
		log := filepath.Join(m.dataDir, "kplex.log")
		if b, _ := os.ReadFile(log); err != nil && attempt < 3 && bytes.Contains(b, []byte("address already in use")) {
			m.t.Logf("port %d was taken before kplex bound it; trying another", m.port)
			_ = os.Remove(log)
			m.port = freePort(m.t)
			continue
		}
		m.must(out, errOut, err)
		return
	}
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
