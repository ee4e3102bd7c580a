package partition

import (
	"context"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/storage"

	"github.com/kplex/kplex/tenant"
)

// bootstrapPolicy selects the default RBAC policy the apiserver writes into
// root: every tenant sees it, none pays for a copy.
var bootstrapPolicy = labels.SelectorFromSet(labels.Set{"kubernetes.io/bootstrapping": "rbac-defaults"})

// sharedFromRoot names the resources of which every tenant reads root's
// objects that match the selector, beside its own. A tenant's own object of
// the same name wins, and writing one in a tenant creates the tenant's own
// copy: the shared one is never changed from a tenant.
var sharedFromRoot = map[string]labels.Selector{
	"/clusterroles":        bootstrapPolicy,
	"/clusterrolebindings": bootstrapPolicy,
}

// sharedSelector returns the selector of root's objects that the tenant in
// ctx also reads, or nil.
func (s *store) sharedSelector(ctx context.Context) labels.Selector {
	name := tenant.FromContext(ctx)
	if name == tenant.Root || name == tenant.Wildcard {
		return nil
	}
	return sharedFromRoot[s.resourcePrefix]
}

// getShared falls back to root's shared object when the tenant has none.
func (s *store) getShared(ctx context.Context, key string, opts storage.GetOptions, objPtr runtime.Object, selector labels.Selector, tenantErr error) error {
	rootKey, err := Key(s.resourcePrefix, tenant.Root, key)
	if err != nil {
		return err
	}
	if err := s.Interface.Get(ctx, rootKey, storage.GetOptions{ResourceVersion: opts.ResourceVersion}, objPtr); err != nil {
		return tenantErr
	}
	m, err := meta.Accessor(objPtr)
	if err != nil || !selector.Matches(labels.Set(m.GetLabels())) {
		return tenantErr
	}
	return nil
}

// appendShared adds root's shared objects to a tenant's complete list,
// leaving out names the tenant has itself. Paginated lists get them on
// their last page.
func (s *store) appendShared(ctx context.Context, opts storage.ListOptions, listObj runtime.Object, selector labels.Selector) error {
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
			names[m.GetName()] = true
		}
	}
	rootList, ok := reflect.New(reflect.TypeOf(listObj).Elem()).Interface().(runtime.Object)
	if !ok {
		return fmt.Errorf("cannot allocate a %T", listObj)
	}
	rootOpts := storage.ListOptions{Recursive: true, Predicate: storage.Everything}
	rootOpts.Predicate.GetAttrs = opts.Predicate.GetAttrs
	if err := s.Interface.GetList(ctx, s.resourcePrefix+"/"+tenant.Root, rootOpts, rootList); err != nil {
		return err
	}
	shared, err := meta.ExtractList(rootList)
	if err != nil {
		return err
	}
	merged := own
	for _, obj := range shared {
		m, err := meta.Accessor(obj)
		if err != nil || names[m.GetName()] || !selector.Matches(labels.Set(m.GetLabels())) {
			continue
		}
		if ok, err := opts.Predicate.Matches(obj); err != nil || !ok {
			continue
		}
		merged = append(merged, obj)
	}
	return meta.SetList(listObj, merged)
}
