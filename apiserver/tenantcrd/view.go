package tenantcrd

import (
	apiextensionslisters "k8s.io/apiextensions-apiserver/pkg/client/listers/apiextensions/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/crosstenant/tenantview"
)

// view is one tenant's CRDs as the informer upstream's CRD handler and
// controllers are built on. It holds back the handlers registered before
// start: upstream's handler registers before it is ready to hear of CRDs,
// which a shared informer only tells it later.
type view struct {
	cache.SharedIndexInformer // of a deferred tenantview.Factory
	f                         *tenantview.Factory
}

func newView(crds *crosstenant.Cache, tenantName string) *view {
	f := tenantview.NewDeferredFactory(&tenantview.Caches{}, tenantName)
	return &view{SharedIndexInformer: f.InformerOf(crds), f: f}
}

// Informer and Lister make the view an upstream CustomResourceDefinitionInformer.
func (v *view) Informer() cache.SharedIndexInformer { return v.SharedIndexInformer }

func (v *view) Lister() apiextensionslisters.CustomResourceDefinitionLister {
	return apiextensionslisters.NewCustomResourceDefinitionLister(v.GetIndexer())
}

// start registers the held-back handlers, which hear of the tenant's CRDs
// at once, as initial adds.
func (v *view) start() { v.f.Start(nil) }

// stop unregisters every handler.
func (v *view) stop() { v.f.Close() }
