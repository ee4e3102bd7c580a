// Package podgc runs upstream's pod garbage collector per tenant, as an
// activation Spec: a tenant's pods bound to a node the management plane no
// longer has, its unscheduled pods being deleted, and its terminated pods
// beyond the threshold (counted per tenant) are deleted.
package podgc

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/pkg/controller/podgc"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
	"github.com/kplex/kplex/tenant"
)

// Name names the controller.
const Name = "podgc"

// TerminatedPodThreshold is kube-controller-manager's
// --terminated-pod-gc-threshold, here per tenant.
const TerminatedPodThreshold = 12500

// byNode indexes every tenant's pods by the node they are bound to: node
// names are the management plane's, the same in every tenant.
const byNode = "kplex-node"

// Caches are the cross-tenant caches the collector reads.
type Caches struct {
	Pods *crosstenant.Cache
	// Nodes are root's.
	Nodes *crosstenant.Cache
}

func terminated(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// Spec is upstream's pod GC per tenant. Root's node deletions wake the
// tenants with pods on that node.
func Spec(c Caches) (activation.Spec, error) {
	if err := c.Pods.AddIndexers(cache.Indexers{
		byNode: func(obj any) ([]string, error) {
			if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
				return []string{p.Spec.NodeName}, nil
			}
			return nil, nil
		},
	}); err != nil {
		return activation.Spec{}, err
	}
	// work tells whether p is the collector's to delete, now or once its
	// quarantine (upstream's 40 s) has passed.
	work := func(p *corev1.Pod) bool {
		if p.Spec.NodeName == "" {
			return p.DeletionTimestamp != nil
		}
		return c.Nodes.Get(tenant.Root, "", p.Spec.NodeName) == nil
	}
	anyWork := func(t string) bool {
		n := 0
		for _, obj := range c.Pods.InTenant(t) {
			p := obj.(*corev1.Pod)
			if work(p) {
				return true
			}
			if terminated(p) {
				n++
			}
		}
		return n > TerminatedPodThreshold
	}
	return activation.Spec{
		Name:  Name,
		Watch: []*crosstenant.Cache{c.Pods},
		Relevant: func(t string, _, newObj any) bool {
			p, ok := newObj.(*corev1.Pod)
			if !ok {
				return false
			}
			if work(p) {
				return true
			}
			return terminated(p) && len(c.Pods.InTenant(t)) > TerminatedPodThreshold
		},
		Fanout: []activation.Fanout{{
			Cache: c.Nodes,
			Tenants: func(oldObj, newObj any) []string {
				n, ok := crosstenant.Unwrap(oldObj).(*corev1.Node)
				if !ok || newObj != nil {
					return nil // only a node that went
				}
				seen := map[string]bool{}
				var out []string
				pods, _ := c.Pods.ByIndex(byNode, n.Name)
				for _, obj := range pods {
					if t := crosstenant.TenantOf(obj.(*corev1.Pod)); !seen[t] {
						seen[t] = true
						out = append(out, t)
					}
				}
				return out
			},
		}},
		RootNodes: true,
		Pending:   anyWork,
		Keep:      anyWork,
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			core := env.Informers.Core().V1()
			gc := podgc.NewPodGC(ctx, env.Client, core.Pods(), core.Nodes(), TerminatedPodThreshold)
			return func(ctx context.Context) { gc.Run(ctx) }, nil
		},
	}, nil
}
