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
func RESTOptionsGetter(getter generic.RESTOptionsGetter, prefixes *Prefixes) generic.RESTOptionsGetter {
	return &restOptionsGetter{inner: getter, prefixes: prefixes}
}

type restOptionsGetter struct {
	inner    generic.RESTOptionsGetter
	prefixes *Prefixes
}

func (g *restOptionsGetter) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.inner.GetRESTOptions(resource, example)
	if err != nil {
		return opts, err
	}
	opts.Decorator = Decorator(opts.Decorator, g.prefixes)
	return opts, nil
}

// Decorator wraps a storage decorator (the watch cache, or none) so that the
// storage it builds is partitioned by tenant. A watch cache is built by
// withCacher rather than by inner.
func Decorator(inner generic.StorageDecorator, prefixes *Prefixes) generic.StorageDecorator {
	if inner == nil {
		inner = generic.UndecoratedStorage
	}
	if !undecorated(inner) {
		inner = withCacher
	}
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
		s, destroy, err := inner(config, resourcePrefix, tenantKeyFunc, newFunc, newListFunc, getAttrsFunc, trigger, indexers)
		if err != nil {
			return s, destroy, err
		}
		return &store{Interface: s, resourcePrefix: strings.TrimSuffix(resourcePrefix, "/")}, destroy, nil
	}
}

// groupResourceOf names a resource by its storage prefix in errors.
func groupResourceOf(resourcePrefix string) schema.GroupResource {
	return schema.GroupResource{Resource: strings.TrimPrefix(resourcePrefix, "/")}
}
