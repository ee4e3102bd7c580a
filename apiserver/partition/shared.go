package partition

import (
	"context"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/storage"

	"github.com/kplex/kplex/tenant"
)

// shared tells which of root's objects every tenant reads as its own.
type shared func(m metav1.Object) bool

var bootstrapLabel = labels.SelectorFromSet(labels.Set{"kubernetes.io/bootstrapping": "rbac-defaults"})

// bootstrapPolicy is the default RBAC policy the apiserver writes into root.
var bootstrapPolicy shared = func(m metav1.Object) bool {
	return bootstrapLabel.Matches(labels.Set(m.GetLabels()))
}

// apiserverService is default/kubernetes: the Service (with its endpoints)
// through which pods reach the apiserver, the same one for every tenant. It
// keeps tenants from each taking a cluster IP for it. kube-system/kube-dns
// is shared alike: every node answers DNS on its cluster IP, each pod from
// its own tenant, and tools look for the Service.
var apiserverService shared = func(m metav1.Object) bool {
	return (m.GetNamespace() == metav1.NamespaceDefault && m.GetName() == "kubernetes") ||
		(m.GetNamespace() == metav1.NamespaceSystem && m.GetName() == "kube-dns")
}

// sharedFromRoot names the resources of which every tenant reads root's
// chosen objects beside its own: every tenant sees them, none pays for a
// copy. A tenant's own object of the same name wins, in that tenant only;
// nothing written in a tenant changes the shared one.
var sharedFromRoot = map[string]shared{
	"/clusterroles":        bootstrapPolicy,
	"/clusterrolebindings": bootstrapPolicy,
	"/services/specs":      apiserverService,
	"/services/endpoints":  apiserverService,
	"/endpointslices":      apiserverService,
}

// sharedRule returns the rule for root's objects that the tenant in ctx
// also reads, or nil.
func (s *store) sharedRule(ctx context.Context) shared {
	name := tenant.FromContext(ctx)
	if name == tenant.Root || name == tenant.Wildcard {
		return nil
	}
	return sharedFromRoot[s.resourcePrefix]
}

// getShared falls back to root's shared object when the tenant has none.
func (s *store) getShared(ctx context.Context, key string, opts storage.GetOptions, objPtr runtime.Object, rule shared, tenantErr error) error {
	rootKey, err := Key(s.resourcePrefix, tenant.Root, key)
	if err != nil {
		return err
	}
	if err := s.Interface.Get(ctx, rootKey, storage.GetOptions{ResourceVersion: opts.ResourceVersion}, objPtr); err != nil {
		return tenantErr
	}
	m, err := meta.Accessor(objPtr)
	if err != nil || !rule(m) {
		return tenantErr
	}
	return nil
}

// appendShared adds root's shared objects to a tenant's complete list,
// leaving out names the tenant has itself. Paginated lists get them on
// their last page.
func (s *store) appendShared(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object, rule shared) error {
	listMeta, err := meta.ListAccessor(listObj)
	if err != nil {
		return err
	}
	if listMeta.GetContinue() != "" {
		return nil
	}
	own, err := meta.ExtractList(listObj)
	if err != nil {
		return err
	}
	names := make(map[string]bool, len(own))
	for _, obj := range own {
		if m, err := meta.Accessor(obj); err == nil {
			names[m.GetNamespace()+"/"+m.GetName()] = true
		}
	}
	rootList, ok := reflect.New(reflect.TypeOf(listObj).Elem()).Interface().(runtime.Object)
	if !ok {
		return fmt.Errorf("cannot allocate a %T", listObj)
	}
	rootOpts := storage.ListOptions{Recursive: opts.Recursive, Predicate: storage.Everything}
	rootOpts.Predicate.GetAttrs = opts.Predicate.GetAttrs
	// The same key in root: the same namespace, or all of them.
	rootKey, err := Key(s.resourcePrefix, tenant.Root, key)
	if err != nil {
		return err
	}
	if err := s.Interface.GetList(ctx, rootKey, rootOpts, rootList); err != nil {
		return err
	}
	shared, err := meta.ExtractList(rootList)
	if err != nil {
		return err
	}
	merged := own
	for _, obj := range shared {
		m, err := meta.Accessor(obj)
		if err != nil || names[m.GetNamespace()+"/"+m.GetName()] || !rule(m) {
			continue
		}
		if ok, err := opts.Predicate.Matches(obj); err != nil || !ok {
			continue
		}
		merged = append(merged, obj)
	}
	return meta.SetList(listObj, merged)
}

// SharedWithTenants reports whether root's object m of the resource stored
// under resourcePrefix (such as "/clusterroles") is one every tenant reads
// as its own. Caches that read across tenants apply the same rule.
func SharedWithTenants(resourcePrefix string, m metav1.Object) bool {
	rule := sharedFromRoot[resourcePrefix]
	return rule != nil && rule(m)
}
