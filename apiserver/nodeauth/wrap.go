package nodeauth

import (
	"context"

	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/kplex/kplex/tenant"
)

// Wrap puts the node rules in front of next: a node agent's request is
// decided by them, or, for a management-plane request they say nothing
// about, by root (root's RBAC); everyone else's goes to next.
func Wrap(a *Authorizer, next, root authorizer.Authorizer) authorizer.Authorizer {
	return authorizer.AuthorizerFunc(func(ctx context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
		node, ok := NodeName(attrs.GetUser())
		if !ok {
			return next.Authorize(ctx, attrs)
		}
		requested := tenant.FromContext(ctx)
		allowed, decided, reason := a.Authorize(node, requested, attrs)
		switch {
		case allowed:
			return authorizer.DecisionAllow, "", nil
		case decided:
			return authorizer.DecisionDeny, reason, nil
		}
		return root.Authorize(ctx, attrs)
	})
}
