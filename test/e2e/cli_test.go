package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestE2EClusterLifecycle walks the README: up, create, use with kubectl,
// list, credentials, delete, down, and up again on the same data.
func TestE2EClusterLifecycle(t *testing.T) {
	m := newMachine(t)
	_, upErr, err := m.kplex("up", "--data-dir", m.dataDir, "--secure-port", strconv.Itoa(m.port))
	m.must("", upErr, err)
	if !strings.Contains(upErr, "Waiting") || !strings.Contains(upErr, "✓") {
		t.Errorf("kplex up showed no progress on stderr: %q", upErr)
	}
	if errOut := m.mustFail(m.kplex("up", "--data-dir", m.dataDir, "--secure-port", strconv.Itoa(m.port))); !strings.Contains(errOut, "already running") {
		t.Errorf("second kplex up: %q, want 'already running'", errOut)
	}

	out := m.must(m.kplex("create", "cluster", "demo"))
	if !strings.Contains(out, `Cluster "demo" created in`) {
		t.Errorf("create cluster printed %q, want how long it took", out)
	}
	ns := lines(m.must(m.kubectl("--context", "kplex-demo", "get", "ns", "-o", "name")))
	want := []string{"namespace/default", "namespace/kube-node-lease", "namespace/kube-public", "namespace/kube-system"}
	if !slices.Equal(ns, want) {
		t.Errorf("kubectl get ns in demo = %v, want %v", ns, want)
	}
	m.must(m.kubectl("--context", "kplex-demo", "create", "deployment", "web", "--image=busybox"))
	if got := m.must(m.kubectl("--context", "kplex-demo", "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")); got != "busybox" {
		t.Errorf("deployment image = %q", got)
	}
	m.must(m.kubectl("--context", "kplex-demo", "get", "service", "kubernetes", "-n", "default"))
	// Everyday kubectl works unchanged against a tenant.
	if out := m.must(m.kubectl("--context", "kplex-demo", "api-resources", "-o", "name")); !strings.Contains(out, "deployments.apps") {
		t.Errorf("api-resources in a tenant: %q", out)
	}
	if out := m.must(m.kubectl("--context", "kplex-demo", "auth", "can-i", "create", "pods")); strings.TrimSpace(out) != "yes" {
		t.Errorf("auth can-i in a tenant: %q", out)
	}
	manifest := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"applied","namespace":"default"},"data":{"v":"%s"}}`
	for _, v := range []string{"1", "2"} {
		m.must(m.runStdin(fmt.Sprintf(manifest, v), "kubectl", "--context", "kplex-demo", "apply", "-f", "-"))
	}
	if got := m.must(m.kubectl("--context", "kplex-demo", "get", "configmap", "applied", "-o", "jsonpath={.data.v}")); got != "2" {
		t.Errorf("client-side apply twice: v=%q", got)
	}
	if v := m.must(m.kubectl("--context", "kplex-demo", "version", "-o", "json")); !strings.Contains(v, `"gitVersion": "v1.37.2+kplex`) {
		t.Errorf("server version is not stamped: %s", v)
	}

	// Errors a user makes.
	if errOut := m.mustFail(m.kplex("create", "cluster", "demo")); !strings.Contains(errOut, `cluster "demo" already exists`) {
		t.Errorf("duplicate create: %q", errOut)
	}
	if errOut := m.mustFail(m.kplex("create", "cluster", "Bad.Name")); !strings.Contains(errOut, "DNS-1123") {
		t.Errorf("bad name: %q", errOut)
	}

	m.must(m.kplex("create", "cluster", "other"))
	table := m.must(m.kplex("get", "clusters"))
	if !strings.Contains(table, "NAME") || !strings.Contains(table, "demo") || !strings.Contains(table, "Ready") {
		t.Errorf("get clusters table: %q", table)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(m.must(m.kplex("get", "clusters", "-o", "json"))), &list); err != nil || len(list) != 2 {
		t.Errorf("get clusters -o json: %v, %v", list, err)
	}

	other := filepath.Join(t.TempDir(), "other-kubeconfig")
	m.must(m.kplex("get-credentials", "demo", "--kubeconfig", other, "--set-current"))
	if got := m.must(m.kubectl("--kubeconfig", other, "get", "deployment", "-o", "name")); strings.TrimSpace(got) != "deployment.apps/web" {
		t.Errorf("with the written kubeconfig's current context: %q", got)
	}
	if errOut := m.mustFail(m.kplex("get-credentials", "nope")); !strings.Contains(errOut, `cluster "nope" not found`) {
		t.Errorf("get-credentials of a missing cluster: %q", errOut)
	}

	m.must(m.kplex("delete", "cluster", "other"))
	if errOut := m.mustFail(m.kubectl("--context", "kplex-other", "get", "ns")); !strings.Contains(errOut, "context") {
		t.Errorf("context of deleted cluster still usable: %q", errOut)
	}
	if got := lines(m.must(m.kplex("get", "clusters", "-o", "name"))); !slices.Equal(got, []string{"demo"}) {
		t.Errorf("clusters after delete: %v", got)
	}

	// Down and up again: the cluster and its objects are still there.
	m.must(m.kplex("down", "--data-dir", m.dataDir))
	if errOut := m.mustFail(m.kplex("get", "clusters")); !strings.Contains(errOut, "kplex up") {
		t.Errorf("get clusters while down: %q, want a hint to run kplex up", errOut)
	}
	m.up()
	if got := m.must(m.kubectl("--context", "kplex-demo", "get", "deployment", "web", "-o", "name")); strings.TrimSpace(got) != "deployment.apps/web" {
		t.Errorf("after down and up, deployment = %q", got)
	}
}
