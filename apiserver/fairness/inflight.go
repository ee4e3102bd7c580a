package fairness

import (
	"context"
	"runtime"
	"sync"
)

// DefaultMaxInflightPerTenant leaves at least half the server's CPUs to
// the other tenants whatever one tenant sends: API Priority and Fairness
// hands out seats fairly, but requests executing at once share the CPU, so
// seats alone let a flooding tenant slow everyone else's requests.
func DefaultMaxInflightPerTenant() int {
	return max(1, runtime.GOMAXPROCS(0)/2)
}

// Inflight bounds the requests each tenant executes at once. A tenant's
// state exists only while it has requests executing or waiting.
type Inflight struct {
	limit, waiting int

	mu      sync.Mutex
	tenants map[string]*tenantSlots
}

type tenantSlots struct {
	slots   chan struct{}
	waiters int // requests holding or waiting for a slot
}

// NewInflight returns a bound of limit requests executing per tenant, with
// at most waiting more queued per tenant; a limit of 0 bounds nothing.
func NewInflight(limit, waiting int) *Inflight {
	return &Inflight{limit: limit, waiting: waiting, tenants: map[string]*tenantSlots{}}
}

// Acquire waits for one of the tenant's slots. It returns false, holding
// nothing, when the tenant already has too many requests waiting or ctx
// ends first; otherwise the caller must call the returned release.
func (f *Inflight) Acquire(ctx context.Context, name string) (release func(), ok bool) {
	if f == nil || f.limit <= 0 {
		return func() {}, true
	}
	f.mu.Lock()
	t := f.tenants[name]
	if t == nil {
		t = &tenantSlots{slots: make(chan struct{}, f.limit)}
		f.tenants[name] = t
	}
	if t.waiters >= f.limit+f.waiting {
		f.mu.Unlock()
		return nil, false
	}
	t.waiters++
	f.mu.Unlock()

	select {
	case t.slots <- struct{}{}:
		return func() {
			<-t.slots
			f.leave(name, t)
		}, true
	case <-ctx.Done():
		f.leave(name, t)
		return nil, false
	}
}

func (f *Inflight) leave(name string, t *tenantSlots) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.waiters--; t.waiters == 0 {
		delete(f.tenants, name)
	}
}

// Tenants returns how many tenants have requests executing or waiting.
func (f *Inflight) Tenants() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tenants)
}
