package tenancy

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
)

// directory holds the management plane's NodePools and TenantQuotas,
// decoded once on arrival.
type directory struct {
	pools, quotas cache.SharedIndexInformer
}

func newDirectory(client dynamic.Interface) (*directory, error) {
	d := &directory{
		pools:  typedInformer[schedulingv1alpha1.NodePool](client, schedulingv1alpha1.NodePoolsResource),
		quotas: typedInformer[schedulingv1alpha1.TenantQuota](client, schedulingv1alpha1.TenantQuotasResource),
	}
	return d, nil
}

func (d *directory) run(ctx context.Context) {
	go d.pools.RunWithContext(ctx)
	go d.quotas.RunWithContext(ctx)
}

func (d *directory) synced() bool { return d.pools.HasSynced() && d.quotas.HasSynced() }

// typedInformer watches a management-plane resource and keeps its objects
// as T.
func typedInformer[T any](client dynamic.Interface, gvr schema.GroupVersionResource) cache.SharedIndexInformer {
	res := client.Resource(gvr)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return res.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return res.Watch(ctx, opts)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
	_ = inf.SetTransform(func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		out := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
			return nil, fmt.Errorf("decoding %s %s: %w", gvr.Resource, u.GetName(), err)
		}
		return out, nil
	})
	return inf
}

func (d *directory) pool(name string) *schedulingv1alpha1.NodePool {
	obj, ok, _ := d.pools.GetStore().GetByKey(name)
	if !ok {
		return nil
	}
	p, _ := obj.(*schedulingv1alpha1.NodePool)
	return p
}

func (d *directory) quota(tenant string) *schedulingv1alpha1.TenantQuota {
	obj, ok, _ := d.quotas.GetStore().GetByKey(tenant)
	if !ok {
		return nil
	}
	q, _ := obj.(*schedulingv1alpha1.TenantQuota)
	return q
}

func (d *directory) allQuotas() []*schedulingv1alpha1.TenantQuota {
	var out []*schedulingv1alpha1.TenantQuota
	for _, obj := range d.quotas.GetStore().List() {
		if q, ok := obj.(*schedulingv1alpha1.TenantQuota); ok {
			out = append(out, q)
		}
	}
	return out
}

// poolOf names a node's pool: its kplex.io/pool label, else the first
// pool by name whose nodeSelector its labels match, else "" (no pool).
func (d *directory) poolOf(node *corev1.Node) string {
	if name, ok := node.Labels[schedulingv1alpha1.PoolLabel]; ok {
		return name
	}
	var match []string
	for _, obj := range d.pools.GetStore().List() {
		p, ok := obj.(*schedulingv1alpha1.NodePool)
		if ok && len(p.Spec.NodeSelector) > 0 && labels.SelectorFromSet(p.Spec.NodeSelector).Matches(labels.Set(node.Labels)) {
			match = append(match, p.Name)
		}
	}
	if len(match) == 0 {
		return ""
	}
	return slices.Min(match)
}

// admits reports whether a pool takes the tenant's pods. Root, the
// management plane, is the operator's and may use every pool.
func admits(p *schedulingv1alpha1.NodePool, tenant string) bool {
	if tenant == rootTenant {
		return true
	}
	switch p.Spec.Mode {
	case schedulingv1alpha1.Dedicated:
		return len(p.Spec.Tenants) == 1 && p.Spec.Tenants[0] == tenant
	case schedulingv1alpha1.Shared:
		return len(p.Spec.Tenants) == 0 || slices.Contains(p.Spec.Tenants, tenant)
	}
	return false
}

// resourceQuota is the tenant's quota for resource in pool, if it has one.
func resourceQuota(q *schedulingv1alpha1.TenantQuota, pool string, resource corev1.ResourceName) *schedulingv1alpha1.ResourceQuota {
	if q == nil {
		return nil
	}
	for i := range q.Spec.Pools {
		if q.Spec.Pools[i].Name != pool {
			continue
		}
		for j := range q.Spec.Pools[i].Resources {
			if q.Spec.Pools[i].Resources[j].Name == resource {
				return &q.Spec.Pools[i].Resources[j]
			}
		}
	}
	return nil
}

// weight is the tenant's fair-sharing weight, 1 unless its quota says.
func weight(q *schedulingv1alpha1.TenantQuota) float64 {
	if q == nil || q.Spec.FairSharing == nil || q.Spec.FairSharing.Weight == nil {
		return 1
	}
	return q.Spec.FairSharing.Weight.AsApproximateFloat64()
}
