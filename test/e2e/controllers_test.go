package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// eventuallyWithin retries a kubectl call until it succeeds or timeout passes.
func (m *machine) eventuallyWithin(timeout time.Duration, what string, args ...string) string {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, errOut, err := m.kubectl(args...)
		if err == nil {
			return out
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%s: kubectl %s: %v\n%s", what, strings.Join(args, " "), err, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestE2ENewNamespaceGetsDefaultServiceAccountAndRootCA: `kplex up` runs the
// controllers in its process; a namespace made with kubectl in a tenant gets
// its default ServiceAccount and kube-root-ca.crt (holding the CA kplex
// serves with), in each tenant.
func TestE2ENewNamespaceGetsDefaultServiceAccountAndRootCA(t *testing.T) {
	m := newMachine(t)
	m.up()
	ca, err := os.ReadFile(filepath.Join(m.dataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatalf("reading kplex's CA: %v", err)
	}
	for _, name := range []string{"gamma", "delta"} {
		m.must(m.kplex("create", "cluster", name))
		ctx := "--context=kplex-" + name
		m.must(m.kubectl(ctx, "create", "namespace", "x"))
		m.eventuallyWithin(30*time.Second, name+": default ServiceAccount in x", ctx, "get", "serviceaccount", "default", "-n", "x")
		m.eventuallyWithin(30*time.Second, name+": kube-root-ca.crt in x", ctx, "get", "configmap", "kube-root-ca.crt", "-n", "x")
		got := m.must(m.kubectl(ctx, "get", "configmap", "kube-root-ca.crt", "-n", "x", "-o", `jsonpath={.data.ca\.crt}`))
		if strings.TrimSpace(got) != strings.TrimSpace(string(ca)) {
			t.Errorf("%s: kube-root-ca.crt holds %q, want kplex's CA", name, got)
		}
	}
}

// podCount returns how many pods labelled app=<app> kubectl lists.
func (m *machine) podCount(ctx, app string) int {
	out := m.must(m.kubectl(ctx, "get", "pods", "-l", "app="+app, "-o", "name"))
	return len(strings.Fields(out))
}

func (m *machine) waitPods(ctx, app string, want int) {
	m.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := m.podCount(ctx, app)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%s: %d pods of %s, want %d", ctx, got, app, want)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestE2EDeploymentsNamespacesAndGarbageCollection: in `kplex up`,
// `kubectl create deployment` makes pods, scaling and deleting act on that
// tenant's pods only, and deleting a namespace empties and removes it in
// that tenant only.
func TestE2EDeploymentsNamespacesAndGarbageCollection(t *testing.T) {
	m := newMachine(t)
	m.up()
	a, b := "--context=kplex-dep-a", "--context=kplex-dep-b"
	m.must(m.kplex("create", "cluster", "dep-a"))
	m.must(m.kplex("create", "cluster", "dep-b"))
	for _, ctx := range []string{a, b} {
		// The default ServiceAccount must exist before pods are admitted;
		// the ReplicaSet controller retries until it does.
		m.must(m.kubectl(ctx, "create", "deployment", "web", "--image=busybox", "--replicas=2"))
	}
	m.waitPods(a, "web", 2)
	m.waitPods(b, "web", 2)
	owner := m.must(m.kubectl(a, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.ownerReferences[0].kind}"))
	if owner != "ReplicaSet" {
		t.Errorf("dep-a's pod is owned by %q, want a ReplicaSet", owner)
	}

	m.must(m.kubectl(a, "scale", "deployment", "web", "--replicas=3"))
	m.waitPods(a, "web", 3)
	if got := m.podCount(b, "web"); got != 2 {
		t.Errorf("dep-b has %d pods after dep-a scaled to 3, want 2", got)
	}
	m.must(m.kubectl(b, "scale", "deployment", "web", "--replicas=1"))
	m.waitPods(b, "web", 1)
	if got := m.podCount(a, "web"); got != 3 {
		t.Errorf("dep-a has %d pods after dep-b scaled down to 1, want 3", got)
	}

	// kubectl's default cascade is background: the garbage collector
	// takes the ReplicaSet and the pods.
	m.must(m.kubectl(a, "delete", "deployment", "web"))
	m.waitPods(a, "web", 0)
	if out := m.must(m.kubectl(a, "get", "replicasets", "-o", "name")); strings.TrimSpace(out) != "" {
		t.Errorf("dep-a still has ReplicaSets after its deployment was deleted: %s", out)
	}
	if got := m.podCount(b, "web"); got != 1 {
		t.Errorf("dep-b has %d pods after dep-a's deployment was deleted, want 1", got)
	}

	// kubectl delete namespace waits until the namespace is gone.
	for _, ctx := range []string{a, b} {
		m.must(m.kubectl(ctx, "create", "namespace", "tmp"))
		m.must(m.kubectl(ctx, "create", "configmap", "cfg", "-n", "tmp", "--from-literal=k=v"))
	}
	m.must(m.kubectl(a, "create", "deployment", "db", "-n", "tmp", "--image=busybox"))
	// A custom resource in it goes too.
	m.must(m.runStdin(widgetsAlpha, "kubectl", a, "apply", "-f", "-"))
	m.must(m.kubectl(a, "wait", "--for=condition=Established", "--timeout=60s", "crd/widgets.example.com"))
	// Served a moment after Established (upstream's hold-back): retried.
	widget := "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		out, errOut, err := m.runStdin(widget, "kubectl", a, "apply", "-n", "tmp", "-f", "-")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			m.must(out, errOut, err)
		}
	}
	m.must(m.kubectl(a, "delete", "namespace", "tmp", "--timeout=90s"))
	if _, errOut, err := m.kubectl(a, "get", "namespace", "tmp"); err == nil || !strings.Contains(errOut, "NotFound") {
		t.Errorf("dep-a's namespace tmp after kubectl delete: err %v, %s", err, errOut)
	}
	if out := m.must(m.kubectl(a, "get", "widgets", "-A", "-o", "name")); strings.TrimSpace(out) != "" {
		t.Errorf("dep-a's widgets after its namespace tmp was deleted: %s", out)
	}
	m.must(m.kubectl(b, "get", "configmap", "cfg", "-n", "tmp"))
	if phase := m.must(m.kubectl(b, "get", "namespace", "tmp", "-o", "jsonpath={.status.phase}")); phase != "Active" {
		t.Errorf("dep-b's namespace tmp is %q after dep-a's was deleted, want Active", phase)
	}
}

// TestE2EResourceQuotaPerTenant: a quota made with kubectl in one tenant
// counts and limits that tenant's pods only.
func TestE2EResourceQuotaPerTenant(t *testing.T) {
	m := newMachine(t)
	m.up()
	a, b := "--context=kplex-quota-a", "--context=kplex-quota-b"
	m.must(m.kplex("create", "cluster", "quota-a"))
	m.must(m.kplex("create", "cluster", "quota-b"))
	m.must(m.kubectl(a, "create", "quota", "q", "--hard=pods=1"))
	// The controller fills in the quota's status; until it has, the
	// quota admits nothing.
	m.eventuallyWithin(30*time.Second, "quota-a's first pod", a, "run", "p1", "--image=busybox", "--restart=Never")
	errOut := m.mustFail(m.kubectl(a, "run", "p2", "--image=busybox", "--restart=Never"))
	if !strings.Contains(errOut, "exceeded quota: q") {
		t.Errorf("quota-a's second pod: %s, want exceeded quota: q", errOut)
	}
	for _, name := range []string{"p1", "p2", "p3"} {
		m.eventuallyWithin(30*time.Second, "quota-b's pod "+name, b, "run", name, "--image=busybox", "--restart=Never")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		used := m.must(m.kubectl(a, "get", "quota", "q", "-o", "jsonpath={.status.used.pods}"))
		if used == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("quota-a's quota shows %q pods used, want 1 (quota-b has 3)", used)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestE2EJobCompletesPerTenant: `kubectl create job` makes a pod, which
// the local node agent runs (simulated runtime) to completion, and `kubectl
// wait` sees the job complete; tenant B's same-named job, whose container
// exits 1, fails in B only.
func TestE2EJobCompletesPerTenant(t *testing.T) {
	m := newMachine(t)
	m.up("--runtime=simulated")
	a, b := "--context=kplex-job-a", "--context=kplex-job-b"
	m.must(m.kplex("create", "cluster", "job-a"))
	m.must(m.kplex("create", "cluster", "job-b"))
	m.eventuallyWithin(30*time.Second, "job-a's default ServiceAccount", a, "get", "serviceaccount", "default")
	m.eventuallyWithin(30*time.Second, "job-b's default ServiceAccount", b, "get", "serviceaccount", "default")
	m.must(m.kubectl(a, "create", "job", "once", "--image=busybox", "--", "true"))
	m.must(m.runStdin(`apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {kplex.io/simulate-exit-code: "1"}
    spec:
      restartPolicy: Never
      containers: [{name: once, image: busybox, command: ["false"]}]
`, "kubectl", b, "apply", "-f", "-"))
	m.must(m.kubectl(a, "wait", "--for=condition=complete", "job/once", "--timeout=90s"))
	m.must(m.kubectl(b, "wait", "--for=condition=failed", "job/once", "--timeout=90s"))
	if got := m.must(m.kubectl(b, "get", "job", "once", "-o", "jsonpath={.status.succeeded}")); got != "" && got != "0" {
		t.Errorf("job-b's job shows %q succeeded; its container exits 1", got)
	}
	if got := m.must(m.kubectl(a, "get", "job", "once", "-o", "jsonpath={.status.failed}")); got != "" && got != "0" {
		t.Errorf("job-a's job shows %q failed after job-b's failed", got)
	}
}
