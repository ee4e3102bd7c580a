package crosstenant

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"
)

// Unwrap returns the object of a cache.DeletedFinalStateUnknown, which a
// delete may carry, else obj.
func Unwrap(obj any) any {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}

// handler is one registration of AddTenantHandler.
type handler struct{ cache.ResourceEventHandler }

// AddTenantHandler tells h of every later change to tenant's objects, and at
// once of the objects the tenant has (as initial adds). Deleted objects the
// cache missed arrive as cache.DeletedFinalStateUnknown keyed within the
// tenant (namespace/name). Handlers run on the cache's reflector goroutine:
// they must be quick. remove ends the registration.
func (c *Cache) AddTenantHandler(tenantName string, h cache.ResourceEventHandler) (remove func()) {
	reg := &handler{h}
	c.mu.Lock()
	if c.handlers == nil {
		c.handlers = map[string][]*handler{}
	}
	c.handlers[tenantName] = append(c.handlers[tenantName], reg)
	c.mu.Unlock()
	for _, obj := range c.InTenant(tenantName) {
		h.OnAdd(obj, true)
	}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		regs := slices.DeleteFunc(c.handlers[tenantName], func(r *handler) bool { return r == reg })
		if len(regs) == 0 {
			delete(c.handlers, tenantName)
		} else {
			c.handlers[tenantName] = regs
		}
	}
}

// Watch calls f with the tenant of every change, after the tenant's
// handlers. Like handlers, f runs on the reflector goroutine.
func (c *Cache) Watch(f func(tenantName string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watchers = append(c.watchers, f)
}

// Observer hears of every change in every tenant: oldObj is nil for an
// add, newObj nil for a delete (oldObj may then be a
// cache.DeletedFinalStateUnknown).
type Observer func(tenantName string, oldObj, newObj any)

// Observe calls f with every change, after the tenant's handlers and
// before the watchers. Like handlers, f runs on the reflector goroutine:
// it must be quick and must not block.
func (c *Cache) Observe(f Observer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observers = append(c.observers, f)
}

// listening reports whether anyone would hear of a change in tenantName.
func (c *Cache) listening(tenantName string) ([]*handler, []Observer, []func(string), bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	regs := c.handlers[tenantName]
	return regs, c.observers, c.watchers, len(regs) != 0 || len(c.observers) != 0 || len(c.watchers) != 0
}

func (c *Cache) notify(tenantName string, oldObj, newObj any, call func(cache.ResourceEventHandler)) {
	regs, observers, watchers, ok := c.listening(tenantName)
	if !ok {
		return
	}
	for _, r := range regs {
		call(r.ResourceEventHandler)
	}
	for _, f := range observers {
		f(tenantName, oldObj, newObj)
	}
	for _, f := range watchers {
		f(tenantName)
	}
}

// fanoutStore is the store of NewCache's reflector: the indexer, telling
// each tenant's handlers of changes.
type fanoutStore struct{ c *Cache }

func tenantOfObject(obj any) string {
	m, err := meta.Accessor(obj)
	if err != nil {
		return ""
	}
	return TenantOf(m)
}

func (s fanoutStore) Add(obj any) error    { return s.upsert(obj, s.c.Indexer.Add) }
func (s fanoutStore) Update(obj any) error { return s.upsert(obj, s.c.Indexer.Update) }
func (s fanoutStore) Resync() error        { return nil }

func (s fanoutStore) upsert(obj any, store func(any) error) error {
	old, existed, err := s.c.Indexer.Get(obj)
	if err != nil {
		return err
	}
	if err := store(obj); err != nil {
		return err
	}
	s.stored(obj, old, existed)
	return nil
}

// stored tells of obj, which replaced old if existed (else old is nil).
func (s fanoutStore) stored(obj, old any, existed bool) {
	s.c.notify(tenantOfObject(obj), old, obj, func(h cache.ResourceEventHandler) {
		if existed {
			h.OnUpdate(old, obj)
		} else {
			h.OnAdd(obj, false)
		}
	})
}

func (s fanoutStore) Delete(obj any) error {
	old, existed, err := s.c.Indexer.Get(obj)
	if err != nil {
		return err
	}
	if err := s.c.Indexer.Delete(obj); err != nil {
		return err
	}
	if existed {
		s.c.notify(tenantOfObject(old), old, nil, func(h cache.ResourceEventHandler) { h.OnDelete(old) })
	}
	return nil
}

// Replace stores a relist and tells each tenant what it changed; objects
// gone meanwhile are told as cache.DeletedFinalStateUnknown.
func (s fanoutStore) Replace(list []any, resourceVersion string) error {
	before := map[string]any{}
	for _, obj := range s.c.Indexer.List() {
		if key, err := KeyFunc(obj); err == nil {
			before[key] = obj
		}
	}
	if err := s.c.Indexer.Replace(list, resourceVersion); err != nil {
		return err
	}
	for _, obj := range list {
		key, err := KeyFunc(obj)
		if err != nil {
			continue
		}
		old, existed := before[key]
		delete(before, key)
		if existed && versionOf(old) == versionOf(obj) {
			continue
		}
		s.stored(obj, old, existed)
	}
	for key, old := range before {
		t := tenantOfObject(old)
		gone := cache.DeletedFinalStateUnknown{Key: strings.TrimPrefix(key, t+"/"), Obj: old}
		s.c.notify(t, gone, nil, func(h cache.ResourceEventHandler) { h.OnDelete(gone) })
	}
	return nil
}

func versionOf(obj any) string {
	m, err := meta.Accessor(obj)
	if err != nil {
		return ""
	}
	return m.GetResourceVersion()
}
