// Package garbagecollector runs upstream's garbage collector per tenant, as
// an activation Spec: background, foreground and orphan deletion over the
// tenant's objects only, its owner lookups through the tenant's path.
//
// Built-in resources come from cross-tenant metadata caches (one watch per
// resource); the tenant's custom resources, which are served per tenant
// only, from informers of the tenant's path while the collector is awake.
// A custom resource's deletion is not seen by the shared caches, so the
// collector of a tenant whose objects have custom-resource owners stays
// awake.
package garbagecollector

import (
	"context"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/restmapper"
	upstreamgc "k8s.io/kubernetes/pkg/controller/garbagecollector"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
	"github.com/kplex/kplex/controllers/informerfactory"
)

// Name names the controller.
const Name = "garbagecollector"

const (
	// workers is fewer than kube-controller-manager's 20: one tenant's
	// objects.
	workers = 2
	// syncPeriod is kube-controller-manager's: how often discovery is
	// read again for new resources (the tenant's new CRDs).
	syncPeriod = 30 * time.Second
	// Deleting an object takes two calls; kube-controller-manager doubles
	// this controller's QPS.
	qps   = 40
	burst = 60
)

func object(obj any) metav1.Object {
	m, _ := crosstenant.Unwrap(obj).(metav1.Object)
	return m
}

// collecting tells whether m waits on the collector: deleted with the
// orphan or foreground finalizer.
func collecting(m metav1.Object) bool {
	if m == nil || m.GetDeletionTimestamp() == nil {
		return false
	}
	f := m.GetFinalizers()
	return slices.Contains(f, metav1.FinalizerOrphanDependents) || slices.Contains(f, metav1.FinalizerDeleteDependents)
}

// Spec is upstream's garbage collector per tenant. It wakes when an owner
// of cached dependents goes, when an object is deleted in the foreground or
// with its dependents orphaned, and when an object names an owner not
// found; it stays awake while a foreground or orphan deletion waits, and
// while the tenant has dependents of its custom resources.
func Spec(c Caches) activation.Spec {
	ownerMissing := func(m metav1.Object) bool {
		for _, ref := range m.GetOwnerReferences() {
			if !c.exists(string(ref.UID)) {
				return true
			}
		}
		return false
	}
	// pending: a deletion waits on the collector, or an object names an
	// owner not found (gone, or one of the tenant's custom resources).
	pending := func(t string) bool {
		for _, x := range c {
			for _, obj := range x.InTenant(t) {
				if m := object(obj); collecting(m) || ownerMissing(m) {
					return true
				}
			}
		}
		return false
	}
	return activation.Spec{
		Name:  Name,
		Watch: c.List(),
		Relevant: func(_ string, oldObj, newObj any) bool {
			if newObj == nil {
				old := object(oldObj)
				return old != nil && c.owned(string(old.GetUID()))
			}
			m := object(newObj)
			if m == nil {
				return false
			}
			if collecting(m) {
				return true
			}
			if old := object(oldObj); old != nil && slices.EqualFunc(old.GetOwnerReferences(), m.GetOwnerReferences(), func(a, b metav1.OwnerReference) bool { return a.UID == b.UID }) {
				return false
			}
			return ownerMissing(m)
		},
		Pending: pending,
		// Owners not in the caches are the tenant's custom resources
		// (or gone): their deletion is seen only by an awake collector,
		// so a tenant with such dependents keeps it awake.
		Keep:  pending,
		QPS:   qps,
		Burst: burst,
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			md, err := metadata.NewForConfigAndClient(env.Config, env.HTTPClient)
			if err != nil {
				return nil, err
			}
			// Two discovery clients, as upstream wants: resetting the
			// mapper must not reset the one Sync reads.
			mapperDiscovery, err := discovery.NewDiscoveryClientForConfigAndClient(env.Config, env.HTTPClient)
			if err != nil {
				return nil, err
			}
			mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(mapperDiscovery))
			inf := informerfactory.New(env.Informers, md)
			started := make(chan struct{})
			close(started) // the activator starts the views after Build
			gc, err := upstreamgc.NewGarbageCollector(ctx, env.Client, md, mapper, upstreamgc.DefaultIgnoredResources(), inf, started)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) {
				var wg sync.WaitGroup
				wg.Go(func() { gc.Run(ctx, workers, syncPeriod) })
				wg.Go(func() { gc.Sync(ctx, env.Client.Discovery(), syncPeriod) })
				wg.Wait()
			}, nil
		},
	}
}
