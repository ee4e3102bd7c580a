package partition

import (
	"context"
	"fmt"
	"maps"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/storage"

	"github.com/kplex/kplex/tenant"
)

// store is a storage.Interface that serves one tenant's slice of an
// underlying, shared storage.Interface: the tenant comes from the context of
// every call.
type store struct {
	storage.Interface
	resourcePrefix string
	// fixed, when set, is the only tenant the store serves.
	fixed string
	// view, when set, is what tenants read of root's objects: they have
	// none of their own.
	view RootView
}

var _ storage.Interface = &store{}

// key rewrites a registry key for the tenant in ctx. Cross-tenant keys are
// allowed only for reads that span every namespace (read=true).
func (s *store) key(ctx context.Context, key string, read bool) (string, error) {
	name := tenant.FromContext(ctx)
	if s.fixed != "" && name != s.fixed {
		return "", apierrors.NewInternalError(fmt.Errorf("storage of tenant %q asked to serve tenant %q", s.fixed, name))
	}
	if name != tenant.Wildcard {
		return Key(s.resourcePrefix, name, key)
	}
	if !read {
		return "", apierrors.NewMethodNotSupported(groupResourceOf(s.resourcePrefix), "write across tenants")
	}
	if _, err := Key(s.resourcePrefix, name, key); err != nil {
		return "", err
	}
	if key != s.resourcePrefix {
		return "", apierrors.NewBadRequest("cross-tenant (/clusters/*) requests must list or watch across all namespaces")
	}
	return key, nil
}

func (s *store) Create(ctx context.Context, key string, obj, out runtime.Object, ttl uint64) error {
	if _, view := s.rootView(ctx); view.Admits != nil {
		return s.refuseWrite(key)
	}
	k, err := s.key(ctx, key, false)
	if err != nil {
		return err
	}
	if err := stamp(obj, tenant.FromContext(ctx)); err != nil {
		return err
	}
	return s.Interface.Create(ctx, k, obj, out, ttl)
}

func (s *store) Delete(ctx context.Context, key string, out runtime.Object, preconditions *storage.Preconditions,
	validateDeletion storage.ValidateObjectFunc, cachedExistingObject runtime.Object, opts storage.DeleteOptions) error {
	if _, view := s.rootView(ctx); view.Admits != nil {
		return s.refuseWrite(key)
	}
	k, err := s.key(ctx, key, false)
	if err != nil {
		return err
	}
	return s.Interface.Delete(ctx, k, out, preconditions, validateDeletion, cachedExistingObject, opts)
}

func (s *store) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	if name, view := s.rootView(ctx); view.Admits != nil {
		return s.viewWatch(ctx, name, view, key, opts)
	}
	k, err := s.key(ctx, key, true)
	if err != nil {
		return nil, err
	}
	return s.Interface.Watch(ctx, k, opts)
}

func (s *store) Get(ctx context.Context, key string, opts storage.GetOptions, objPtr runtime.Object) error {
	if name, view := s.rootView(ctx); view.Admits != nil {
		return s.viewGet(ctx, name, view, key, opts, objPtr)
	}
	k, err := s.key(ctx, key, false)
	if err != nil {
		return err
	}
	err = s.Interface.Get(ctx, k, opts, objPtr)
	if rule := s.sharedRule(ctx); rule != nil && storage.IsNotFound(err) {
		return s.getShared(ctx, key, opts, objPtr, rule, err)
	}
	return err
}

func (s *store) GetList(ctx context.Context, key string, opts storage.ListOptions, listObj runtime.Object) error {
	if name, view := s.rootView(ctx); view.Admits != nil {
		return s.viewList(ctx, name, view, key, opts, listObj)
	}
	k, err := s.key(ctx, key, true)
	if err != nil {
		return err
	}
	if err := s.Interface.GetList(ctx, k, opts, listObj); err != nil {
		return err
	}
	if rule := s.sharedRule(ctx); rule != nil {
		return s.appendShared(ctx, key, opts, listObj, rule)
	}
	return nil
}

func (s *store) GuaranteedUpdate(ctx context.Context, key string, destination runtime.Object, ignoreNotFound bool,
	preconditions *storage.Preconditions, tryUpdate storage.UpdateFunc, cachedExistingObject runtime.Object) error {
	if _, view := s.rootView(ctx); view.Admits != nil {
		return s.refuseWrite(key)
	}
	k, err := s.key(ctx, key, false)
	if err != nil {
		return err
	}
	name := tenant.FromContext(ctx)
	stamped := func(input runtime.Object, res storage.ResponseMeta) (runtime.Object, *uint64, error) {
		if err := checkIdentity(input, name, k); err != nil {
			return nil, nil, err
		}
		out, ttl, err := tryUpdate(input, res)
		if err != nil {
			return out, ttl, err
		}
		return out, ttl, stamp(out, name)
	}
	return s.Interface.GuaranteedUpdate(ctx, k, destination, ignoreNotFound, preconditions, stamped, cachedExistingObject)
}

// Identity returns the tenant that owns a stored object. Objects written
// before kplex stamped them, or by paths that bypass the request chain,
// belong to root.
func Identity(obj runtime.Object) (string, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return "", fmt.Errorf("reading tenant identity: %w", err)
	}
	if name := m.GetAnnotations()[tenant.Annotation]; name != "" {
		return name, nil
	}
	return tenant.Root, nil
}

// stamp sets obj's tenant identity to name, overwriting whatever the client sent.
func stamp(obj runtime.Object, name string) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return fmt.Errorf("stamping tenant identity: %w", err)
	}
	annotations := m.GetAnnotations()
	if annotations[tenant.Annotation] == name {
		return nil
	}
	// Copy rather than write into a map the object may share.
	annotations = maps.Clone(annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[tenant.Annotation] = name
	m.SetAnnotations(annotations)
	return nil
}

// checkIdentity refuses to update an existing object whose stored identity
// names another tenant than its key: that is corruption, never a move.
func checkIdentity(existing runtime.Object, name, key string) error {
	m, err := meta.Accessor(existing)
	if err != nil {
		return fmt.Errorf("reading tenant identity: %w", err)
	}
	stored, ok := m.GetAnnotations()[tenant.Annotation]
	if !ok || m.GetResourceVersion() == "" || stored == name {
		return nil
	}
	return apierrors.NewInternalError(fmt.Errorf("object at %q carries tenant identity %q, not %q", key, stored, name))
}
