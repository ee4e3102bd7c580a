package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kplex/kplex/test/containerd"
	"github.com/kplex/kplex/test/images"
)

// agent is a kplex-nodeagent process of a test.
type agent struct {
	t *testing.T
	// bin runs args; kplex-nodeagent when empty.
	bin  string
	args []string
	log  string
	cmd  *exec.Cmd
}

// startAgent runs kplex-nodeagent for node name against m's management
// plane, with containerd at endpoint; extra flags follow.
func (m *machine) startAgent(name, endpoint string, extra ...string) *agent {
	m.t.Helper()
	dir := m.t.TempDir()
	kubeconfig := filepath.Join(dir, "root.kubeconfig")
	flat := m.must(m.kubectl("config", "view", "--minify", "--flatten", "--context=kplex-root"))
	if err := os.WriteFile(kubeconfig, []byte(flat), 0o600); err != nil {
		m.t.Fatal(err)
	}
	a := &agent{t: m.t, log: filepath.Join(dir, "agent.log"), args: append([]string{
		"--kubeconfig=" + kubeconfig, "--hostname-override=" + name,
		"--container-runtime-endpoint=" + endpoint,
		"--address=127.0.0.1", "--port=" + strconv.Itoa(freePort(m.t)), "--node-ip=127.0.0.1",
		"--client-ca-file=" + filepath.Join(m.dataDir, "pki", "ca.crt"),
		"--root-dir=" + filepath.Join(dir, "root"), "--device-plugin-dir=" + filepath.Join(dir, "dp"),
		"--sync-frequency=250ms", "-v=2",
		// On the test machine's own network: the pod network's tests run
		// nodes in network namespaces of their own (network_test.go).
		"--network=host",
	}, extra...)}
	a.start()
	m.t.Cleanup(a.stop)
	return a
}

func (a *agent) start() {
	a.t.Helper()
	log, err := os.OpenFile(a.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		a.t.Fatal(err)
	}
	defer log.Close()
	bin := a.bin
	if bin == "" {
		bin = filepath.Join(binDir, "kplex-nodeagent")
	}
	a.cmd = exec.Command(bin, a.args...)
	a.cmd.Stdout, a.cmd.Stderr = log, log
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
}

// stop stops the agent as systemd would: SIGTERM, and waits.
func (a *agent) stop() {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-done
		a.t.Errorf("kplex-nodeagent did not stop within 30s after SIGTERM")
	}
	a.cmd = nil
	if a.t.Failed() {
		if b, err := os.ReadFile(a.log); err == nil {
			tail := string(b)
			if len(tail) > 6000 {
				tail = tail[len(tail)-6000:]
			}
			a.t.Logf("agent log (tail):\n%s", tail)
		}
	}
}

