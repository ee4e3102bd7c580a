package tenancy

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/kplex/kplex/client/pools"
	"github.com/kplex/kplex/scheduler/usage"
)

var _ fwk.PostFilterPlugin = &Plugin{}

// PostFilter reclaims borrowed quota: when a tenant's pod fits its nominal
// quota in a pool but no node there has room, pods of tenants that borrow
// in that pool (use more than their nominal quota of the resource) are
// evicted from one node, newest first and no more than they borrow, so
// that the lender gets its quota back. Upstream's preemption, which runs
// after, stays within a tenant.
func (p *Plugin) PostFilter(ctx context.Context, state fwk.CycleState, pod *corev1.Pod, _ fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	c := cycleOf(state, pod)
	nodes, err := p.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	type plan struct {
		node    string
		pool    string
		victims []*corev1.Pod
	}
	var best *plan
	budgets := map[string]map[usage.Key]usage.Amounts{} // per pool: what each borrower may lose
	for _, ni := range nodes {
		node := ni.Node()
		if node == nil {
			continue
		}
		pool := p.dir.PoolOf(node.Labels)
		np := p.dir.Pool(pool)
		if np == nil || !pools.Admits(np, c.tenant) || !p.withinNominal(c.tenant, pool, c.requests) {
			continue
		}
		if _, ok := budgets[pool]; !ok {
			budgets[pool] = p.borrowed(pool, c.tenant)
		}
		if len(budgets[pool]) == 0 {
			continue
		}
		victims, ok := p.victimsOn(ni, pool, c.requests, cloneBudgets(budgets[pool]))
		if ok && (best == nil || len(victims) < len(best.victims)) {
			best = &plan{node: node.Name, pool: pool, victims: victims}
		}
	}
	if best == nil {
		return nil, fwk.NewStatus(fwk.Unschedulable, "no borrowed quota to reclaim")
	}
	logger := klog.FromContext(ctx)
	for _, v := range best.victims {
		// The event goes to the victim's tenant: it names no other.
		p.handle.EventRecorder().Eventf(v, nil, corev1.EventTypeNormal, "Preempted", "Reclaiming",
			"Evicted: quota borrowed in pool %s is reclaimed by a tenant with nominal quota there", best.pool)
		err := p.handle.ClientSet().CoreV1().Pods(v.Namespace).Delete(ctx, v.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &v.UID}})
		if err != nil {
			return nil, fwk.AsStatus(fmt.Errorf("reclaiming quota from %s/%s: %w", v.Namespace, v.Name, err))
		}
		logger.V(2).Info("Reclaimed borrowed quota", "victim", klog.KObj(v), "for", klog.KObj(pod), "node", best.node, "pool", best.pool)
	}
	return &fwk.PostFilterResult{NominatingInfo: &fwk.NominatingInfo{NominatedNodeName: best.node, NominatingMode: fwk.ModeOverride}}, fwk.NewStatus(fwk.Success)
}

// withinNominal reports whether the tenant has a nominal quota in pool for
// some resource the pod requests, and the pod fits within it for all such.
func (p *Plugin) withinNominal(tenantName, pool string, req usage.Amounts) bool {
	q := p.dir.Quota(tenantName)
	bounded := false
	for name, need := range req {
		rq := resourceQuota(q, pool, name)
		if rq == nil {
			continue
		}
		bounded = true
		if p.tracker.Used(usage.Key{Tenant: tenantName, Pool: pool}, name)+need > rq.NominalQuota.MilliValue() {
			return false
		}
	}
	return bounded
}

// borrowed is, for each other tenant with quota in pool, how much of each
// resource it uses beyond its nominal quota there.
func (p *Plugin) borrowed(pool, lender string) map[usage.Key]usage.Amounts {
	out := map[usage.Key]usage.Amounts{}
	for _, q := range p.dir.Quotas() {
		if q.Name == lender {
			continue
		}
		k := usage.Key{Tenant: q.Name, Pool: pool}
		for _, pq := range q.Spec.Pools {
			if pq.Name != pool {
				continue
			}
			for _, rq := range pq.Resources {
				if over := p.tracker.Used(k, rq.Name) - rq.NominalQuota.MilliValue(); over > 0 {
					if out[k] == nil {
						out[k] = usage.Amounts{}
					}
					out[k][rq.Name] = over
				}
			}
		}
	}
	return out
}

func cloneBudgets(in map[usage.Key]usage.Amounts) map[usage.Key]usage.Amounts {
	out := make(map[usage.Key]usage.Amounts, len(in))
	for k, a := range in {
		c := make(usage.Amounts, len(a))
		for n, v := range a {
			c[n] = v
		}
		out[k] = c
	}
	return out
}

// victimsOn picks borrowers' pods on one node, newest first, each within
// what its tenant borrows, until the pod's requests fit.
func (p *Plugin) victimsOn(ni fwk.NodeInfo, pool string, req usage.Amounts, budget map[usage.Key]usage.Amounts) ([]*corev1.Pod, bool) {
	free := freeOn(ni)
	// Pods already on their way out (earlier victims) free their room:
	// no second victim for it.
	for _, pi := range ni.GetPods() {
		if v := pi.GetPod(); v.DeletionTimestamp != nil {
			for name, amount := range requests(v) {
				free[name] += amount
			}
		}
	}
	fits := func() bool {
		for name, need := range req {
			if free[name] < need {
				return false
			}
		}
		return true
	}
	if fits() {
		return nil, false // room already, or soon: nothing to reclaim
	}
	var candidates []*corev1.Pod
	for _, pi := range ni.GetPods() {
		v := pi.GetPod()
		if _, ok := budget[usage.Key{Tenant: TenantOf(v.Namespace), Pool: pool}]; ok && v.DeletionTimestamp == nil {
			candidates = append(candidates, v)
		}
	}
	slices.SortFunc(candidates, func(a, b *corev1.Pod) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
	var victims []*corev1.Pod
	for _, v := range candidates {
		b := budget[usage.Key{Tenant: TenantOf(v.Namespace), Pool: pool}]
		vr := requests(v)
		within := true
		for name, amount := range vr {
			if _, bounded := b[name]; bounded && amount > b[name] {
				within = false
			}
		}
		helps := false
		for name := range req {
			if vr[name] > 0 && free[name] < req[name] {
				helps = true
			}
		}
		if !within || !helps {
			continue
		}
		for name, amount := range vr {
			if _, bounded := b[name]; bounded {
				b[name] -= amount
			}
			free[name] += amount
		}
		victims = append(victims, v)
		if fits() {
			return victims, true
		}
	}
	return nil, false
}

// freeOn is what a node has left, in milli-units.
func freeOn(ni fwk.NodeInfo) usage.Amounts {
	alloc, used := ni.GetAllocatable(), ni.GetRequested()
	free := usage.Amounts{
		corev1.ResourceCPU:    alloc.GetMilliCPU() - used.GetMilliCPU(),
		corev1.ResourceMemory: (alloc.GetMemory() - used.GetMemory()) * 1000,
	}
	for name, v := range alloc.GetScalarResources() {
		free[name] = (v - used.GetScalarResources()[name]) * 1000
	}
	return free
}
