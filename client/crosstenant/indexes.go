package crosstenant

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"
)

// AddTenantIndexers adds indexes whose values hold within one tenant, as
// the indexes upstream controllers add to their informers (pods by
// controller UID, by node name): each value is stored as tenant/value, so
// one tenant's query never answers with another's objects. An index of a
// name the cache already has is kept: upstream adds the same index under
// the same name, and each tenant's controller adds it again.
func (c *Cache) AddTenantIndexers(indexers cache.Indexers) error {
	c.indexMu.Lock()
	defer c.indexMu.Unlock()
	have := c.Indexer.GetIndexers()
	add := cache.Indexers{}
	for name, f := range indexers {
		if name == ByTenant || name == ByTenantNamespace {
			return fmt.Errorf("index %q is the cross-tenant cache's own", name)
		}
		if _, ok := have[name]; !ok {
			add[name] = withinTenant(f)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return c.Indexer.AddIndexers(add)
}

func withinTenant(f cache.IndexFunc) cache.IndexFunc {
	return func(obj any) ([]string, error) {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		values, err := f(obj)
		if err != nil {
			return nil, err
		}
		t := TenantOf(m)
		out := make([]string, len(values))
		for i, v := range values {
			out[i] = t + "/" + v
		}
		return out, nil
	}
}

// TenantIndexNames are the names AddTenantIndexers added. client-go hands
// out its own map of indexers, which AddTenantIndexers writes: read it
// under the same lock.
func (c *Cache) TenantIndexNames() []string {
	c.indexMu.Lock()
	defer c.indexMu.Unlock()
	var out []string
	for name := range c.Indexer.GetIndexers() {
		if name != ByTenant && name != ByTenantNamespace {
			out = append(out, name)
		}
	}
	return out
}

// ByTenantIndex returns tenant's objects whose index name has value.
func (c *Cache) ByTenantIndex(tenantName, name, value string) ([]any, error) {
	return c.ByIndex(name, tenantName+"/"+value)
}
