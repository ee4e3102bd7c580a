package workloads

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/controller/statefulset"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
)

// StatefulSetName names the controller.
const StatefulSetName = "statefulset"

// unsettled tells whether set has work: a spec not yet observed, a replica
// count not reached, or an update not rolled out.
func unsettled(set *appsv1.StatefulSet) bool {
	want := replicas(set.Spec.Replicas)
	return set.Status.ObservedGeneration < set.Generation ||
		set.Status.Replicas != want ||
		(set.Status.UpdateRevision != "" && set.Status.CurrentRevision != set.Status.UpdateRevision)
}

// StatefulSets is upstream's statefulset controller per tenant.
func StatefulSets(c Caches) activation.Spec {
	return activation.Spec{
		Name:     StatefulSetName,
		Watch:    []*crosstenant.Cache{c.StatefulSets, c.Pods},
		Relevant: dependentsOf[*corev1.Pod]("StatefulSet"),
		Pending: func(t string) bool {
			for _, obj := range c.StatefulSets.InTenant(t) {
				if unsettled(obj.(*appsv1.StatefulSet)) {
					return true
				}
			}
			return false
		},
		// Pods waiting out minReadySeconds come back from the clock.
		Keep: func(t string) bool {
			for _, obj := range c.StatefulSets.InTenant(t) {
				set := obj.(*appsv1.StatefulSet)
				if set.Spec.MinReadySeconds > 0 && set.Status.ReadyReplicas > set.Status.AvailableReplicas {
					return true
				}
			}
			return false
		},
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			apps, core := env.Informers.Apps().V1(), env.Informers.Core().V1()
			sc := statefulset.NewStatefulSetController(ctx, core.Pods(), apps.StatefulSets(), core.PersistentVolumeClaims(), apps.ControllerRevisions(), env.Client)
			return func(ctx context.Context) { sc.Run(ctx, 1) }, nil
		},
	}
}
