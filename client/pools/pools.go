// Package pools caches the management plane's NodePools and TenantQuotas
// (scheduling.kplex.io), decoded once on arrival, and answers the
// questions the scheduler and the apiserver both ask: which pool a node
// is in, and whether a pool admits a tenant.
package pools

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
	"github.com/kplex/kplex/tenant"
)

// Cache holds NodePools and TenantQuotas.
type Cache struct {
	pools, quotas cache.SharedIndexInformer
}

// New returns a Cache over client, which must address root. Run starts it.
func New(client dynamic.Interface) *Cache {
	return &Cache{
		pools:  typedInformer[schedulingv1alpha1.NodePool](client, schedulingv1alpha1.NodePoolsResource),
		quotas: typedInformer[schedulingv1alpha1.TenantQuota](client, schedulingv1alpha1.TenantQuotasResource),
	}
}

// NewPoolsOnly returns a Cache of the NodePools alone, for a reader that
// may not see the tenants' quotas (a node agent); it has no quotas.
func NewPoolsOnly(client dynamic.Interface) *Cache {
	return &Cache{pools: typedInformer[schedulingv1alpha1.NodePool](client, schedulingv1alpha1.NodePoolsResource)}
}

// Run fills the cache until ctx ends.
func (c *Cache) Run(ctx context.Context) {
	go c.pools.RunWithContext(ctx)
	if c.quotas != nil {
		go c.quotas.RunWithContext(ctx)
	}
}

// HasSynced reports whether the lists arrived.
func (c *Cache) HasSynced() bool {
	return c.pools.HasSynced() && (c.quotas == nil || c.quotas.HasSynced())
}

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

// Pool returns the named NodePool, or nil.
func (c *Cache) Pool(name string) *schedulingv1alpha1.NodePool {
	obj, ok, _ := c.pools.GetStore().GetByKey(name)
	if !ok {
		return nil
	}
	p, _ := obj.(*schedulingv1alpha1.NodePool)
	return p
}

// Pools returns every NodePool.
func (c *Cache) Pools() []*schedulingv1alpha1.NodePool {
	var out []*schedulingv1alpha1.NodePool
	for _, obj := range c.pools.GetStore().List() {
		if p, ok := obj.(*schedulingv1alpha1.NodePool); ok {
			out = append(out, p)
		}
	}
	return out
}

// Quota returns the tenant's TenantQuota, or nil.
func (c *Cache) Quota(tenantName string) *schedulingv1alpha1.TenantQuota {
	if c.quotas == nil {
		return nil
	}
	obj, ok, _ := c.quotas.GetStore().GetByKey(tenantName)
	if !ok {
		return nil
	}
	q, _ := obj.(*schedulingv1alpha1.TenantQuota)
	return q
}

// Quotas returns every TenantQuota.
func (c *Cache) Quotas() []*schedulingv1alpha1.TenantQuota {
	var out []*schedulingv1alpha1.TenantQuota
	if c.quotas == nil {
		return nil
	}
	for _, obj := range c.quotas.GetStore().List() {
		if q, ok := obj.(*schedulingv1alpha1.TenantQuota); ok {
			out = append(out, q)
		}
	}
	return out
}

// PoolOf names the pool of a node with these labels: its kplex.io/pool
// label, else the first pool by name whose nodeSelector they match, else
// "" (no pool).
func (c *Cache) PoolOf(nodeLabels map[string]string) string {
	if name, ok := nodeLabels[schedulingv1alpha1.PoolLabel]; ok {
		return name // the common case, without listing the pools
	}
	return PoolOf(nodeLabels, c.Pools())
}

// PoolOf is Cache.PoolOf over a list of pools.
func PoolOf(nodeLabels map[string]string, all []*schedulingv1alpha1.NodePool) string {
	if name, ok := nodeLabels[schedulingv1alpha1.PoolLabel]; ok {
		return name
	}
	var match []string
	for _, p := range all {
		if len(p.Spec.NodeSelector) > 0 && labels.SelectorFromSet(p.Spec.NodeSelector).Matches(labels.Set(nodeLabels)) {
			match = append(match, p.Name)
		}
	}
	if len(match) == 0 {
		return ""
	}
	return slices.Min(match)
}

