// Package informerfactory is the informer factory of a tenant's garbage
// collector and quota controller: upstream's informerfactory.InformerFactory
// over the tenant's view of the shared caches, and for what they do not
// hold (the tenant's custom resources, served per tenant only) metadata
// informers of the tenant's path, run while the controller is awake.
package informerfactory

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/controller-manager/pkg/informerfactory"

	"github.com/kplex/kplex/client/crosstenant/tenantview"
)

// Factory is an informerfactory.InformerFactory of one tenant.
type Factory struct {
	views *tenantview.Factory
	md    metadata.Interface

	mu      sync.Mutex
	custom  map[schema.GroupVersionResource]informers.GenericInformer
	running map[schema.GroupVersionResource]bool
}

var _ informerfactory.InformerFactory = (*Factory)(nil)

// New returns the factory of views, with md (a metadata client of the
// tenant's path) for the rest.
func New(views *tenantview.Factory, md metadata.Interface) *Factory {
	return &Factory{views: views, md: md,
		custom:  map[schema.GroupVersionResource]informers.GenericInformer{},
		running: map[schema.GroupVersionResource]bool{}}
}

// ForResource returns the view's informer of r, else a metadata informer
// of the tenant's path (run by Start).
func (f *Factory) ForResource(r schema.GroupVersionResource) (informers.GenericInformer, error) {
	if inf, err := f.views.ForResource(r); err == nil {
		return inf, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if inf, ok := f.custom[r]; ok {
		return inf, nil
	}
	inf := metadatainformer.NewFilteredMetadataInformer(f.md, r, metav1.NamespaceAll, 0, cache.Indexers{}, nil)
	f.custom[r] = inf
	return inf, nil
}

// Start starts the views and runs the metadata informers not yet running;
// they stop with stop.
func (f *Factory) Start(stop <-chan struct{}) {
	f.views.Start(stop)
	f.mu.Lock()
	defer f.mu.Unlock()
	for r, inf := range f.custom {
		if !f.running[r] {
			f.running[r] = true
			go inf.Informer().Run(stop)
		}
	}
}
