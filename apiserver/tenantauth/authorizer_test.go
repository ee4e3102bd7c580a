package tenantauth

import (
	"context"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/kplex/kplex/tenant"
)

func TestAuthorizerConfinesIdentities(t *testing.T) {
	t.Parallel()
	admin := &user.DefaultInfo{Name: "kplex-admin", Groups: []string{user.SystemPrivilegedGroup}}
	scheduler := &user.DefaultInfo{Name: "system:kube-scheduler"}
	acme := AdminUser("acme")
	tests := []struct {
		name      string
		requested string
		user      user.Info
		verb      string
		resource  bool
		allowed   bool
		sub       string
	}{
		{name: "tenant admin proxies to a node", requested: "acme", user: acme, verb: "get", resource: true, sub: "proxy"},
		{name: "tenant admin execs into a pod", requested: "acme", user: acme, verb: "create", resource: true, sub: "exec", allowed: true},
		{name: "tenant admin reads pod logs", requested: "acme", user: acme, verb: "get", resource: true, sub: "log", allowed: true},
		{name: "tenant admin updates pod status", requested: "acme", user: acme, verb: "update", resource: true, sub: "status", allowed: true},
		{name: "deleted tenant's token on its path", requested: "acme", user: DeletedUser("acme"), verb: "get", resource: true, allowed: true},
		{name: "deleted tenant's token elsewhere", requested: "other", user: DeletedUser("acme"), verb: "get", resource: true},
		{name: "deleted tenant's token on root", requested: tenant.Root, user: DeletedUser("acme"), verb: "get", resource: true},
		{name: "deleted tenant's token impersonating", requested: "acme", user: DeletedUser("acme"), verb: "impersonate", resource: true},
		{name: "anonymous on a tenant", requested: "acme", user: &user.DefaultInfo{Name: user.Anonymous}, verb: "get"},
		{name: "anonymous on root", requested: tenant.Root, user: &user.DefaultInfo{Name: user.Anonymous}, verb: "get", allowed: true},
		{name: "root admin proxies", requested: "acme", user: admin, verb: "get", resource: true, sub: "proxy", allowed: true},
		{"tenant admin on its own tenant", "acme", acme, "create", true, true, ""},
		{"tenant admin on another tenant", "other", acme, "get", true, false, ""},
		{"tenant admin on root", tenant.Root, acme, "list", true, false, ""},
		{"tenant admin across tenants", tenant.Wildcard, acme, "list", true, false, ""},
		{"tenant admin impersonating", "acme", acme, "impersonate", true, false, ""},
		{"root admin on a tenant", "acme", admin, "delete", true, true, ""},
		{"root admin lists across tenants", tenant.Wildcard, admin, "list", true, true, ""},
		{"root admin watches across tenants", tenant.Wildcard, admin, "watch", true, true, ""},
		{"root admin writes across tenants", tenant.Wildcard, admin, "create", true, false, ""},
		{"root admin gets one object across tenants", tenant.Wildcard, admin, "get", true, false, ""},
		{"root admin discovers across tenants", tenant.Wildcard, admin, "get", false, true, ""},
		{"unprivileged identity across tenants", tenant.Wildcard, scheduler, "list", true, false, ""},
	}
	allowAll := authorizer.AuthorizerFunc(func(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionAllow, "", nil
	})
	for _, tc := range tests {
		ctx := tenant.WithTenant(context.Background(), tc.requested)
		resource := "configmaps"
		if tc.sub != "" {
			resource = "pods"
		}
		attrs := authorizer.AttributesRecord{User: tc.user, Verb: tc.verb, ResourceRequest: tc.resource, Resource: resource, Subresource: tc.sub}
		decision, reason, err := Authorizer(allowAll, allowAll).Authorize(ctx, attrs)
		if err != nil {
			t.Fatal(err)
		}
		if got := decision == authorizer.DecisionAllow; got != tc.allowed {
			t.Errorf("%s: allowed=%v (%s), want %v", tc.name, got, reason, tc.allowed)
		}
	}
}