// Admits reports whether a pool takes the tenant's pods. Root, the
// management plane, is the operator's and may use every pool.
func Admits(p *schedulingv1alpha1.NodePool, tenantName string) bool {
	if tenantName == tenant.Root {
		return true
	}
	switch p.Spec.Mode {
	case schedulingv1alpha1.Dedicated:
		return len(p.Spec.Tenants) == 1 && p.Spec.Tenants[0] == tenantName
	case schedulingv1alpha1.Shared:
		return len(p.Spec.Tenants) == 0 || slices.Contains(p.Spec.Tenants, tenantName)
	}
	return false
}

// MayUse reports whether the tenant's pods may run on a node with these
// labels: a node in no pool is everyone's; a node in a pool that does not
// exist (yet) is no one's but root's.
func (c *Cache) MayUse(tenantName string, nodeLabels map[string]string) bool {
	name := c.PoolOf(nodeLabels)
	return mayUse(tenantName, name, c.Pool(name))
}

// MayUse is Cache.MayUse over a list of pools.
func MayUse(tenantName string, nodeLabels map[string]string, all []*schedulingv1alpha1.NodePool) bool {
	name := PoolOf(nodeLabels, all)
	var pool *schedulingv1alpha1.NodePool
	if i := slices.IndexFunc(all, func(p *schedulingv1alpha1.NodePool) bool { return p.Name == name }); i >= 0 {
		pool = all[i]
	}
	return mayUse(tenantName, name, pool)
}

// mayUse decides for a node in the named pool (nil if it does not exist).
func mayUse(tenantName, name string, pool *schedulingv1alpha1.NodePool) bool {
	if name == "" || tenantName == tenant.Root {
		return true
	}
	return pool != nil && Admits(pool, tenantName)
}

// Decode converts a NodePool read through a dynamic client.
func Decode(u *unstructured.Unstructured) (*schedulingv1alpha1.NodePool, error) {
	p := &schedulingv1alpha1.NodePool{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, p); err != nil {
		return nil, fmt.Errorf("decoding NodePool %s: %w", u.GetName(), err)
	}
	return p, nil
}

// SandboxHandler is the CRI runtime handler a pool's sandbox runs pods
// under, "" when the pool names none.
func SandboxHandler(p *schedulingv1alpha1.NodePool) string {
	if p == nil {
		return ""
	}
	return schedulingv1alpha1.RuntimeHandlers[p.Spec.Sandbox]
}

// HasRuntimeHandler reports whether a node announces the runtime handler
// (Node.status.runtimeHandlers). The default handler, "", every node has.
func HasRuntimeHandler(n *corev1.Node, handler string) bool {
	if handler == "" {
		return true
	}
	return slices.ContainsFunc(n.Status.RuntimeHandlers, func(h corev1.NodeRuntimeHandler) bool { return h.Name == handler })
}

// RuntimeHandlerFor decides the CRI runtime handler a pod of tenantName
// runs under on node, in pool (nil for a node in no pool); requested is
// the handler of the pod's own RuntimeClass ("" for none).
//
// The pool decides first: a pool naming gvisor runs every pod under it, a
// node without it runs none of the pool's pods (err). A pool naming none
// lets the pod choose. A pool naming nothing sandboxes tenants' pods on
// shared nodes that have gVisor (a tenant sharing a kernel with other
// tenants is the threat), and lets pods choose elsewhere. Root's pods,
// the operator's, are sandboxed only where the pool says so.
func RuntimeHandlerFor(tenantName string, pool *schedulingv1alpha1.NodePool, node *corev1.Node, requested string) (string, error) {
	gvisor := schedulingv1alpha1.RuntimeHandlers[schedulingv1alpha1.SandboxGVisor]
	var sandbox schedulingv1alpha1.Sandbox
	if pool != nil {
		sandbox = pool.Spec.Sandbox
	}
	switch {
	case sandbox == schedulingv1alpha1.SandboxGVisor:
		if !HasRuntimeHandler(node, gvisor) {
			return "", fmt.Errorf("pool %s requires the gvisor sandbox and node %s lacks its runtime handler %q", pool.Name, node.Name, gvisor)
		}
		return gvisor, nil
	case sandbox == "" && tenantName != tenant.Root && (pool == nil || pool.Spec.Mode == schedulingv1alpha1.Shared) && HasRuntimeHandler(node, gvisor):
		return gvisor, nil
	}
	if !HasRuntimeHandler(node, requested) {
		return "", fmt.Errorf("node %s has no runtime handler %q (the pod's RuntimeClass)", node.Name, requested)
	}
	return requested, nil
}
