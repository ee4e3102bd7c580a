package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestE2ETenantsCannotSeeOrTouchEachOther does with kubectl what a second
// tenant must never notice: same names everywhere, different contents.
func TestE2ETenantsCannotSeeOrTouchEachOther(t *testing.T) {
	m := newMachine(t)
	m.up()
	tenants := []string{"alpha", "beta"}
	resources := map[string]string{"alpha": "pods", "beta": "services"}
	for _, name := range tenants {
		m.must(m.kplex("create", "cluster", name))
		ctx := "--context=kplex-" + name
		m.must(m.kubectl(ctx, "create", "namespace", "team"))
		m.must(m.kubectl(ctx, "create", "configmap", "settings", "-n", "team", "--from-literal=owner="+name))
		m.must(m.kubectl(ctx, "create", "secret", "generic", "creds", "-n", "team", "--from-literal=owner="+name))
		m.must(m.kubectl(ctx, "create", "clusterrole", "reader", "--verb=get", "--resource="+resources[name]))
	}
	m.must(m.kubectl("--context=kplex-beta", "create", "namespace", "beta-only"))

	for _, name := range tenants {
		ctx := "--context=kplex-" + name
		if got := m.must(m.kubectl(ctx, "get", "configmap", "settings", "-n", "team", "-o", "jsonpath={.data.owner}")); got != name {
			t.Errorf("%s: configmap owner = %q", name, got)
		}
		if got := m.must(m.kubectl(ctx, "get", "secret", "creds", "-n", "team", "-o", "jsonpath={.data.owner}")); got == "" {
			t.Errorf("%s: secret has no data", name)
		}
		if got := m.must(m.kubectl(ctx, "get", "clusterrole", "reader", "-o", "jsonpath={.rules[0].resources[0]}")); got != resources[name] {
			t.Errorf("%s: clusterrole resource = %q, want %q", name, got, resources[name])
		}
	}
	// Every tenant sees the default RBAC policy, shared from root.
	m.must(m.kubectl("--context=kplex-alpha", "get", "clusterrole", "cluster-admin", "view"))
	if got := lines(m.must(m.kubectl("--context=kplex-alpha", "get", "ns", "-o", "name"))); slices.Contains(got, "namespace/beta-only") {
		t.Errorf("alpha lists beta's namespace: %v", got)
	}

	// A forged identity is overwritten, and beta's object is untouched.
	m.must(m.kubectl("--context=kplex-alpha", "annotate", "--overwrite", "configmap", "settings", "-n", "team", "kplex.io/tenant=beta"))
	if got := m.must(m.kubectl("--context=kplex-alpha", "get", "configmap", "settings", "-n", "team", "-o", `jsonpath={.metadata.annotations.kplex\.io/tenant}`)); got != "alpha" {
		t.Errorf("after annotating a forged identity, alpha's configmap says %q", got)
	}
	applied := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings","namespace":"team","annotations":{"kplex.io/tenant":"beta"}},"data":{"owner":"forged"}}`
	m.must(m.runStdin(applied, "kubectl", "--context=kplex-alpha", "apply", "--server-side", "--force-conflicts", "-f", "-"))
	if got := m.must(m.kubectl("--context=kplex-beta", "get", "configmap", "settings", "-n", "team", "-o", "jsonpath={.data.owner}")); got != "beta" {
		t.Errorf("alpha's server-side apply with beta's identity changed beta's configmap: owner %q", got)
	}

	// Deleting in alpha leaves beta's same-named objects.
	m.must(m.kubectl("--context=kplex-alpha", "delete", "configmap", "settings", "-n", "team"))
	m.must(m.kubectl("--context=kplex-alpha", "delete", "clusterrole", "reader"))
	m.must(m.kubectl("--context=kplex-beta", "get", "configmap", "settings", "-n", "team"))
	m.must(m.kubectl("--context=kplex-beta", "get", "clusterrole", "reader"))

	// alpha's credentials work nowhere but on alpha.
	betaURL := m.must(m.kubectl("config", "view", "-o", `jsonpath={.clusters[?(@.name=="kplex-beta")].cluster.server}`))
	base := strings.TrimSuffix(betaURL, "/clusters/beta")
	for _, server := range []string{betaURL, base, base + "/clusters/*"} {
		errOut := m.mustFail(m.kubectl("--context=kplex-alpha", "--server="+server, "get", "configmaps", "-n", "team"))
		if !strings.Contains(errOut, "Forbidden") && !strings.Contains(errOut, "forbidden") {
			t.Errorf("alpha's credentials on %s: %q, want Forbidden", server, errOut)
		}
	}

	// A watch in beta sees beta's change and nothing of alpha's.
	watchOut := m.watch("--context=kplex-beta", "get", "configmaps", "-n", "team", "--watch-only", "-o", "name")
	time.Sleep(2 * time.Second)
	m.must(m.kubectl("--context=kplex-alpha", "create", "configmap", "from-alpha", "-n", "team"))
	m.must(m.kubectl("--context=kplex-beta", "create", "configmap", "from-beta", "-n", "team"))
	if got := lines(watchOut()); !slices.Equal(got, []string{"configmap/from-beta"}) {
		t.Errorf("beta's watch saw %v, want only configmap/from-beta", got)
	}
}

func (m *machine) runStdin(stdin, name string, args ...string) (string, string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+m.kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// watch starts kubectl in the background; the returned func stops it after a
// short grace period and returns what it printed.
func (m *machine) watch(args ...string) func() string {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+m.kubeconfig)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	return func() string {
		time.Sleep(3 * time.Second)
		cancel()
		_ = cmd.Wait()
		return out.String()
	}
}
