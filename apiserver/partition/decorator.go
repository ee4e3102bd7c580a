package partition

import (
	"path"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/client-go/tools/cache"
)

// Prefixes records the etcd key prefix of every resource storage the
// apiserver created, e.g. "/registry/configmaps". Deleting a tenant deletes
// "<prefix>/<tenant>/" under each of them.
type Prefixes struct {
	mu  sync.Mutex
	set map[string]struct{}
}

func (p *Prefixes) add(prefix string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set == nil {
		p.set = map[string]struct{}{}
	}
	p.set[prefix] = struct{}{}
}

// List returns the recorded prefixes, sorted.
func (p *Prefixes) List() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.set))
	for prefix := range p.set {
		out = append(out, prefix)
	}
	slices.Sort(out)
	return out
}

// RESTOptionsGetter wraps getter so that every storage it hands out is
// partitioned by tenant, and records the storage's key prefix in prefixes.
// Tenants read the resources in views from root (see RootViews).
func RESTOptionsGetter(getter generic.RESTOptionsGetter, prefixes *Prefixes, views RootViews) generic.RESTOptionsGetter {
	return &restOptionsGetter{inner: getter, prefixes: prefixes, views: views}
}

type restOptionsGetter struct {
	inner    generic.RESTOptionsGetter
	prefixes *Prefixes
	views    RootViews
}

func (g *restOptionsGetter) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.inner.GetRESTOptions(resource, example)
	if err != nil {
		return opts, err
	}
	opts.Decorator = Decorator(opts.Decorator, g.prefixes, g.views)
	return opts, nil
}

// FixedTenantRESTOptionsGetter wraps getter so that every storage it hands
// out serves one tenant only, whatever the request: custom resources, whose
// schema and codec belong to one tenant's CRD. Its etcd reads, and its watch
// cache, cover that tenant's keys alone; a request from any other tenant is
// refused. A nil raw keeps getter's storage (and its watch cache); else raw
// builds the storage, uncached.
func FixedTenantRESTOptionsGetter(getter generic.RESTOptionsGetter, prefixes *Prefixes, tenantName string, raw generic.StorageDecorator) generic.RESTOptionsGetter {
	return restOptionsGetterFunc(func(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
		opts, err := getter.GetRESTOptions(resource, example)
		if err != nil {
			return opts, err
		}
		inner := opts.Decorator
		if inner == nil {
			inner = generic.UndecoratedStorage
		}
		if !undecorated(inner) {
			inner = withCacher
		}
		if raw != nil {
			inner = raw
		}
		opts.Decorator = decorator(inner, prefixes, tenantName, nil)
		return opts, nil
	})
}

type restOptionsGetterFunc func(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error)

func (f restOptionsGetterFunc) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	return f(resource, example)
}

// Decorator wraps a storage decorator (the watch cache, or none) so that the
// storage it builds is partitioned by tenant. A watch cache is built by
// withCacher rather than by inner.
func Decorator(inner generic.StorageDecorator, prefixes *Prefixes, views RootViews) generic.StorageDecorator {
	if inner == nil {
		inner = generic.UndecoratedStorage
	}
	if !undecorated(inner) {
		inner = withCacher
	}
	return decorator(inner, prefixes, "", views)
}

// decorator partitions the storage inner builds; a non-empty fixed confines
// it, and the watch cache in it, to that tenant.
func decorator(inner generic.StorageDecorator, prefixes *Prefixes, fixed string, views RootViews) generic.StorageDecorator {
	return func(
		config *storagebackend.ConfigForResource,
		resourcePrefix string,
		cacheKeyFunc func(obj runtime.Object) (string, error),
		newFunc func() runtime.Object,
		newListFunc func() runtime.Object,
		getAttrsFunc storage.AttrFunc,
		trigger storage.IndexerFuncs,
		indexers *cache.Indexers) (storage.Interface, factory.DestroyFunc, error) {

		if prefixes != nil {
			prefixes.add(path.Join("/", config.Prefix, resourcePrefix))
		}
		tenantKeyFunc := func(obj runtime.Object) (string, error) {
			key, err := cacheKeyFunc(obj)
			if err != nil {
				return "", err
			}
			name, err := Identity(obj)
			if err != nil {
				return "", err
			}
			return Key(resourcePrefix, name, key)
		}
		innerPrefix := resourcePrefix
		if fixed != "" {
			// Narrow what the storage lists and watches to the tenant's keys.
			innerPrefix = path.Join(resourcePrefix, fixed)
		}
		s, destroy, err := inner(config, innerPrefix, tenantKeyFunc, newFunc, newListFunc, getAttrsFunc, trigger, indexers)
		if err != nil {
			return s, destroy, err
		}
		prefix := strings.TrimSuffix(resourcePrefix, "/")
		return &store{Interface: s, resourcePrefix: prefix, fixed: fixed, view: views[prefix]}, destroy, nil
	}
}

// groupResourceOf names a resource by its storage prefix in errors.
func groupResourceOf(resourcePrefix string) schema.GroupResource {
	return schema.GroupResource{Resource: strings.TrimPrefix(resourcePrefix, "/")}
}