func TestAuthorizerAsksThePolicyOfThePath(t *testing.T) {
	t.Parallel()
	decide := func(allow bool) authorizer.Authorizer {
		return authorizer.AuthorizerFunc(func(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
			if allow {
				return authorizer.DecisionAllow, "", nil
			}
			return authorizer.DecisionNoOpinion, "", nil
		})
	}
	bob := &user.DefaultInfo{Name: "bob", Groups: []string{user.AllAuthenticated}}
	masters := &user.DefaultInfo{Name: "kplex-admin", Groups: []string{user.SystemPrivilegedGroup}}
	tests := []struct {
		name            string
		requested       string
		user            user.Info
		root, perTenant bool
		allowed         bool
	}{
		{"root's policy on root", tenant.Root, bob, true, false, true},
		{"tenant's policy is not asked on root", tenant.Root, bob, false, true, false},
		{"tenant's policy on a tenant", "acme", bob, false, true, true},
		{"root's policy is not asked on a tenant", "acme", bob, true, false, false},
		{"tenant admin by its tenant's policy", "acme", AdminUser("acme"), true, false, false},
		{"system:masters in every tenant", "acme", masters, false, false, true},
	}
	for _, tc := range tests {
		ctx := tenant.WithTenant(context.Background(), tc.requested)
		attrs := authorizer.AttributesRecord{User: tc.user, Verb: "get", ResourceRequest: true, Resource: "configmaps"}
		decision, _, err := Authorizer(decide(tc.root), decide(tc.perTenant)).Authorize(ctx, attrs)
		if err != nil {
			t.Fatal(err)
		}
		if got := decision == authorizer.DecisionAllow; got != tc.allowed {
			t.Errorf("%s: allowed=%v, want %v", tc.name, got, tc.allowed)
		}
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	tokens := NewTokens([]byte("secret"))
	uids := uidMap{"acme": "uid-1"}
	auth := tokens.Authenticator(uids)
	ctx := context.Background()

	resp, ok, err := auth.AuthenticateToken(ctx, tokens.Issue("acme", "uid-1"))
	if err != nil || !ok || TenantOf(resp.User) != "acme" || Deleted(resp.User) {
		t.Fatalf("valid token: %v %v %v", resp, ok, err)
	}
	for name, token := range map[string]string{
		"other key":         NewTokens([]byte("other")).Issue("acme", "uid-1"),
		"not a kplex token": "abc.def",
		"tenant swapped":    "kplex-tenant.other." + tokens.Issue("acme", "uid-1")[len("kplex-tenant.acme."):],
		"uid swapped":       "kplex-tenant.acme.uid-2." + tokens.Issue("acme", "uid-1")[len("kplex-tenant.acme.uid-1."):],
	} {
		if _, ok, _ := auth.AuthenticateToken(ctx, token); ok {
			t.Errorf("%s: token accepted", name)
		}
	}
	// Genuine tokens of tenants that are gone only learn that.
	for name, token := range map[string]string{
		"recreated tenant (new UID)": tokens.Issue("acme", "uid-2"),
		"deleted tenant":             tokens.Issue("gone", "uid-3"),
	} {
		resp, ok, _ := auth.AuthenticateToken(ctx, token)
		if !ok || !Deleted(resp.User) || len(resp.User.GetGroups()) != 0 {
			t.Errorf("%s: %v %v, want a deleted-tenant identity without groups", name, resp, ok)
		}
	}
}

type uidMap map[string]string

func (m uidMap) UID(name string) (string, bool) { uid, ok := m[name]; return uid, ok }

func TestTenantsReadOnlyTheirPaths(t *testing.T) {
	t.Parallel()
	allowAll := authorizer.AuthorizerFunc(func(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionAllow, "", nil
	})
	admin := &user.DefaultInfo{Name: "kplex-admin", Groups: []string{user.SystemPrivilegedGroup}}
	for _, tc := range []struct {
		path    string
		user    user.Info
		allowed bool
	}{
		{"/api", AdminUser("acme"), true},
		{"/apis/apps/v1", AdminUser("acme"), true},
		{"/openapi/v3", AdminUser("acme"), true},
		{"/version", AdminUser("acme"), true},
		{"/readyz/ping", AdminUser("acme"), true},
		{"/", AdminUser("acme"), true},
		// The shared server's figures name every tenant.
		{"/metrics", AdminUser("acme"), false},
		{"/metrics/slis", AdminUser("acme"), false},
		{"/debug/pprof/heap", AdminUser("acme"), false},
		{"/apis-not", AdminUser("acme"), false},
		{"/metrics", admin, true},
	} {
		ctx := tenant.WithTenant(context.Background(), "acme")
		attrs := authorizer.AttributesRecord{User: tc.user, Verb: "get", Path: tc.path}
		d, reason, _ := Authorizer(allowAll, allowAll).Authorize(ctx, attrs)
		if (d == authorizer.DecisionAllow) != tc.allowed {
			t.Errorf("%s GET %s on acme's path: %v (%s), want allowed=%v", tc.user.GetName(), tc.path, d, reason, tc.allowed)
		}
	}
}
