package tenantrbac

import (
	"context"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac"

	"github.com/kplex/kplex/apiserver/partition"
	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

// Policy holds every tenant's RBAC objects and answers for the tenant in
// the context it is asked with.
type Policy struct {
	roles, roleBindings, clusterRoles, clusterRoleBindings *crosstenant.Cache
}

// NewPolicy returns a Policy that reads through loopback, a config of the
// management plane with cross-tenant rights. Run fills it.
func NewPolicy(loopback *rest.Config) (*Policy, error) {
	client, err := kubernetes.NewForConfig(crosstenant.Config(loopback))
	if err != nil {
		return nil, err
	}
	rc := client.RbacV1().RESTClient()
	return &Policy{
		roles:               crosstenant.NewCache(crosstenant.ListWatch(rc, "roles"), &rbacv1.Role{}),
		roleBindings:        crosstenant.NewCache(crosstenant.ListWatch(rc, "rolebindings"), &rbacv1.RoleBinding{}),
		clusterRoles:        crosstenant.NewCache(crosstenant.ListWatch(rc, "clusterroles"), &rbacv1.ClusterRole{}),
		clusterRoleBindings: crosstenant.NewCache(crosstenant.ListWatch(rc, "clusterrolebindings"), &rbacv1.ClusterRoleBinding{}),
	}, nil
}

func (p *Policy) caches() []*crosstenant.Cache {
	return []*crosstenant.Cache{p.roles, p.roleBindings, p.clusterRoles, p.clusterRoleBindings}
}

// Run keeps the caches current until ctx ends.
func (p *Policy) Run(ctx context.Context) {
	for _, c := range p.caches() {
		go c.Run(ctx)
	}
	<-ctx.Done()
}

// HasSynced reports whether every cache has been filled once.
func (p *Policy) HasSynced() bool {
	for _, c := range p.caches() {
		if !c.HasSynced() {
			return false
		}
	}
	return true
}

// HasClusterRoleBinding reports whether the policy of tenant t has its own
// ClusterRoleBinding name.
func (p *Policy) HasClusterRoleBinding(t, name string) bool {
	return p.clusterRoleBindings.Get(t, "", name) != nil
}

// GetRole implements rbac's RoleGetter.
func (p *Policy) GetRole(ctx context.Context, namespace, name string) (*rbacv1.Role, error) {
	if obj := p.roles.Get(tenant.FromContext(ctx), namespace, name); obj != nil {
		return obj.(*rbacv1.Role), nil
	}
	return nil, apierrors.NewNotFound(rbacv1.Resource("roles"), name)
}

// ListRoleBindings implements rbac's RoleBindingLister.
func (p *Policy) ListRoleBindings(ctx context.Context, namespace string) ([]*rbacv1.RoleBinding, error) {
	objs := p.roleBindings.InNamespace(tenant.FromContext(ctx), namespace)
	out := make([]*rbacv1.RoleBinding, 0, len(objs))
	for _, obj := range objs {
		out = append(out, obj.(*rbacv1.RoleBinding))
	}
	return out, nil
}

// GetClusterRole implements rbac's ClusterRoleGetter: the tenant's own, or
// else root's shared default of that name.
func (p *Policy) GetClusterRole(ctx context.Context, name string) (*rbacv1.ClusterRole, error) {
	t := tenant.FromContext(ctx)
	if obj := p.clusterRoles.Get(t, "", name); obj != nil {
		return obj.(*rbacv1.ClusterRole), nil
	}
	if t != tenant.Root {
		if obj := p.clusterRoles.Get(tenant.Root, "", name); obj != nil {
			if role := obj.(*rbacv1.ClusterRole); partition.SharedWithTenants("/clusterroles", role) {
				return role, nil
			}
		}
	}
	return nil, apierrors.NewNotFound(rbacv1.Resource("clusterroles"), name)
}

// ListClusterRoleBindings implements rbac's ClusterRoleBindingLister: the
// tenant's own, and root's shared defaults the tenant has not replaced.
func (p *Policy) ListClusterRoleBindings(ctx context.Context) ([]*rbacv1.ClusterRoleBinding, error) {
	t := tenant.FromContext(ctx)
	own := p.clusterRoleBindings.InTenant(t)
	out := make([]*rbacv1.ClusterRoleBinding, 0, len(own))
	names := make(map[string]bool, len(own))
	for _, obj := range own {
		b := obj.(*rbacv1.ClusterRoleBinding)
		out = append(out, b)
		names[b.Name] = true
	}
	if t == tenant.Root {
		return out, nil
	}
	for _, obj := range p.clusterRoleBindings.InTenant(tenant.Root) {
		b := obj.(*rbacv1.ClusterRoleBinding)
		if !names[b.Name] && partition.SharedWithTenants("/clusterrolebindings", b) {
			out = append(out, b)
		}
	}
	return out, nil
}

// Authorizer returns upstream's RBAC authorizer over p: it decides each
// request by the policy of the request's tenant.
func (p *Policy) Authorizer() *rbac.RBACAuthorizer {
	return rbac.New(p, p, p, p)
}
