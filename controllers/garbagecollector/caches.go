package garbagecollector

import (
	"context"
	"fmt"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	upstreamgc "k8s.io/kubernetes/pkg/controller/garbagecollector"

	"github.com/kplex/kplex/client/crosstenant"
)

// byUID indexes every tenant's objects by UID, and byOwnerUID by the UIDs
// of their owners: UIDs are unique across tenants, so neither needs the
// tenant. They let a change be judged relevant without a tenant's graph.
const (
	byUID      = "kplex-uid"
	byOwnerUID = "kplex-owner-uid"
)

var uidIndexers = cache.Indexers{
	byUID: func(obj any) ([]string, error) {
		m, ok := obj.(metav1.Object)
		if !ok {
			return nil, nil
		}
		return []string{string(m.GetUID())}, nil
	},
	byOwnerUID: func(obj any) ([]string, error) {
		m, ok := obj.(metav1.Object)
		if !ok {
			return nil, nil
		}
		var out []string
		for _, ref := range m.GetOwnerReferences() {
			out = append(out, string(ref.UID))
		}
		return out, nil
	},
}

// Caches are cross-tenant caches of the metadata of every built-in
// resource the collector watches, one watch each.
type Caches map[schema.GroupVersionResource]*crosstenant.Cache

// NewCaches discovers root's deletable built-in resources (not root's
// custom resources, which are not served across tenants; not those
// upstream's collector ignores) and returns a metadata cache of each,
// listing and watching through crossTenant.
func NewCaches(ctx context.Context, root, crossTenant *rest.Config) (Caches, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(root)
	if err != nil {
		return nil, fmt.Errorf("building root's discovery client: %w", err)
	}
	resources, err := upstreamgc.GetDeletableResources(ctx, discovery.ToServerResourcesInterfaceWithContext(dc))
	if len(resources) == 0 {
		return nil, fmt.Errorf("discovering the deletable resources: none found (%v)", err)
	}
	ext, err := apiextensionsclient.NewForConfig(root)
	if err != nil {
		return nil, err
	}
	crds, err := ext.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing root's CRDs: %w", err)
	}
	custom := map[schema.GroupResource]bool{}
	for _, crd := range crds.Items {
		custom[schema.GroupResource{Group: crd.Spec.Group, Resource: crd.Spec.Names.Plural}] = true
	}
	md, err := metadata.NewForConfig(crossTenant)
	if err != nil {
		return nil, err
	}
	out := Caches{}
	for gvr := range resources {
		if _, ignored := upstreamgc.DefaultIgnoredResources()[gvr.GroupResource()]; ignored || custom[gvr.GroupResource()] {
			continue
		}
		c := crosstenant.NewCache(metadataListWatch(md.Resource(gvr)), &metav1.PartialObjectMetadata{})
		if err := c.AddIndexers(uidIndexers); err != nil {
			return nil, err
		}
		out[gvr] = c
	}
	return out, nil
}

func metadataListWatch(r metadata.ResourceInterface) cache.ListerWatcher {
	return crosstenant.NoWatchList(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return r.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return r.Watch(ctx, o)
		},
	})
}

// List returns the caches as a slice.
func (c Caches) List() []*crosstenant.Cache {
	out := make([]*crosstenant.Cache, 0, len(c))
	for _, x := range c {
		out = append(out, x)
	}
	return out
}

// exists tells whether an object of that UID is in any cache.
func (c Caches) exists(uid string) bool {
	for _, x := range c {
		if objs, _ := x.ByIndex(byUID, uid); len(objs) != 0 {
			return true
		}
	}
	return false
}

// owned tells whether any cached object names uid as an owner.
func (c Caches) owned(uid string) bool {
	for _, x := range c {
		if objs, _ := x.ByIndex(byOwnerUID, uid); len(objs) != 0 {
			return true
		}
	}
	return false
}