// until retries a kubectl query until ok accepts its output.
func (m *machine) until(timeout time.Duration, what string, ok func(string) bool, args ...string) string {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, errOut, err := m.kubectl(args...)
		out = strings.TrimSpace(out)
		if err == nil && ok(out) {
			return out
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%s: not within %s; last: %q %v %s", what, timeout, out, err, errOut)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func equals(want string) func(string) bool { return func(s string) bool { return s == want } }

// TestE2ENodeAgentRunsPodsInContainerd: tenants' pods run in real
// containers (containerd + runc, busybox built from local files) on a
// kplex-nodeagent; kubectl logs, exec, restarts, deletion, two tenants'
// same-named pods on one node, a node fenced to one tenant, an agent
// restart that keeps the pods, and a stopped agent's node going NotReady.
func TestE2ENodeAgentRunsPodsInContainerd(t *testing.T) {
	m := newMachine(t)
	if err := containerd.Available(); err != nil {
		t.Fatalf("containerd is needed (.ci/run installs it): %v", err)
	}
	ctx := context.Background()
	ctrd, err := containerd.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctrd.Stop() })
	m.up("--metrics-resolution=2s")
	a, b := "--context=kplex-run-a", "--context=kplex-run-b"
	m.must(m.kplex("create", "cluster", "run-a"))
	m.must(m.kplex("create", "cluster", "run-b"))
	shared := m.startAgent("shared-1", ctrd.Endpoint)
	m.until(time.Minute, "node shared-1 Ready", equals("True"), "--context=kplex-root", "get", "node", "shared-1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	for _, ctx := range []string{a, b} {
		m.eventuallyWithin(30*time.Second, "default ServiceAccount", ctx, "get", "serviceaccount", "default")
	}

	// The same pod name in two tenants, on one node: each runs and each
	// tenant's logs are its own.
	for ctx, name := range map[string]string{a: "a", b: "b"} {
		m.must(m.kubectl(ctx, "run", "hello", "--image="+images.Busybox, "--", "sh", "-c", "echo hello from "+name+"; exec sleep 3600"))
	}
	for ctx, name := range map[string]string{a: "a", b: "b"} {
		m.until(90*time.Second, name+"'s hello Running", equals("Running"), ctx, "get", "pod", "hello", "-o", "jsonpath={.status.phase}")
		logs := m.until(30*time.Second, name+"'s hello logs", func(s string) bool { return s != "" }, ctx, "logs", "hello")
		if logs != "hello from "+name {
			t.Errorf("tenant %s: kubectl logs hello = %q, want its own pod's output only", name, logs)
		}
		if got := m.must(m.kubectl(ctx, "get", "pods", "-o", "name")); strings.TrimSpace(got) != "pod/hello" {
			t.Errorf("tenant %s lists pods %q, want its own hello only", name, got)
		}
	}
	// kubectl exec runs in the tenant's own container, and reports the
	// command's exit code.
	if out := m.must(m.kubectl(a, "exec", "hello", "--", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")); !strings.Contains(out, "sleep 3600") {
		t.Errorf("kubectl exec in a's hello: %q", out)
	}
	out, _, err := m.kubectl(b, "exec", "hello", "--", "sh", "-c", "exit 3")
	var exitErr *exec.ExitError
	if !errorsAs(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("kubectl exec 'exit 3': %v %q, want exit code 3", err, out)
	}

	// kubectl top: each tenant reads its own container's usage, as
	// containerd measures it (a sleeping busybox: a few hundred KiB, which
	// kubectl rounds to 0Mi, and little CPU).
	for ctx, name := range map[string]string{a: "a", b: "b"} {
		top := m.until(time.Minute, name+"'s kubectl top pod", func(s string) bool { return s != "" }, ctx, "top", "pod", "--no-headers")
		if f := strings.Fields(top); len(lines(top)) != 1 || len(f) != 3 || f[0] != "hello" || !strings.HasSuffix(f[1], "m") || !strings.HasSuffix(f[2], "Mi") {
			t.Errorf("tenant %s: kubectl top pod = %q, want its hello only, with its CPU and memory", name, top)
		}
		raw := m.must(m.kubectl(ctx, "get", "pods.metrics.k8s.io", "hello", "-o", "json"))
		var pm struct {
			Containers []struct {
				Name  string
				Usage map[string]*resource.Quantity
			}
		}
		if err := json.Unmarshal([]byte(raw), &pm); err != nil {
			t.Fatal(err)
		}
		if len(pm.Containers) != 1 || pm.Containers[0].Name != "hello" || pm.Containers[0].Usage["memory"] == nil || pm.Containers[0].Usage["memory"].Sign() <= 0 {
			t.Errorf("tenant %s: hello's metrics %s, want its container's working set", name, raw)
		}
	}
	if top := m.until(time.Minute, "kubectl top node", func(s string) bool { return s != "" }, "--context=kplex-root", "top", "node", "--no-headers"); !strings.HasPrefix(top, "shared-1 ") {
		t.Errorf("kubectl top node = %q, want shared-1's usage", top)
	}

	// Restarts per restartPolicy: Always restarts a failing container;
	// OnFailure lets a succeeding one complete.
	m.must(m.kubectl(a, "run", "crash", "--image="+images.Busybox, "--restart=Always", "--", "sh", "-c", "echo crashing; exit 1"))
	m.until(90*time.Second, "crash restarted", func(s string) bool { n, _ := strconv.Atoi(s); return n >= 1 }, a, "get", "pod", "crash", "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
	m.must(m.kubectl(a, "run", "done", "--image="+images.Busybox, "--restart=OnFailure", "--", "true"))
	m.until(90*time.Second, "done Succeeded", equals("Succeeded"), a, "get", "pod", "done", "-o", "jsonpath={.status.phase}")

	// Deleting a pod stops its container.
	id := containerID(m.must(m.kubectl(a, "get", "pod", "crash", "-o", "jsonpath={.status.containerStatuses[0].containerID}")))
	m.must(m.kubectl(a, "delete", "pod", "crash", "--grace-period=1", "--wait=true", "--timeout=60s"))
	if running(t, ctrd, id) {
		t.Errorf("container %s of the deleted pod still runs", id)
	}

	// The agent stops: the node goes NotReady, the containers run on; it
	// comes back: the same containers, not restarted.
	before := m.must(m.kubectl(b, "get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].containerID}"))
	shared.stop()
	m.until(30*time.Second, "node shared-1 NotReady", equals("False"), "--context=kplex-root", "get", "node", "shared-1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	if !running(t, ctrd, containerID(before)) {
		t.Errorf("b's hello stopped with the agent")
	}
	shared.start()
	m.until(time.Minute, "node shared-1 Ready again", equals("True"), "--context=kplex-root", "get", "node", "shared-1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	time.Sleep(2 * time.Second) // a few sync rounds of the restarted agent
	after := m.must(m.kubectl(b, "get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount} {.status.phase}"))
	if after != before+" 0 Running" {
		t.Errorf("b's hello after the agent restarted: %q, want %q", after, before+" 0 Running")
	}

	// A node fenced to tenant a: a's pod runs there, b's never does.
	m.startAgent("fenced-a", ctrd.Endpoint, "--tenant=run-a")
	m.until(time.Minute, "node fenced-a Ready", equals("True"), "--context=kplex-root", "get", "node", "fenced-a", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	if got := m.must(m.kubectl("--context=kplex-root", "get", "nodepool", "tenant-run-a", "-o", "jsonpath={.spec.mode} {.spec.tenants[0]}")); got != "dedicated run-a" {
		t.Errorf("the fenced node's pool: %q, want dedicated to run-a", got)
	}
	selector := `{"spec":{"nodeSelector":{"kubernetes.io/hostname":"fenced-a"},"tolerations":[{"operator":"Exists"}]}}`
	for _, ctx := range []string{a, b} {
		m.must(m.kubectl(ctx, "run", "pinned", "--image="+images.Busybox, "--overrides="+selector, "--", "sleep", "3600"))
	}
	m.until(90*time.Second, "a's pinned Running on fenced-a", equals("fenced-a Running"), a, "get", "pod", "pinned", "-o", "jsonpath={.spec.nodeName} {.status.phase}")
	m.until(30*time.Second, "b's pinned unschedulable", equals("False"), b, "get", "pod", "pinned", "-o", `jsonpath={.status.conditions[?(@.type=="PodScheduled")].status}`)
	time.Sleep(3 * time.Second)
	if got := m.must(m.kubectl(b, "get", "pod", "pinned", "-o", "jsonpath={.spec.nodeName}{.status.phase}")); got != "Pending" {
		t.Errorf("b's pod pinned to a's fenced node: %q, want Pending and unbound", got)
	}
	if got := m.must(m.kubectl(b, "get", "nodes", "-o", "name")); strings.Contains(got, "fenced-a") {
		t.Errorf("b lists a's fenced node: %q", got)
	}
}

func containerID(s string) string {
	_, id, _ := strings.Cut(strings.TrimSpace(s), "://")
	return id
}

// running reports whether containerd runs a task for container id.
func running(t *testing.T, c *containerd.Containerd, id string) bool {
	t.Helper()
	out, err := exec.Command("ctr", "--address", c.Address, "-n", containerd.Namespace, "tasks", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr tasks ls: %v %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == id {
			return f[2] == "RUNNING"
		}
	}
	return false
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

var _ = fmt.Sprint
