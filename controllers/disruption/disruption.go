// Package disruption runs upstream's disruption controller per tenant, as
// an activation Spec: a PodDisruptionBudget's status counts its own
// tenant's pods, found through its own tenant's controllers and scale
// subresources.
package disruption

import (
	"context"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	upstream "k8s.io/kubernetes/pkg/controller/disruption"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
)

// Name names the controller.
const Name = "disruption"

// Caches are the cross-tenant caches the controller reads.
type Caches struct {
	PodDisruptionBudgets *crosstenant.Cache
	// Pods and the controllers whose scale sets a budget's expected pods.
	Pods, ReplicationControllers, ReplicaSets, Deployments, StatefulSets *crosstenant.Cache
}

// Spec is upstream's disruption controller per tenant, for tenants that
// have budgets. It stays awake while a budget remembers pods being
// evicted (upstream forgets them after two minutes, on a timer).
func Spec(c Caches) activation.Spec {
	budgets := func(t string) []*policyv1.PodDisruptionBudget {
		var out []*policyv1.PodDisruptionBudget
		for _, obj := range c.PodDisruptionBudgets.InTenant(t) {
			out = append(out, obj.(*policyv1.PodDisruptionBudget))
		}
		return out
	}
	return activation.Spec{
		Name:  Name,
		Watch: []*crosstenant.Cache{c.PodDisruptionBudgets, c.Pods, c.ReplicationControllers, c.ReplicaSets, c.Deployments, c.StatefulSets},
		Relevant: func(t string, oldObj, newObj any) bool {
			if _, ok := newObj.(*policyv1.PodDisruptionBudget); ok {
				return true
			}
			return len(c.PodDisruptionBudgets.InTenant(t)) != 0
		},
		Pending: func(t string) bool {
			for _, pdb := range budgets(t) {
				if pdb.Status.ObservedGeneration < pdb.Generation {
					return true
				}
			}
			return false
		},
		Keep: func(t string) bool {
			for _, pdb := range budgets(t) {
				if len(pdb.Status.DisruptedPods) != 0 {
					return true
				}
			}
			return false
		},
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			disc := env.Client.Discovery()
			mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
			scales, err := scale.NewForConfig(env.Config, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(disc))
			if err != nil {
				return nil, err
			}
			core, apps := env.Informers.Core().V1(), env.Informers.Apps().V1()
			dc := upstream.NewDisruptionController(ctx, core.Pods(), env.Informers.Policy().V1().PodDisruptionBudgets(),
				core.ReplicationControllers(), apps.ReplicaSets(), apps.Deployments(), apps.StatefulSets(),
				env.Client, mapper, scales, disc)
			return func(ctx context.Context) { dc.Run(ctx, 1) }, nil
		},
	}
}
