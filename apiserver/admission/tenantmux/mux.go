package tenantmux

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apiserver/pkg/admission"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/client/crosstenant/tenantview"
	"github.com/kplex/kplex/tenant"
)

// Mux dispatches one upstream plugin's work by the request's tenant.
type Mux struct {
	spec Spec
	hub  *Hub
	root admission.Interface

	mu      sync.Mutex
	tenants map[string]*instance
}

// instance is a tenant's upstream plugin and the channel that stops it.
type instance struct {
	plugin admission.Interface
	stop   chan struct{}
	// used is when a request last picked the instance, in Unix nanoseconds.
	used atomic.Int64
}

// wrap returns a Mux of root with root's phases: the chain tells mutating
// from validating plugins by type.
func wrap(m *Mux) admission.Interface {
	_, mutates := m.root.(admission.MutationInterface)
	_, validates := m.root.(admission.ValidationInterface)
	switch {
	case mutates && validates:
		return mutatingValidatingMux{m}
	case mutates:
		return mutatingMux{m}
	case validates:
		return validatingMux{m}
	}
	return m
}

// Handles is the root instance's: every instance is of its type.
func (m *Mux) Handles(op admission.Operation) bool { return m.root.Handles(op) }

// pick returns the plugin for a's tenant, nil when there is nothing to do.
func (m *Mux) pick(ctx context.Context, a admission.Attributes) (admission.Interface, error) {
	t := tenant.FromContext(ctx)
	switch t {
	case tenant.Root:
		return m.root, nil
	case tenant.Wildcard:
		return nil, nil
	}
	caches, err := m.hub.synced(ctx)
	if err != nil {
		return nil, err
	}
	if !m.spec.Need(caches, t, a) {
		return nil, nil
	}
	return m.instance(caches, t)
}

func (m *Mux) instance(caches *tenantview.Caches, t string) (admission.Interface, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if in := m.tenants[t]; in != nil {
		in.used.Store(time.Now().UnixNano())
		return in.plugin, nil
	}
	in, err := m.hub.build(caches, m.spec, t)
	if err != nil {
		return nil, err
	}
	if m.tenants == nil {
		m.tenants = map[string]*instance{}
	}
	in.used.Store(time.Now().UnixNano())
	m.tenants[t] = in
	klog.V(2).InfoS("Started per-tenant admission plugin", "plugin", m.spec.Name, "tenant", t)
	return in.plugin, nil
}

// sweep stops tenant t's instance once the tenant no longer keeps it.
func (m *Mux) sweep(caches *tenantview.Caches, t string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.tenants[t]
	if in == nil || m.spec.Keep(caches, t) {
		return
	}
	delete(m.tenants, t)
	close(in.stop)
	klog.V(2).InfoS("Stopped per-tenant admission plugin", "plugin", m.spec.Name, "tenant", t)
}

// evictIdle stops the instances no request picked since before: a tenant
// that is not writing holds no plugin, and builds one again (a few
// milliseconds) on its next request.
func (m *Mux) evictIdle(before time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for t, in := range m.tenants {
		if in.used.Load() < before.UnixNano() {
			delete(m.tenants, t)
			close(in.stop)
			klog.V(2).InfoS("Stopped idle per-tenant admission plugin", "plugin", m.spec.Name, "tenant", t)
		}
	}
}

// running returns the number of tenant instances.
func (m *Mux) running() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tenants)
}

func (m *Mux) admit(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	p, err := m.pick(ctx, a)
	if err != nil || p == nil {
		return err
	}
	if mp, ok := p.(admission.MutationInterface); ok && mp.Handles(a.GetOperation()) {
		return mp.Admit(ctx, a, o)
	}
	return nil
}

func (m *Mux) validate(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	p, err := m.pick(ctx, a)
	if err != nil || p == nil {
		return err
	}
	if vp, ok := p.(admission.ValidationInterface); ok && vp.Handles(a.GetOperation()) {
		return vp.Validate(ctx, a, o)
	}
	return nil
}

type mutatingMux struct{ *Mux }

func (m mutatingMux) Admit(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	return m.admit(ctx, a, o)
}

type validatingMux struct{ *Mux }

func (m validatingMux) Validate(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	return m.validate(ctx, a, o)
}

type mutatingValidatingMux struct{ *Mux }

func (m mutatingValidatingMux) Admit(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	return m.admit(ctx, a, o)
}

func (m mutatingValidatingMux) Validate(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	return m.validate(ctx, a, o)
}
