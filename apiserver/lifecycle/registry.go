package lifecycle

import (
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Registry is the in-memory set of tenants that may be served: created and
// not being deleted. Routing answers 404 for any other name, and tenant
// tokens authenticate only against the UID recorded here.
type Registry struct {
	mu      sync.RWMutex
	tenants map[string]string // name → UID
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{tenants: map[string]string{}}
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
	uid, ok := r.tenants[name]
	return uid, ok
}

// observe records the state of a Tenant object as the informer saw it.
func (r *Registry) observe(obj *unstructured.Unstructured) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if obj.GetDeletionTimestamp() != nil {
		delete(r.tenants, obj.GetName())
		return
	}
	r.tenants[obj.GetName()] = string(obj.GetUID())
}

// forget drops tenant name.
func (r *Registry) forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.tenants, name)
}
