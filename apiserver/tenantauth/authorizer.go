package tenantauth

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/kplex/kplex/tenant"
)

// Authorizer decides tenant confinement first, so that nothing a policy
// allows can override it, and then asks the policy of the tenant whose path
// the request is on: root for the management plane (and for cross-tenant
// reads), perTenant (the tenant's RBAC, read from the request context) for
// a tenant. system:masters may act in every tenant.
func Authorizer(root, perTenant authorizer.Authorizer) authorizer.Authorizer {
	return authorizer.AuthorizerFunc(func(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
		requested := tenant.FromContext(ctx)
		if reason, denied := confine(requested, a); denied {
			return authorizer.DecisionDeny, reason, nil
		}
		if Deleted(a.GetUser()) {
			return authorizer.DecisionAllow, "the tenant is gone; the request will be answered with NotFound", nil
		}
		if requested == tenant.Root || requested == tenant.Wildcard {
			return root.Authorize(ctx, a)
		}
		if Privileged(a.GetUser()) {
			return authorizer.DecisionAllow, "", nil
		}
		return perTenant.Authorize(ctx, a)
	})
}

// RuleResolver lists rules (SelfSubjectRulesReview, kubectl auth can-i
// --list) from the policy Authorizer asks.
func RuleResolver(root, perTenant authorizer.RuleResolver) authorizer.RuleResolver {
	return ruleResolver{root: root, perTenant: perTenant}
}

type ruleResolver struct{ root, perTenant authorizer.RuleResolver }

func (r ruleResolver) RulesFor(ctx context.Context, u user.Info, namespace string) ([]authorizer.ResourceRuleInfo, []authorizer.NonResourceRuleInfo, bool, error) {
	if requested := tenant.FromContext(ctx); requested == tenant.Root || requested == tenant.Wildcard {
		return r.root.RulesFor(ctx, u, namespace)
	}
	return r.perTenant.RulesFor(ctx, u, namespace)
}

// confine returns a reason and true when the request must be denied whatever
// the tenant's own policy says.
func confine(requested string, a authorizer.Attributes) (string, bool) {
	u := a.GetUser()
	if requested == tenant.Wildcard {
		if TenantOf(u) != "" || !Privileged(u) {
			return "cross-tenant requests are for privileged management-plane identities only", true
		}
		if a.IsResourceRequest() && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			return fmt.Sprintf("cross-tenant requests are read-only (list and watch); %q is not allowed", a.GetVerb()), true
		}
		if !a.IsResourceRequest() && a.GetVerb() != "get" {
			return "cross-tenant requests are read-only", true
		}
		return "", false
	}
	own := TenantOf(u)
	if own == "" {
		// Anonymous requests could tell existing tenants from others.
		if requested != tenant.Root && u != nil && u.GetName() == user.Anonymous {
			return "anonymous requests are served on the management plane only", true
		}
		return "", false
	}
	if own != requested {
		return fmt.Sprintf("identity of tenant %q may not act on tenant %q", own, requested), true
	}
	// Impersonation would shed the tenant extra, and with it the
	// confinement.
	if a.GetVerb() == "impersonate" {
		return "tenant identities may not impersonate", true
	}
	if !a.IsResourceRequest() && !servedToTenants(a.GetPath()) {
		return fmt.Sprintf("%s is the management plane's, not served to tenants", a.GetPath()), true
	}
	if a.IsResourceRequest() && connectsOut(a.GetResource(), a.GetSubresource()) {
		return fmt.Sprintf("%s/%s is not available to tenants yet: the apiserver would connect to an address the tenant chose", a.GetResource(), a.GetSubresource()), true
	}
	// A deleted tenant's token goes on to routing.WithServingTenant, which
	// answers every request of it with "tenant not found", whatever serves
	// under that name now.
	return "", false
}

// tenantPaths are the non-resource paths a tenant's identities may read:
// discovery, OpenAPI, version, health and service account issuer
// discovery. The rest (/metrics, /debug/pprof, /logs, /flowcontrol...)
// describe the shared server and every tenant on it.
var tenantPaths = []string{"/api", "/apis", "/openapi", "/version", "/healthz", "/livez", "/readyz", "/.well-known/openid-configuration", "/openid/v1/jwks"}

// servedToTenants reports whether path is one of tenantPaths or under one.
func servedToTenants(path string) bool {
	if path == "/" {
		return true
	}
	for _, p := range tenantPaths {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// connectsOut reports whether a subresource makes the apiserver open a
// connection to an address taken from the tenant's own objects (a
// Service's endpoints, a Pod's IP, which the tenant can write): proxy. The
// kubelet calls of pods (log, exec, attach, portforward) reach the node
// agent at the address of the management plane's Node, which a tenant can
// neither write nor pick outside its pools (TenantNodeFence).
func connectsOut(_, subresource string) bool {
	return subresource == "proxy"
}

// Privileged reports whether u is in system:masters.
func Privileged(u user.Info) bool {
	return u != nil && slices.Contains(u.GetGroups(), user.SystemPrivilegedGroup)
}
