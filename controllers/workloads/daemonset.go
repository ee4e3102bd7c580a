package workloads

import (
	"context"
	"maps"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/kubernetes/pkg/controller/daemon"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
)

// DaemonSetName names the controller.
const DaemonSetName = "daemonset"

// nodeChanged tells whether a change of a root node may change where
// daemon pods belong: a node added or gone, or its labels, taints or
// schedulability changed.
func nodeChanged(oldObj, newObj any) bool {
	old, ok1 := crosstenant.Unwrap(oldObj).(*corev1.Node)
	cur, ok2 := newObj.(*corev1.Node)
	if !ok1 || !ok2 {
		return ok1 || ok2
	}
	return !maps.Equal(old.Labels, cur.Labels) || len(old.Spec.Taints) != len(cur.Spec.Taints) ||
		old.Spec.Unschedulable != cur.Spec.Unschedulable
}

// DaemonSets is upstream's daemonset controller per tenant, over the
// management plane's nodes that the tenant's pods may use (its view's
// MayUseNode: nodes in no pool, and in pools that admit it). A node change
// wakes every tenant with DaemonSets.
func DaemonSets(c Caches, nodes *crosstenant.Cache) activation.Spec {
	return activation.Spec{
		Name:     DaemonSetName,
		Watch:    []*crosstenant.Cache{c.DaemonSets, c.Pods},
		Relevant: dependentsOf[*corev1.Pod]("DaemonSet"),
		Fanout: []activation.Fanout{{
			Cache: nodes,
			Tenants: func(oldObj, newObj any) []string {
				if !nodeChanged(oldObj, newObj) {
					return nil
				}
				return c.DaemonSets.ListIndexFuncValues(crosstenant.ByTenant)
			},
		}},
		Pending: func(t string) bool {
			for _, obj := range c.DaemonSets.InTenant(t) {
				ds := obj.(*appsv1.DaemonSet)
				if ds.Status.ObservedGeneration < ds.Generation || ds.Status.CurrentNumberScheduled != ds.Status.DesiredNumberScheduled {
					return true
				}
			}
			return false
		},
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			apps, core := env.Informers.Apps().V1(), env.Informers.Core().V1()
			dc, err := daemon.NewDaemonSetsController(ctx, apps.DaemonSets(), apps.ControllerRevisions(), core.Pods(), core.Nodes(), env.Client,
				flowcontrol.NewBackOff(time.Second, 15*time.Minute))
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) { dc.Run(ctx, 1) }, nil
		},
	}
}
