package crosstenant

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/tenant"
)

// Config returns a copy of cfg that addresses every tenant at once.
func Config(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Host = cfg.Host + tenant.PathPrefix + tenant.Wildcard
	return out
}

// TenantOf returns the tenant obj belongs to, from the identity the server
// stamps on every object it stores.
func TenantOf(obj metav1.Object) string {
	return obj.GetAnnotations()[tenant.Annotation]
}

// Key returns the cache key of an object: tenant/namespace/name, or
// tenant/name for cluster-scoped objects.
func Key(tenantName, namespace, name string) string {
	if namespace == "" {
		return tenantName + "/" + name
	}
	return tenantName + "/" + namespace + "/" + name
}

// KeyFunc is the cache.KeyFunc of Key.
func KeyFunc(obj any) (string, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Key, nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return "", fmt.Errorf("keying a cross-tenant object: %w", err)
	}
	t := TenantOf(m)
	if t == "" {
		return "", fmt.Errorf("%s %s/%s carries no tenant identity", fmt.Sprintf("%T", obj), m.GetNamespace(), m.GetName())
	}
	return Key(t, m.GetNamespace(), m.GetName()), nil
}

// Index names.
const (
	ByTenant          = "tenant"
	ByTenantNamespace = "tenant-namespace"
)

// Indexers index objects by tenant and by tenant and namespace.
var Indexers = cache.Indexers{
	ByTenant: func(obj any) ([]string, error) {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		return []string{TenantOf(m)}, nil
	},
	ByTenantNamespace: func(obj any) ([]string, error) {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		return []string{TenantNamespace(TenantOf(m), m.GetNamespace())}, nil
	},
}

// TenantNamespace is the ByTenantNamespace index value.
func TenantNamespace(tenantName, namespace string) string { return tenantName + "/" + namespace }

// ListWatch lists and watches resource in every tenant through client, whose
// config must come from Config.
func ListWatch(client rest.Interface, resource string) cache.ListerWatcher {
	return NoWatchList(cache.NewListWatchFromClient(client, resource, metav1.NamespaceAll, fields.Everything()))
}

// ListWatchSelected is ListWatch of the objects selector selects only, such
// as one well-known name in every namespace of every tenant.
func ListWatchSelected(client rest.Interface, resource string, selector fields.Selector) cache.ListerWatcher {
	return NoWatchList(cache.NewListWatchFromClient(client, resource, metav1.NamespaceAll, selector))
}

// NoWatchList makes lw list and then watch: client-go's watch-list keys
// the objects it gathers by namespace/name, where tenants' same-named
// objects collide.
func NoWatchList(lw cache.ListerWatcher) cache.ListerWatcher { return noWatchList{lw} }

// noWatchList tells the reflector to list and then watch.
type noWatchList struct{ cache.ListerWatcher }

// IsWatchListSemanticsUnSupported is read by client-go's reflector.
func (noWatchList) IsWatchListSemanticsUnSupported() bool { return true }

// Cache is an indexer of one resource of every tenant, kept current by a
// reflector. Changes are told, synchronously, to the handlers of the
// object's tenant and then to every watcher.
type Cache struct {
	cache.Indexer
	reflector *cache.Reflector

	indexMu sync.Mutex // serialises AddTenantIndexers

	mu        sync.RWMutex
	handlers  map[string][]*handler
	observers []Observer
	watchers  []func(tenantName string)
}

// NewCache returns a cache of the objects lw lists, of example's type.
// Run fills it.
func NewCache(lw cache.ListerWatcher, example runtime.Object) *Cache {
	// A copy: the indexer adds later indexes to the map it was given.
	c := &Cache{Indexer: cache.NewIndexer(KeyFunc, maps.Clone(Indexers))}
	c.reflector = cache.NewReflector(lw, example, fanoutStore{c}, 0)
	return c
}

// Run fills the cache until ctx ends.
func (c *Cache) Run(ctx context.Context) { c.reflector.RunWithContext(ctx) }

// HasSynced reports whether the first list has been stored.
func (c *Cache) HasSynced() bool { return c.reflector.LastSyncResourceVersion() != "" }

// Get returns the object tenant/namespace/name, or nil.
func (c *Cache) Get(tenantName, namespace, name string) any {
	obj, ok, _ := c.GetByKey(Key(tenantName, namespace, name))
	if !ok {
		return nil
	}
	return obj
}

// InTenant returns the objects of one tenant.
func (c *Cache) InTenant(tenantName string) []any {
	objs, _ := c.ByIndex(ByTenant, tenantName)
	return objs
}

// InNamespace returns the objects of one namespace of one tenant.
func (c *Cache) InNamespace(tenantName, namespace string) []any {
	objs, _ := c.ByIndex(ByTenantNamespace, TenantNamespace(tenantName, namespace))
	return objs
}
