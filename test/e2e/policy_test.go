package e2e

import (
	"strings"
	"testing"
	"time"
)

// eventually retries a kubectl call until it succeeds, for up to 20
// seconds: the authorizer follows RBAC objects by watch, within
// milliseconds.
func (m *machine) eventually(what string, args ...string) string {
	m.t.Helper()
	return m.eventuallyWithin(20*time.Second, what, args...)
}

// unauthorized tells kubectl's ways of saying 401.
func unauthorized(stderr string) bool {
	return strings.Contains(stderr, "Unauthorized") || strings.Contains(stderr, "provide credentials")
}

// TestE2EPolicyIsPerTenant grants, checks and revokes with kubectl in one
// tenant while a second tenant with the same names feels nothing of it.
func TestE2EPolicyIsPerTenant(t *testing.T) {
	m := newMachine(t)
	m.up()
	tokens := map[string]string{}
	for _, name := range []string{"alpha", "beta"} {
		m.must(m.kplex("create", "cluster", name))
		ctx := "--context=kplex-" + name
		m.must(m.kubectl(ctx, "create", "serviceaccount", "bot"))
		tokens[name] = strings.TrimSpace(m.must(m.kubectl(ctx, "create", "token", "bot")))
	}
	asBot := func(tenant string, args ...string) []string {
		return append([]string{"--context=kplex-" + tenant, "--token=" + tokens[tenant]}, args...)
	}

	// Nothing granted yet.
	if out, _, _ := m.kubectl(asBot("alpha", "auth", "can-i", "list", "configmaps")...); strings.TrimSpace(out) != "no" {
		t.Fatalf("alpha's bot can list configmaps before any grant: %q", out)
	}
	m.must(m.kubectl("--context=kplex-alpha", "create", "role", "reader", "--verb=get,list", "--resource=configmaps"))
	m.must(m.kubectl("--context=kplex-alpha", "create", "rolebinding", "bot-reads", "--role=reader", "--serviceaccount=default:bot"))
	m.eventually("alpha's grant works in alpha", asBot("alpha", "get", "configmaps")...)
	if out := m.must(m.kubectl(asBot("alpha", "auth", "can-i", "list", "configmaps")...)); strings.TrimSpace(out) != "yes" {
		t.Errorf("kubectl auth can-i in alpha after the grant: %q", out)
	}

	// The same subject in beta was granted nothing.
	if out, _, _ := m.kubectl(asBot("beta", "auth", "can-i", "list", "configmaps")...); strings.TrimSpace(out) != "no" {
		t.Errorf("beta's bot can list configmaps after a grant in alpha: %q", out)
	}
	if errOut := m.mustFail(m.kubectl(asBot("beta", "get", "configmaps")...)); !strings.Contains(errOut, "Forbidden") {
		t.Errorf("beta's bot listing configmaps: %s", errOut)
	}
	// alpha's token means nothing on beta's path or root's.
	if errOut := m.mustFail(m.kubectl("--context=kplex-beta", "--token="+tokens["alpha"], "get", "configmaps")); !unauthorized(errOut) {
		t.Errorf("alpha's token on beta: %s", errOut)
	}
	alphaURL := m.must(m.kubectl("config", "view", "--minify", "--context=kplex-alpha", "-o", "jsonpath={.clusters[0].cluster.server}"))
	rootURL := strings.TrimSuffix(alphaURL, "/clusters/alpha")
	if errOut := m.mustFail(m.kubectl("--context=kplex-alpha", "--server="+rootURL+"/clusters/root", "--token="+tokens["alpha"], "get", "configmaps")); !unauthorized(errOut) {
		t.Errorf("alpha's token on root: %s", errOut)
	}
	// Without a prefix (an in-cluster client's address), alpha's token is
	// served in alpha, as its pods' clients expect: never in root.
	if out := m.must(m.kubectl("--context=kplex-alpha", "--server="+rootURL, "--token="+tokens["alpha"], "get", "configmaps", "-o", "name")); !strings.Contains(out, "configmap/kube-root-ca.crt") {
		t.Errorf("alpha's token without a prefix: %q", out)
	}

	// Revoking in alpha takes the grant away.
	m.must(m.kubectl("--context=kplex-alpha", "delete", "rolebinding", "bot-reads"))
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, _ := m.kubectl(asBot("alpha", "auth", "can-i", "list", "configmaps")...)
		if strings.TrimSpace(out) == "no" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alpha's bot can still list configmaps after the revoke")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Namespaces are each tenant's own, in admission too.
	m.must(m.kubectl("--context=kplex-alpha", "create", "namespace", "alpha-only"))
	m.must(m.kubectl("--context=kplex-alpha", "create", "configmap", "c", "-n", "alpha-only"))
	if errOut := m.mustFail(m.kubectl("--context=kplex-beta", "create", "configmap", "c", "-n", "alpha-only")); !strings.Contains(errOut, `namespaces "alpha-only" not found`) {
		t.Errorf("creating in alpha's namespace from beta: %s", errOut)
	}
	if errOut := m.mustFail(m.kubectl("--context=kplex-beta", "delete", "namespace", "kube-system")); !strings.Contains(errOut, "may not be deleted") {
		t.Errorf("deleting beta's kube-system: %s", errOut)
	}
}
