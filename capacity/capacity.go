// Package capacity says, per node pool and per tenant, what is
// allocatable, requested, within quota and waiting: the figures GPU
// cluster operators watch. Compute derives them from the management
// plane's nodes, pools and quotas and every tenant's pods; the node pools
// controller writes pool and quota status from them and exports them as
// Prometheus metrics, and `kplex top` and `kplex dashboard` show them.
package capacity

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/pools"
)

// GPU is the resource GPU figures are about.
const GPU corev1.ResourceName = "nvidia.com/gpu"

// NoPool names, in a report, the nodes in no pool (every tenant's).
const NoPool = ""

// Report is the capacity of the fleet at one moment.
type Report struct {
	Pools       []Pool
	TenantPools []TenantPool
	Pending     []Pending
}

// Pool is one node pool (or the nodes in none).
type Pool struct {
	Name    string
	Mode    schedulingv1alpha1.PoolMode
	Tenants []string
	// Nodes are the pool's nodes; ReadyNodes those whose Ready is True.
	Nodes, ReadyNodes int
	// Capacity and Allocatable sum the nodes'; a GPU a device plugin marks
	// unhealthy is in capacity, not in allocatable.
	Capacity, Allocatable corev1.ResourceList
	// Requested sums the requests of the pods bound to its nodes.
	Requested corev1.ResourceList
	// Limits are the pool's spec.limits.
	Limits corev1.ResourceList
	// Sandbox is the pool's spec.sandbox; SandboxedNodes counts its nodes
	// that have the runtime handler the sandbox needs (every node when it
	// names none).
	Sandbox        schedulingv1alpha1.Sandbox
	SandboxedNodes int
}

// UnhealthyGPUs are the pool's GPUs in capacity but not allocatable.
func (p Pool) UnhealthyGPUs() int64 {
	c, a := p.Capacity[GPU], p.Allocatable[GPU]
	return max(0, c.Value()-a.Value())
}

// TenantPool is one tenant's use of one pool, and its quota there.
type TenantPool struct {
	Tenant, Pool string
	// Pods bound to the pool's nodes, not finished; Requested their
	// requests.
	Pods      int
	Requested corev1.ResourceList
	// Nominal and BorrowingLimit are the tenant's TenantQuota for the
	// pool (empty without one); Borrowed is what it uses beyond nominal.
	Nominal, BorrowingLimit, Borrowed corev1.ResourceList
}

// Pending counts one tenant's pods waiting to be scheduled, by reason.
type Pending struct {
	Tenant, Reason string
	Pods           int
	// Requested sums what they ask for.
	Requested corev1.ResourceList
}

// Reasons a pod waits, from its PodScheduled condition: a small, fixed
// set, so that they can label metrics.
const (
	ReasonQuota         = "QuotaExhausted"
	ReasonFenced        = "PoolNotAllowed"
	ReasonInsufficient  = "InsufficientResources"
	ReasonGated         = "SchedulingGated"
	ReasonSandbox       = "SandboxUnavailable"
	ReasonPodSecurity   = "PodSecurity"
	ReasonUnschedulable = "Unschedulable"
	ReasonNotTried      = "NotYetScheduled"
)

// PendingReason says why a pod with no node waits.
func PendingReason(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type != corev1.PodScheduled || c.Status != corev1.ConditionFalse {
			continue
		}
		switch {
		case c.Reason == corev1.PodReasonSchedulingGated:
			return ReasonGated
		case strings.Contains(c.Message, "tenant quota"), strings.Contains(c.Message, "pool limit"):
			return ReasonQuota
		case strings.Contains(c.Message, "pool this tenant may not use"):
			return ReasonFenced
		case strings.Contains(c.Message, "sandbox"):
			return ReasonSandbox
		case strings.Contains(c.Message, "requires PodSecurity"):
			return ReasonPodSecurity
		case strings.Contains(c.Message, "Insufficient"):
			return ReasonInsufficient
		}
		return ReasonUnschedulable
	}
	return ReasonNotTried
}

