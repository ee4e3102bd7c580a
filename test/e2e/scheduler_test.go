package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// node registers a Ready node with kubectl, in pool (none if ""), with
// room for pods and gpus GPUs, as a node agent would.
func (m *machine) node(name, pool, gpus string) {
	m.t.Helper()
	labels := ""
	if pool != "" {
		labels = "\n  labels: {kplex.io/pool: " + pool + "}"
	}
	m.must(m.runStdin("apiVersion: v1\nkind: Node\nmetadata:\n  name: "+name+labels+"\n", "kubectl", "--context=kplex-root", "apply", "-f", "-"))
	m.must(m.kubectl("--context=kplex-root", "patch", "node", name, "--subresource=status", "--type=merge", "-p",
		`{"status":{"capacity":{"cpu":"8","memory":"32Gi","pods":"110","nvidia.com/gpu":"`+gpus+`"},"allocatable":{"cpu":"8","memory":"32Gi","pods":"110","nvidia.com/gpu":"`+gpus+`"},"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"test"}]}}`))
}

// waitNodeName waits for a pod to be bound and returns its node.
func (m *machine) waitNodeName(ctx, pod string) string {
	m.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, _, err := m.kubectl(ctx, "get", "pod", pod, "-o", "jsonpath={.spec.nodeName}")
		if err == nil && strings.TrimSpace(out) != "" {
			return strings.TrimSpace(out)
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%s: pod %s not bound", ctx, pod)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestE2ESchedulerPlacesTenantsPodsOnTheirPools: with kubectl only, an
// operator defines a pool dedicated to tenant A and a shared one; each
// tenant's `kubectl get nodes` lists the nodes it may use; A's pod
// lands on A's pool and `kubectl describe pod` names node and pool; B's
// pod with every toleration never lands there and B reads why; a refused
// NodePool names its field.
func TestE2ESchedulerPlacesTenantsPodsOnTheirPools(t *testing.T) {
	m := newMachine(t)
	m.up()
	pools := `apiVersion: scheduling.kplex.io/v1alpha1
kind: NodePool
metadata: {name: gpu-a}
spec: {mode: dedicated, tenants: [sched-a]}
---
apiVersion: scheduling.kplex.io/v1alpha1
kind: NodePool
metadata: {name: general}
spec: {mode: shared}
`
	m.must(m.runStdin(pools, "kubectl", "--context=kplex-root", "apply", "-f", "-"))
	bad := m.mustFail(m.runStdin("apiVersion: scheduling.kplex.io/v1alpha1\nkind: NodePool\nmetadata: {name: bad}\nspec: {mode: dedicated, tenants: [a, b]}\n",
		"kubectl", "--context=kplex-root", "apply", "-f", "-"))
	if !strings.Contains(bad, "spec.tenants") || !strings.Contains(bad, "a dedicated pool names exactly one tenant") {
		t.Errorf("a dedicated pool with two tenants: %s", bad)
	}
	m.node("gpu-node", "gpu-a", "8")
	m.node("cpu-node", "general", "0")
	for _, name := range []string{"sched-a", "sched-b"} {
		m.must(m.kplex("create", "cluster", name))
		m.eventuallyWithin(30*time.Second, name+": default ServiceAccount", "--context=kplex-"+name, "get", "serviceaccount", "default")
	}
	// Each tenant lists the nodes its pods may use, and changes none.
	if got := lines(m.must(m.kubectl("--context=kplex-sched-a", "get", "nodes", "-o", "name"))); strings.Join(got, " ") != "node/cpu-node node/gpu-node" {
		t.Errorf("A's nodes: %v", got)
	}
	if got := lines(m.must(m.kubectl("--context=kplex-sched-b", "get", "nodes", "-o", "name"))); strings.Join(got, " ") != "node/cpu-node" {
		t.Errorf("B's nodes: %v", got)
	}
	if errOut := m.mustFail(m.kubectl("--context=kplex-sched-b", "delete", "node", "cpu-node")); !strings.Contains(errOut, "Forbidden") {
		t.Errorf("B deleting a node: %s", errOut)
	}
	gpuPod := `{"spec":{"nodeSelector":{"kplex.io/pool":"gpu-a"},"tolerations":[{"operator":"Exists"}],"containers":[{"name":"train","image":"busybox","resources":{"limits":{"nvidia.com/gpu":"1"}}}]}}`
	m.must(m.kubectl("--context=kplex-sched-a", "run", "train", "--image=busybox", "--overrides="+gpuPod))
	m.must(m.kubectl("--context=kplex-sched-b", "run", "train", "--image=busybox", "--overrides="+gpuPod))
	m.must(m.kubectl("--context=kplex-sched-b", "run", "web", "--image=busybox"))

	if node := m.waitNodeName("--context=kplex-sched-a", "train"); node != "gpu-node" {
		t.Errorf("A's train on %s, want gpu-node", node)
	}
	describe := m.must(m.kubectl("--context=kplex-sched-a", "describe", "pod", "train"))
	if !hasFields(describe, "Node:", "gpu-node/") || !strings.Contains(describe, "kplex.io/pool: gpu-a") {
		t.Errorf("describe pod in A names neither node nor pool:\n%s", describe)
	}
	if node := m.waitNodeName("--context=kplex-sched-b", "web"); node != "cpu-node" {
		t.Errorf("B's web on %s, want cpu-node", node)
	}
	reason := m.eventually("B's pending reason", "--context=kplex-sched-b", "get", "pod", "train", "-o", `jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}`)
	for deadline := time.Now().Add(time.Minute); !strings.Contains(reason, "pool this tenant may not use"); {
		if time.Now().After(deadline) {
			t.Fatalf("B's train: no fencing reason, last %q", reason)
		}
		time.Sleep(300 * time.Millisecond)
		reason = m.must(m.kubectl("--context=kplex-sched-b", "get", "pod", "train", "-o", `jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}`))
	}
	if strings.Contains(reason, "sched-a") || strings.Contains(reason, "gpu-a") {
		t.Errorf("B's reason names A or its pool: %s", reason)
	}
	if node, _, _ := m.kubectl("--context=kplex-sched-b", "get", "pod", "train", "-o", "jsonpath={.spec.nodeName}"); node != "" {
		t.Errorf("B's train bound to %s", node)
	}
}

// TestE2ESchedulerReplicasElectOneLeader: two kplex-scheduler processes
// beside `kplex up --scheduler=false`; the first leads; when it is
// stopped, the second takes the lease and schedules.
func TestE2ESchedulerReplicasElectOneLeader(t *testing.T) {
	m := newMachine(t)
	m.up("--scheduler=false")
	kubeconfig := filepath.Join(t.TempDir(), "root.kubeconfig")
	flat := m.must(m.kubectl("config", "view", "--minify", "--flatten", "--context=kplex-root"))
	if err := os.WriteFile(kubeconfig, []byte(flat), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(filepath.Join(binDir, "kplex-scheduler"), "--kubeconfig="+kubeconfig, "--secure-port=0",
			"--leader-elect=true", "--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=250ms")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	first := start()
	holder := m.eventually("the first scheduler's lease", "--context=kplex-root", "get", "lease", "-n", "kube-system", "kube-scheduler", "-o", "jsonpath={.spec.holderIdentity}")
	start()
	m.node("n1", "", "0")
	m.must(m.kplex("create", "cluster", "elect"))
	m.eventuallyWithin(30*time.Second, "default ServiceAccount", "--context=kplex-elect", "get", "serviceaccount", "default")
	m.must(m.kubectl("--context=kplex-elect", "run", "before", "--image=busybox"))
	m.waitNodeName("--context=kplex-elect", "before")

	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	m.must(m.kubectl("--context=kplex-elect", "run", "after", "--image=busybox"))
	m.waitNodeName("--context=kplex-elect", "after")
	now := m.must(m.kubectl("--context=kplex-root", "get", "lease", "-n", "kube-system", "kube-scheduler", "-o", "jsonpath={.spec.holderIdentity}"))
	if now == holder || now == "" {
		t.Errorf("the lease is still held by %q after its holder stopped", now)
	}
}
