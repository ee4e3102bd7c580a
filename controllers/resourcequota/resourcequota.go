// Package resourcequota runs upstream's resource quota controller per
// tenant, as an activation Spec: each quota's status.used counts its own
// tenant's objects, as the tenant's quota admission charges them.
package resourcequota

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	quota "k8s.io/apiserver/pkg/quota/v1"
	"k8s.io/apiserver/pkg/quota/v1/generic"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/pkg/controller"
	rqcontroller "k8s.io/kubernetes/pkg/controller/resourcequota"
	quotainstall "k8s.io/kubernetes/pkg/quota/v1/install"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
	"github.com/kplex/kplex/controllers/informerfactory"
)

// Name names the controller.
const Name = "resourcequota"

const (
	// resync is kube-controller-manager's --resource-quota-sync-period,
	// while awake.
	resync = 5 * time.Minute
	// syncPeriod is how often discovery is read for new resources.
	syncPeriod = 30 * time.Second
	workers    = 1
)

// settled tells whether q's status reflects its spec: every hard limit
// observed and its usage counted.
func settled(q *corev1.ResourceQuota) bool {
	if !quota.Equals(q.Spec.Hard, q.Status.Hard) {
		return false
	}
	for name := range q.Spec.Hard {
		if _, ok := q.Status.Used[name]; !ok {
			return false
		}
	}
	return true
}

// Spec is upstream's quota controller per tenant, for tenants that have
// quotas. quotas is the cross-tenant ResourceQuota cache; watched are the
// caches whose changes replenish or use quota (pods, services, claims and
// every other resource's metadata).
func Spec(quotas *crosstenant.Cache, watched []*crosstenant.Cache) activation.Spec {
	hasQuotas := func(t string) bool { return len(quotas.InTenant(t)) != 0 }
	return activation.Spec{
		Name:  Name,
		Watch: append([]*crosstenant.Cache{quotas}, watched...),
		Relevant: func(t string, oldObj, newObj any) bool {
			if _, ok := newObj.(*corev1.ResourceQuota); ok {
				return true
			}
			if oldObj != nil && newObj == nil {
				if _, ok := oldObj.(*corev1.ResourceQuota); ok {
					return false // its status goes with it
				}
			}
			return hasQuotas(t)
		},
		Pending: func(t string) bool {
			for _, obj := range quotas.InTenant(t) {
				if !settled(obj.(*corev1.ResourceQuota)) {
					return true
				}
			}
			return false
		},
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			md, err := metadata.NewForConfigAndClient(env.Config, env.HTTPClient)
			if err != nil {
				return nil, err
			}
			inf := informerfactory.New(env.Informers, md)
			cfg, err := quotainstall.NewQuotaConfigurationForControllers(generic.ListerFuncForResourceFunc(inf.ForResource), env.Informers)
			if err != nil {
				return nil, err
			}
			started := make(chan struct{})
			close(started) // the activator starts the views after Build
			discover := env.Client.Discovery().ServerPreferredNamespacedResources
			rq, err := rqcontroller.NewController(ctx, &rqcontroller.ControllerOptions{
				QuotaClient:               env.Client.CoreV1(),
				ResourceQuotaInformer:     quotaInformer{env.Informers.Core().V1().ResourceQuotas()},
				ResyncPeriod:              controller.StaticResyncPeriodFunc(resync),
				Registry:                  generic.NewRegistry(cfg.Evaluators()),
				DiscoveryFunc:             discover,
				IgnoredResourcesFunc:      cfg.IgnoredResources,
				InformersStarted:          started,
				InformerFactory:           inf,
				ReplenishmentResyncPeriod: controller.StaticResyncPeriodFunc(resync),
				UpdateFilter:              quotainstall.DefaultUpdateFilter(),
			})
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) {
				var wg sync.WaitGroup
				wg.Go(func() { rq.Run(ctx, workers) })
				wg.Go(func() { rq.Sync(ctx, discover, syncPeriod) })
				wg.Wait()
			}, nil
		},
	}
}

// quotaInformer hands the controller a write that unsettles a quota's
// status (someone else's: the controller's own settle it) as an add, which
// the controller reconciles at once. Upstream's controller ignores status
// changes and leaves them to its full resync every five minutes, which a
// tenant's instance that sleeps when quiet may never reach.
type quotaInformer struct {
	coreinformers.ResourceQuotaInformer
}

func (q quotaInformer) Informer() cache.SharedIndexInformer {
	return unsettledAsAdded{q.ResourceQuotaInformer.Informer()}
}

type unsettledAsAdded struct {
	cache.SharedIndexInformer
}

func (i unsettledAsAdded) AddEventHandlerWithResyncPeriod(h cache.ResourceEventHandler, resync time.Duration) (cache.ResourceEventHandlerRegistration, error) {
	return i.SharedIndexInformer.AddEventHandlerWithResyncPeriod(unsettledHandler{h}, resync)
}

type unsettledHandler struct {
	cache.ResourceEventHandler
}

func (h unsettledHandler) OnUpdate(oldObj, newObj any) {
	old, _ := oldObj.(*corev1.ResourceQuota)
	cur, ok := newObj.(*corev1.ResourceQuota)
	if ok && old != nil && !settled(cur) && !apiequality.Semantic.DeepEqual(old.Status, cur.Status) {
		h.OnAdd(cur, false)
		return
	}
	h.ResourceEventHandler.OnUpdate(oldObj, newObj)
}
