package tenantview

import (
	"errors"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/client/crosstenant"
)

// errReadOnly is returned by the writes of a view: only the cache's
// reflector writes.
var errReadOnly = errors.New("a tenant view is read-only")

// indexer is a read-only cache.Indexer of tenant t's objects in c, keyed as
// within a cluster (namespace/name, or name). A nil c holds nothing.
type indexer struct {
	c *crosstenant.Cache
	t string
	// keep, if set, is what of the tenant's objects the view shows.
	keep func(obj any) bool
}

var _ cache.Indexer = indexer{}

func (i indexer) Add(any) error                        { return errReadOnly }
func (i indexer) Update(any) error                     { return errReadOnly }
func (i indexer) Delete(any) error                     { return errReadOnly }
func (i indexer) Replace([]any, string) error          { return errReadOnly }
func (i indexer) Bookmark(string)                      {}
func (i indexer) LastStoreSyncResourceVersion() string { return "" }
func (i indexer) Resync() error                        { return nil }

// AddIndexers adds tenant-scoped indexes to the shared cache (see
// crosstenant.Cache.AddTenantIndexers).
func (i indexer) AddIndexers(idx cache.Indexers) error {
	if i.c == nil {
		return nil
	}
	return i.c.AddTenantIndexers(idx)
}

// GetIndexers names the indexes a view answers; upstream asks it to add an
// index only once. The functions are not the shared cache's and are not to
// be called.
func (i indexer) GetIndexers() cache.Indexers {
	out := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
	if i.c != nil {
		for _, name := range i.c.TenantIndexNames() {
			out[name] = nil
		}
	}
	return out
}

func (i indexer) List() []any {
	if i.c == nil {
		return nil
	}
	return i.kept(i.c.InTenant(i.t))
}

// kept leaves out what the view's filter does not keep.
func (i indexer) kept(objs []any) []any {
	if i.keep == nil {
		return objs
	}
	out := objs[:0:0]
	for _, obj := range objs {
		if i.keep(obj) {
			out = append(out, obj)
		}
	}
	return out
}

func (i indexer) ListKeys() []string {
	var keys []string
	for _, obj := range i.List() {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			keys = append(keys, key)
		}
	}
	return keys
}

func (i indexer) Get(obj any) (any, bool, error) {
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		return nil, false, err
	}
	return i.GetByKey(key)
}

func (i indexer) GetByKey(key string) (any, bool, error) {
	if i.c == nil {
		return nil, false, nil
	}
	obj, ok, err := i.c.GetByKey(i.t + "/" + key)
	if ok && i.keep != nil && !i.keep(obj) {
		return nil, false, nil
	}
	return obj, ok, err
}

func (i indexer) Index(name string, obj any) ([]any, error) {
	if name != cache.NamespaceIndex {
		return nil, errors.New("a tenant view answers Index for the namespace index only")
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	return i.ByIndex(name, m.GetNamespace())
}

func (i indexer) IndexKeys(name, value string) ([]string, error) {
	objs, err := i.ByIndex(name, value)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(objs))
	for _, obj := range objs {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

func (i indexer) ListIndexFuncValues(name string) []string {
	if name != cache.NamespaceIndex {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, obj := range i.List() {
		if m, err := meta.Accessor(obj); err == nil && !seen[m.GetNamespace()] {
			seen[m.GetNamespace()] = true
			out = append(out, m.GetNamespace())
		}
	}
	return out
}

func (i indexer) ByIndex(name, value string) ([]any, error) {
	if i.c == nil {
		return nil, nil
	}
	if name == cache.NamespaceIndex {
		return i.kept(i.c.InNamespace(i.t, value)), nil
	}
	objs, err := i.c.ByTenantIndex(i.t, name, value)
	return i.kept(objs), err
}
