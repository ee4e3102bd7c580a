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