// Compute makes the report. Pods carry their tenant (crosstenant.TenantOf);
// finished pods are ignored. A pod counts in the pool of the node it is
// on, never in the one its annotation names, which its tenant can write.
func Compute(nodes []*corev1.Node, pods []*corev1.Pod, allPools []*schedulingv1alpha1.NodePool, quotas []*schedulingv1alpha1.TenantQuota) *Report {
	byPool := map[string]*Pool{}
	pool := func(name string) *Pool {
		p := byPool[name]
		if p == nil {
			p = &Pool{Name: name, Capacity: corev1.ResourceList{}, Allocatable: corev1.ResourceList{}, Requested: corev1.ResourceList{}}
			byPool[name] = p
		}
		return p
	}
	handlers := map[string]string{}
	for _, np := range allPools {
		p := pool(np.Name)
		p.Mode, p.Tenants, p.Limits, p.Sandbox = np.Spec.Mode, np.Spec.Tenants, np.Spec.Limits, np.Spec.Sandbox
		handlers[np.Name] = pools.SandboxHandler(np)
	}
	nodePool := map[string]string{}
	for _, n := range nodes {
		name := pools.PoolOf(n.Labels, allPools)
		nodePool[n.Name] = name
		p := pool(name)
		p.Nodes++
		if pools.HasRuntimeHandler(n, handlers[name]) {
			p.SandboxedNodes++
		}
		if ready(n) {
			p.ReadyNodes++
		}
		add(p.Capacity, n.Status.Capacity)
		add(p.Allocatable, n.Status.Allocatable)
	}
	type key struct{ tenant, pool string }
	used := map[key]*TenantPool{}
	pending := map[key]*Pending{}
	for _, pod := range pods {
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		tenantName := crosstenant.TenantOf(pod)
		requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
		if pod.Spec.NodeName == "" {
			k := key{tenantName, PendingReason(pod)}
			if pending[k] == nil {
				pending[k] = &Pending{Tenant: tenantName, Reason: k.pool, Requested: corev1.ResourceList{}}
			}
			pending[k].Pods++
			add(pending[k].Requested, requests)
			continue
		}
		name, ok := nodePool[pod.Spec.NodeName]
		if !ok {
			continue // its node is gone
		}
		add(pool(name).Requested, requests)
		k := key{tenantName, name}
		if used[k] == nil {
			used[k] = &TenantPool{Tenant: tenantName, Pool: name, Requested: corev1.ResourceList{}}
		}
		used[k].Pods++
		add(used[k].Requested, requests)
	}
	for _, q := range quotas {
		for _, pq := range q.Spec.Pools {
			k := key{q.Name, pq.Name}
			tp := used[k]
			if tp == nil {
				tp = &TenantPool{Tenant: q.Name, Pool: pq.Name, Requested: corev1.ResourceList{}}
				used[k] = tp
			}
			tp.Nominal, tp.BorrowingLimit, tp.Borrowed = corev1.ResourceList{}, corev1.ResourceList{}, corev1.ResourceList{}
			for _, rq := range pq.Resources {
				tp.Nominal[rq.Name] = rq.NominalQuota
				if rq.BorrowingLimit != nil {
					tp.BorrowingLimit[rq.Name] = *rq.BorrowingLimit
				}
				borrowed := *resource.NewQuantity(0, rq.NominalQuota.Format)
				if have := tp.Requested[rq.Name]; have.Cmp(rq.NominalQuota) > 0 {
					borrowed = have.DeepCopy()
					borrowed.Sub(rq.NominalQuota)
				}
				tp.Borrowed[rq.Name] = borrowed
			}
		}
	}
	r := &Report{}
	for _, p := range byPool {
		r.Pools = append(r.Pools, *p)
	}
	for _, tp := range used {
		r.TenantPools = append(r.TenantPools, *tp)
	}
	for _, p := range pending {
		r.Pending = append(r.Pending, *p)
	}
	sort.Slice(r.Pools, func(i, j int) bool { return r.Pools[i].Name < r.Pools[j].Name })
	sort.Slice(r.TenantPools, func(i, j int) bool {
		a, b := r.TenantPools[i], r.TenantPools[j]
		return a.Tenant < b.Tenant || (a.Tenant == b.Tenant && a.Pool < b.Pool)
	})
	sort.Slice(r.Pending, func(i, j int) bool {
		a, b := r.Pending[i], r.Pending[j]
		return a.Tenant < b.Tenant || (a.Tenant == b.Tenant && a.Reason < b.Reason)
	})
	return r
}

// Pool returns the named pool of the report, or nil.
func (r *Report) Pool(name string) *Pool {
	for i := range r.Pools {
		if r.Pools[i].Name == name {
			return &r.Pools[i]
		}
	}
	return nil
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func add(into, l corev1.ResourceList) {
	for name, q := range l {
		sum := into[name]
		sum.Add(q)
		into[name] = sum
	}
}
