package tenantview

import (
	"context"
	"errors"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/client/crosstenant"
)

// Informer is a cache.SharedIndexInformer over tenant t's objects in a
// crosstenant.Cache that runs elsewhere: Run does nothing, handlers are
// the cache's tenant handlers.
type Informer struct {
	cache.SharedIndexInformer // nil: what is not overridden panics
	idx                       indexer
	regs                      *registrations // of the Factory that made it, or nil
}

// registrations are the handler registrations a Factory's informers handed
// out, so that Close can end those upstream code never removes, and so
// that a deferred Factory can hold them until Start.
type registrations struct {
	mu       sync.Mutex
	deferred bool // hold registrations until start
	started  bool
	closed   bool
	held     []func()
	all      []*registration
}

// add makes reg's registration (register) now, at start, or never once
// closed.
func (r *registrations) add(reg *registration, register func()) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.all = append(r.all, reg)
	if r.deferred && !r.started {
		r.held = append(r.held, register)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	register()
}

func (r *registrations) start() {
	r.mu.Lock()
	held := r.held
	r.held, r.started = nil, true
	r.mu.Unlock()
	for _, register := range held {
		register()
	}
}

func (r *registrations) close() {
	r.mu.Lock()
	all := r.all
	r.all, r.held, r.closed = nil, nil, true
	r.mu.Unlock()
	for _, reg := range all {
		reg.end()
	}
}

// NewInformer returns the informer of tenant t's objects in c; a nil c
// holds nothing and is synced.
func NewInformer(c *crosstenant.Cache, t string) *Informer {
	return &Informer{idx: indexer{c: c, t: t}}
}

// registration is one handler of an Informer. It may be ended before it
// is made (a deferred Factory closed before Start).
type registration struct {
	inf *Informer

	mu     sync.Mutex
	ended  bool
	remove func() // set once registered
}

// register adds h to the cache, which tells it at once of the tenant's
// objects.
func (r *registration) register(h cache.ResourceEventHandler) {
	if keep := r.inf.idx.keep; keep != nil {
		h = cache.FilteringResourceEventHandler{FilterFunc: keep, Handler: h}
	}
	remove := r.inf.idx.c.AddTenantHandler(r.inf.idx.t, h)
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		remove()
		return
	}
	r.remove = remove
	r.mu.Unlock()
}

func (r *registration) end() {
	r.mu.Lock()
	r.ended = true
	remove := r.remove
	r.mu.Unlock()
	if remove != nil {
		remove()
	}
}

func (r *registration) HasSynced() bool                     { return r.inf.HasSynced() }
func (r *registration) HasSyncedChecker() cache.DoneChecker { return r.inf.HasSyncedChecker() }

func (i *Informer) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	reg := &registration{inf: i}
	switch {
	case i.idx.c == nil:
	case i.regs != nil:
		i.regs.add(reg, func() { reg.register(h) })
	default:
		reg.register(h)
	}
	return reg, nil
}

func (i *Informer) AddEventHandlerWithResyncPeriod(h cache.ResourceEventHandler, _ time.Duration) (cache.ResourceEventHandlerRegistration, error) {
	return i.AddEventHandler(h)
}

func (i *Informer) AddEventHandlerWithOptions(h cache.ResourceEventHandler, _ cache.HandlerOptions) (cache.ResourceEventHandlerRegistration, error) {
	return i.AddEventHandler(h)
}

func (i *Informer) RemoveEventHandler(handle cache.ResourceEventHandlerRegistration) error {
	r, ok := handle.(*registration)
	if !ok {
		return errors.New("not a registration of a tenant view")
	}
	r.end()
	return nil
}

func (i *Informer) GetStore() cache.Store                              { return i.idx }
func (i *Informer) GetController() cache.Controller                    { return controller{i} }
func (i *Informer) GetIndexer() cache.Indexer                          { return i.idx }
func (i *Informer) Run(<-chan struct{})                                {}
func (i *Informer) RunWithContext(context.Context)                     {}
func (i *Informer) IsStopped() bool                                    { return false }
func (i *Informer) LastSyncResourceVersion() string                    { return "" }
func (i *Informer) SetTransform(cache.TransformFunc) error             { return errReadOnly }
func (i *Informer) AddIndexers(idx cache.Indexers) error               { return i.idx.AddIndexers(idx) }
func (i *Informer) SetWatchErrorHandler(cache.WatchErrorHandler) error { return nil }

func (i *Informer) SetWatchErrorHandlerWithContext(cache.WatchErrorHandlerWithContext) error {
	return nil
}

// HasSynced reports whether the shared cache has synced.
func (i *Informer) HasSynced() bool { return i.idx.c == nil || i.idx.c.HasSynced() }

func (i *Informer) HasSyncedChecker() cache.DoneChecker { return syncChecker{i} }

// controller is the cache.Controller of a view, which upstream runs (the
// garbage collector's monitors): the shared cache runs elsewhere, so Run
// only waits.
type controller struct{ i *Informer }

var _ cache.Controller = controller{}

func (c controller) Run(stop <-chan struct{})            { <-stop }
func (c controller) RunWithContext(ctx context.Context)  { <-ctx.Done() }
func (c controller) HasSynced() bool                     { return c.i.HasSynced() }
func (c controller) HasSyncedChecker() cache.DoneChecker { return c.i.HasSyncedChecker() }
func (c controller) LastSyncResourceVersion() string     { return "" }

// syncChecker is closed once the shared cache has synced. Views are made
// after it has, so the poll is for the odd early caller.
type syncChecker struct{ i *Informer }

func (s syncChecker) Name() string { return "tenant view" }

func (s syncChecker) Done() <-chan struct{} {
	done := make(chan struct{})
	if s.i.HasSynced() {
		close(done)
		return done
	}
	go func() {
		for !s.i.HasSynced() {
			time.Sleep(100 * time.Millisecond)
		}
		close(done)
	}()
	return done
}
