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
// out, so that Close can end those upstream code never removes.
type registrations struct {
	mu      sync.Mutex
	closed  bool
	removes []func()
}

// add records remove, or calls it at once once closed.
func (r *registrations) add(remove func()) {
	r.mu.Lock()
	if !r.closed {
		r.removes = append(r.removes, remove)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	remove()
}

func (r *registrations) close() {
	r.mu.Lock()
	removes := r.removes
	r.removes, r.closed = nil, true
	r.mu.Unlock()
	for _, remove := range removes {
		remove()
	}
}

// NewInformer returns the informer of tenant t's objects in c; a nil c
// holds nothing and is synced.
func NewInformer(c *crosstenant.Cache, t string) *Informer {
	return &Informer{idx: indexer{c: c, t: t}}
}

type registration struct {
	remove func()
	inf    *Informer
}

func (r *registration) HasSynced() bool                     { return r.inf.HasSynced() }
func (r *registration) HasSyncedChecker() cache.DoneChecker { return r.inf.HasSyncedChecker() }

func (i *Informer) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	if i.idx.c == nil {
		return &registration{remove: func() {}, inf: i}, nil
	}
	remove := sync.OnceFunc(i.idx.c.AddTenantHandler(i.idx.t, h))
	if i.regs != nil {
		i.regs.add(remove)
	}
	return &registration{remove: remove, inf: i}, nil
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
	r.remove()
	return nil
}

func (i *Informer) GetStore() cache.Store                              { return i.idx }
func (i *Informer) GetIndexer() cache.Indexer                          { return i.idx }
func (i *Informer) Run(<-chan struct{})                                {}
func (i *Informer) RunWithContext(context.Context)                     {}
func (i *Informer) IsStopped() bool                                    { return false }
func (i *Informer) LastSyncResourceVersion() string                    { return "" }
func (i *Informer) SetTransform(cache.TransformFunc) error             { return errReadOnly }
func (i *Informer) AddIndexers(cache.Indexers) error                   { return errReadOnly }
func (i *Informer) SetWatchErrorHandler(cache.WatchErrorHandler) error { return nil }

func (i *Informer) SetWatchErrorHandlerWithContext(cache.WatchErrorHandlerWithContext) error {
	return nil
}

// HasSynced reports whether the shared cache has synced.
func (i *Informer) HasSynced() bool { return i.idx.c == nil || i.idx.c.HasSynced() }

func (i *Informer) HasSyncedChecker() cache.DoneChecker { return syncChecker{i} }

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
