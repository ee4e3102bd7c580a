package partition

import (
	"context"
	"errors"
	"path"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/storage"

	"github.com/kplex/kplex/tenant"
)

// RootView decides which of root's objects of a resource a tenant reads.
type RootView struct {
	// Admits says whether tenantName reads m.
	Admits func(tenantName string, m metav1.Object) bool
	// Adjust, when set, changes an object a tenant reads by name (not by
	// list or watch) before it is returned, in the request's context: the
	// apiserver's own lookups made on a tenant's behalf read it there.
	Adjust func(ctx context.Context, tenantName string, obj runtime.Object)
}

// RootViews name resources (by storage prefix, such as "/minions" for
// nodes) that tenants do not have of their own: a tenant reads the objects
// of root's that its view lets through, and writes none.
type RootViews map[string]RootView

// viewedResource is what a view's refusals name.
var viewedResource = map[string]schema.GroupResource{"/minions": {Resource: "nodes"}}

func (s *store) rootView(ctx context.Context) (string, RootView) {
	if s.view.Admits == nil {
		return "", RootView{}
	}
	name := tenant.FromContext(ctx)
	if name == tenant.Root || name == tenant.Wildcard {
		return "", RootView{}
	}
	return name, s.view
}

func (s *store) refuseWrite(key string) error {
	gr, ok := viewedResource[s.resourcePrefix]
	if !ok {
		gr = groupResourceOf(s.resourcePrefix)
	}
	return apierrors.NewForbidden(gr, path.Base(key), errors.New("they belong to the management plane: a tenant reads the ones its pods may use, and changes none"))
}

func (s *store) viewGet(ctx context.Context, name string, view RootView, key string, opts storage.GetOptions, objPtr runtime.Object) error {
	rootKey, err := Key(s.resourcePrefix, tenant.Root, key)
	if err != nil {
		return err
	}
	if err := s.Interface.Get(ctx, rootKey, opts, objPtr); err != nil {
		return err
	}
	if m, err := meta.Accessor(objPtr); err != nil || !view.Admits(name, m) {
		return storage.NewKeyNotFoundError(key, 0)
	}
	if view.Adjust != nil {
		view.Adjust(ctx, name, objPtr)
	}
	return nil
}

func (s *store) viewList(ctx context.Context, name string, view RootView, key string, opts storage.ListOptions, listObj runtime.Object) error {
	rootKey, err := Key(s.resourcePrefix, tenant.Root, key)
	if err != nil {
		return err
	}
	if err := s.Interface.GetList(ctx, rootKey, opts, listObj); err != nil {
		return err
	}
	items, err := meta.ExtractList(listObj)
	if err != nil {
		return err
	}
	kept := items[:0]
	for _, obj := range items {
		if m, err := meta.Accessor(obj); err == nil && view.Admits(name, m) {
			kept = append(kept, obj)
		}
	}
	return meta.SetList(listObj, kept)
}

// viewWatch passes on the events of objects the view lets through. An
// object that leaves the view (its pool no longer admits the tenant) is
// seen deleted.
func (s *store) viewWatch(ctx context.Context, name string, view RootView, key string, opts storage.ListOptions) (watch.Interface, error) {
	rootKey, err := Key(s.resourcePrefix, tenant.Root, key)
	if err != nil {
		return nil, err
	}
	w, err := s.Interface.Watch(ctx, rootKey, opts)
	if err != nil {
		return nil, err
	}
	shown := map[string]bool{}
	return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
		m, err := meta.Accessor(e.Object)
		if err != nil || (e.Type != watch.Added && e.Type != watch.Modified && e.Type != watch.Deleted) {
			return e, true
		}
		visible, was := view.Admits(name, m), shown[m.GetName()]
		switch {
		case e.Type == watch.Deleted:
			delete(shown, m.GetName())
			return e, was || visible
		case visible && !was:
			shown[m.GetName()] = true
			e.Type = watch.Added
			return e, true
		case !visible && was:
			delete(shown, m.GetName())
			e.Type = watch.Deleted
			return e, true
		}
		return e, visible
	}), nil
}
