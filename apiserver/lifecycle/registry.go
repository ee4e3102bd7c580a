package lifecycle

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kplex/kplex/podsecurity"
)

// Registry is the in-memory set of tenants that may be served: created and
// not being deleted. Routing answers 404 for any other name, and tenant
// tokens authenticate only against the UID recorded here. It also counts
// each tenant's writes in flight, so that deletion removes a tenant's keys
// only once no write admitted before can land after.
type Registry struct {
	mu      sync.RWMutex
	tenants map[string]*entry
	// leaving are tenants no longer served whose writes may be in flight.
	leaving map[string][]*entry
}

type entry struct {
	uid    string
	writes atomic.Int64
	// podSecurity is the Tenant's spec.podSecurity, the level its pods
	// must meet; written under the registry's lock.
	podSecurity string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{tenants: map[string]*entry{}, leaving: map[string][]*entry{}}
}

// Serving reports whether requests for tenant name may be served.
func (r *Registry) Serving(name string) bool {
	_, ok := r.UID(name)
	return ok
}

// UID returns the UID of a serving tenant.
func (r *Registry) UID(name string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.tenants[name]
	if !ok {
		return "", false
	}
	return e.uid, true
}

// BeginWrite records a write to tenant name; done must be called when it
// is answered. ok is false, and nothing recorded, if the tenant is not
// served.
func (r *Registry) BeginWrite(name string) (done func(), ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.tenants[name]
	if !ok {
		return nil, false
	}
	e.writes.Add(1)
	return func() { e.writes.Add(-1) }, true
}

// observe records the state of a Tenant object as the informer saw it.
func (r *Registry) observe(obj *unstructured.Unstructured) {
	if obj.GetDeletionTimestamp() != nil {
		r.forget(obj.GetName())
		return
	}
	level, _, _ := unstructured.NestedString(obj.Object, "spec", "podSecurity")
	level = podsecurity.TenantLevel(level)
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.tenants[obj.GetName()]
	if !ok || e.uid != string(obj.GetUID()) {
		e = &entry{uid: string(obj.GetUID())}
		r.tenants[obj.GetName()] = e
	}
	e.podSecurity = level
}

// PodSecurity is the Pod Security level the management plane set for a
// serving tenant; ok is false for a tenant not served.
func (r *Registry) PodSecurity(name string) (level string, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.tenants[name]
	if !ok {
		return "", false
	}
	return e.podSecurity, true
}

// forget stops serving tenant name; its writes in flight drain.
func (r *Registry) forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.tenants[name]; ok {
		delete(r.tenants, name)
		r.leaving[name] = append(r.leaving[name], e)
	}
}

// drained waits until no write to tenant name admitted while it was served
// is in flight, or until ctx ends or limit passes; then it forgets them.
func (r *Registry) drained(ctx context.Context, name string, limit time.Duration) {
	r.mu.RLock()
	leaving := r.leaving[name]
	r.mu.RUnlock()
	deadline := time.Now().Add(limit)
	for _, e := range leaving {
		for e.writes.Load() > 0 && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leaving[name] = slices.DeleteFunc(r.leaving[name], func(e *entry) bool { return slices.Contains(leaving, e) })
	if len(r.leaving[name]) == 0 {
		delete(r.leaving, name)
	}
}
