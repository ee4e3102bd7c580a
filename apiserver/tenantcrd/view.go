package tenantcrd

import (
	"sync"
	"time"

	apiextensionslisters "k8s.io/apiextensions-apiserver/pkg/client/listers/apiextensions/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/crosstenant/tenantview"
)

// view is one tenant's CRDs as the informer upstream's CRD handler and
// controllers are built on. It holds back the handlers registered while a
// unit is built until start: upstream's handler registers before it is
// ready to hear of CRDs, which a shared informer only tells it later.
type view struct {
	cache.SharedIndexInformer // the tenantview.Informer
	tv                        *tenantview.Informer

	mu      sync.Mutex
	pending []cache.ResourceEventHandler
	started bool
	regs    []cache.ResourceEventHandlerRegistration
}

func newView(crds *crosstenant.Cache, tenantName string) *view {
	tv := tenantview.NewInformer(crds, tenantName)
	return &view{SharedIndexInformer: tv, tv: tv}
}

// Informer and Lister make the view an upstream CustomResourceDefinitionInformer.
func (v *view) Informer() cache.SharedIndexInformer { return v }

func (v *view) Lister() apiextensionslisters.CustomResourceDefinitionLister {
	return apiextensionslisters.NewCustomResourceDefinitionLister(v.GetIndexer())
}

func (v *view) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.started {
		v.pending = append(v.pending, h)
		return pendingRegistration{v}, nil
	}
	reg, err := v.tv.AddEventHandler(h)
	if err == nil {
		v.regs = append(v.regs, reg)
	}
	return reg, err
}

func (v *view) AddEventHandlerWithOptions(h cache.ResourceEventHandler, _ cache.HandlerOptions) (cache.ResourceEventHandlerRegistration, error) {
	return v.AddEventHandler(h)
}

func (v *view) AddEventHandlerWithResyncPeriod(h cache.ResourceEventHandler, _ time.Duration) (cache.ResourceEventHandlerRegistration, error) {
	return v.AddEventHandler(h)
}

// start registers the held-back handlers, which hear of the tenant's CRDs
// at once, as initial adds.
func (v *view) start() {
	v.mu.Lock()
	pending := v.pending
	v.pending, v.started = nil, true
	v.mu.Unlock()
	for _, h := range pending {
		_, _ = v.AddEventHandler(h)
	}
}

// stop unregisters every handler.
func (v *view) stop() {
	v.mu.Lock()
	regs := v.regs
	v.regs = nil
	v.mu.Unlock()
	for _, reg := range regs {
		_ = v.tv.RemoveEventHandler(reg)
	}
}

// pendingRegistration stands for a handler until start.
type pendingRegistration struct{ v *view }

func (r pendingRegistration) HasSynced() bool                     { return r.v.HasSynced() }
func (r pendingRegistration) HasSyncedChecker() cache.DoneChecker { return r.v.HasSyncedChecker() }
