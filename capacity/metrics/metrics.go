// Package metrics exports capacity reports (package capacity) as
// Prometheus metrics, shaped as kube-state-metrics shapes a cluster's:
// one gauge per figure, labelled by pool, tenant and resource.
//
// Per pool (bounded by the fleet's pools and the resources its nodes,
// pool limits and quotas name):
//
//	kplex_nodepool_info{pool,mode}                    1
//	kplex_nodepool_nodes{pool}                        nodes
//	kplex_nodepool_ready_nodes{pool}                  nodes whose Ready is True
//	kplex_nodepool_capacity{pool,resource}            sum of the nodes' capacity
//	kplex_nodepool_allocatable{pool,resource}         sum of the nodes' allocatable
//	kplex_nodepool_requested{pool,resource}           requests of the pods bound there
//	kplex_nodepool_limit{pool,resource}               the pool's spec.limits
//	kplex_nodepool_unhealthy_gpus{pool}               GPUs in capacity, not allocatable
//
// Per tenant and pool, for the top K tenants and tenant="_other":
//
//	kplex_tenant_pool_pods{tenant,pool}               pods bound there, not finished
//	kplex_tenant_pool_requested{tenant,pool,resource} their requests
//	kplex_tenant_quota_nominal{tenant,pool,resource}  TenantQuota nominal quota
//	kplex_tenant_quota_borrowing_limit{tenant,pool,resource}
//	kplex_tenant_quota_borrowed{tenant,pool,resource} requested beyond nominal
//	kplex_tenant_pending_pods{tenant,reason}          pods waiting, by capacity's reasons
//
// Nodes in no pool are pool="none". Quantities are in their base unit:
// cores for cpu, bytes for memory and storage, devices otherwise.
//
// The top K tenants rank by GPUs requested, then CPU requested, then
// pending pods, then GPU nominal quota; a TenantQuota does not by itself
// earn series: the bound holds whatever the quotas. See
// docs/notes/metrics.md.
package metrics

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/kplex/kplex/capacity"
	"github.com/kplex/kplex/metrics/bounded"
)

var (
	poolInfo        = desc("kplex_nodepool_info", "A node pool, with its mode (dedicated or shared); always 1.", "pool", "mode")
	poolNodes       = desc("kplex_nodepool_nodes", "Nodes in the pool.", "pool")
	poolReady       = desc("kplex_nodepool_ready_nodes", "Nodes in the pool whose Ready condition is True.", "pool")
	poolCapacity    = desc("kplex_nodepool_capacity", "Sum of the capacity of the pool's nodes, by resource (cores, bytes or devices).", "pool", "resource")
	poolAllocatable = desc("kplex_nodepool_allocatable", "Sum of the allocatable resources of the pool's nodes (unhealthy GPUs excluded).", "pool", "resource")
	poolRequested   = desc("kplex_nodepool_requested", "Sum of the requests of the unfinished pods bound to the pool's nodes.", "pool", "resource")
	poolLimit       = desc("kplex_nodepool_limit", "The pool's spec.limits: what all tenants together may request there.", "pool", "resource")
	poolUnhealthy   = desc("kplex_nodepool_unhealthy_gpus", "GPUs of the pool's nodes in capacity but not allocatable (marked unhealthy by the device plugin).", "pool")

	tenantPods      = desc("kplex_tenant_pool_pods", "A tenant's unfinished pods bound to the pool's nodes (top tenants, the rest as tenant=\"_other\").", "tenant", "pool")
	tenantRequested = desc("kplex_tenant_pool_requested", "What a tenant's pods bound to the pool's nodes request.", "tenant", "pool", "resource")
	quotaNominal    = desc("kplex_tenant_quota_nominal", "A tenant's TenantQuota nominal quota in the pool.", "tenant", "pool", "resource")
	quotaBorrowing  = desc("kplex_tenant_quota_borrowing_limit", "A tenant's TenantQuota borrowing limit in the pool (absent: unlimited).", "tenant", "pool", "resource")
	quotaBorrowed   = desc("kplex_tenant_quota_borrowed", "What a tenant's pods in the pool request beyond its nominal quota.", "tenant", "pool", "resource")
	tenantPending   = desc("kplex_tenant_pending_pods", "A tenant's pods waiting for a node, by reason (QuotaExhausted, PoolNotAllowed, InsufficientResources, SchedulingGated, Unschedulable, NotYetScheduled).", "tenant", "reason")

	descs = []*prometheus.Desc{poolInfo, poolNodes, poolReady, poolCapacity, poolAllocatable, poolRequested, poolLimit, poolUnhealthy,
		tenantPods, tenantRequested, quotaNominal, quotaBorrowing, quotaBorrowed, tenantPending}
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Collector is a prometheus.Collector of the last reports it was given.
// Each source (a controller) sets its own; their figures add up, so that
// two fleets in one process (tests) export their sum rather than clash.
type Collector struct {
	mu      sync.Mutex
	k       int
	reports map[any]*capacity.Report
}

var _ prometheus.Collector = &Collector{}

// New returns a collector that exports the topTenants first tenants
// (bounded.DefaultTopTenants if topTenants <= 0).
func New(topTenants int) *Collector {
	c := &Collector{reports: map[any]*capacity.Report{}}
	c.SetTopTenants(topTenants)
	return c
}

// SetTopTenants sets how many tenants get series of their own; k <= 0
// is bounded.DefaultTopTenants.
func (c *Collector) SetTopTenants(k int) {
	if k <= 0 {
		k = bounded.DefaultTopTenants
	}
	c.mu.Lock()
	c.k = k
	c.mu.Unlock()
}

// Set makes r the collector's report (its only source's).
func (c *Collector) Set(r *capacity.Report) { c.SetFrom(c, r) }

// SetFrom makes r the report of source; nil forgets the source.
func (c *Collector) SetFrom(source any, r *capacity.Report) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r == nil {
		delete(c.reports, source)
		return
	}
	c.reports[source] = r
}

// Forget drops source's report: it stopped (lost its lease, ended).
func (c *Collector) Forget(source any) { c.SetFrom(source, nil) }

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

// Collect sends the reports' figures, summed where sources overlap.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	reports := slices.Collect(maps.Values(c.reports))
	k := c.k
	c.mu.Unlock()
	a := &acc{points: map[*prometheus.Desc]map[string]*point{}}
	collect(a, reports, k)
	a.send(ch)
}

// resources are the resource names that label series: those the fleet's
// nodes, pools and quotas name, set by operators. A pod may request any
// made-up name; it does not make a series.
func resources(reports []*capacity.Report) map[corev1.ResourceName]bool {
	out := map[corev1.ResourceName]bool{}
	add := func(l corev1.ResourceList) {
		for name := range l {
			out[name] = true
		}
	}
	for _, r := range reports {
		for _, p := range r.Pools {
			add(p.Capacity)
			add(p.Allocatable)
			add(p.Limits)
		}
		for _, tp := range r.TenantPools {
			add(tp.Nominal)
			add(tp.BorrowingLimit)
		}
	}
	return out
}

// rank is what orders tenants for the top K.
type rank struct{ gpu, cpu, pending, nominalGPU float64 }

func (a rank) before(b rank) bool {
	switch {
	case a.gpu != b.gpu:
		return a.gpu > b.gpu
	case a.cpu != b.cpu:
		return a.cpu > b.cpu
	case a.pending != b.pending:
		return a.pending > b.pending
	}
	return a.nominalGPU > b.nominalGPU
}

func collect(a *acc, reports []*capacity.Report, k int) {
	known := resources(reports)
	ranks := map[string]rank{}
	for _, r := range reports {
		for _, tp := range r.TenantPools {
			rk := ranks[tp.Tenant]
			rk.gpu += value(tp.Requested, capacity.GPU)
			rk.cpu += value(tp.Requested, corev1.ResourceCPU)
			rk.nominalGPU += value(tp.Nominal, capacity.GPU)
			ranks[tp.Tenant] = rk
		}
		for _, p := range r.Pending {
			rk := ranks[p.Tenant]
			rk.pending += float64(p.Pods)
			ranks[p.Tenant] = rk
		}
	}
	top := bounded.Select(ranks, k, rank.before)
	tenantLabel := func(name string) string {
		if top[name] {
			return name
		}
		return bounded.Other
	}
	perResource := func(d *prometheus.Desc, l corev1.ResourceList, labels ...string) {
		for name, q := range l {
			if known[name] {
				a.add(d, q.AsApproximateFloat64(), append(labels, string(name))...)
			}
		}
	}
	for _, r := range reports {
		for _, p := range r.Pools {
			pool := bounded.PoolLabel(p.Name)
			a.set(poolInfo, 1, pool, string(p.Mode))
			a.add(poolNodes, float64(p.Nodes), pool)
			a.add(poolReady, float64(p.ReadyNodes), pool)
			a.add(poolUnhealthy, float64(p.UnhealthyGPUs()), pool)
			perResource(poolCapacity, p.Capacity, pool)
			perResource(poolAllocatable, p.Allocatable, pool)
			perResource(poolRequested, p.Requested, pool)
			perResource(poolLimit, p.Limits, pool)
		}
		for _, tp := range r.TenantPools {
			tenant, pool := tenantLabel(tp.Tenant), bounded.PoolLabel(tp.Pool)
			a.add(tenantPods, float64(tp.Pods), tenant, pool)
			perResource(tenantRequested, tp.Requested, tenant, pool)
			perResource(quotaNominal, tp.Nominal, tenant, pool)
			perResource(quotaBorrowing, tp.BorrowingLimit, tenant, pool)
			perResource(quotaBorrowed, tp.Borrowed, tenant, pool)
		}
		for _, p := range r.Pending {
			a.add(tenantPending, float64(p.Pods), tenantLabel(p.Tenant), p.Reason)
		}
	}
}

func value(l corev1.ResourceList, name corev1.ResourceName) float64 {
	q, ok := l[name]
	if !ok {
		return 0
	}
	return q.AsApproximateFloat64()
}

// acc sums gauge values by descriptor and label values.
type acc struct {
	points map[*prometheus.Desc]map[string]*point
}

type point struct {
	labels []string
	v      float64
}

func (a *acc) point(d *prometheus.Desc, labels []string) *point {
	byLabels := a.points[d]
	if byLabels == nil {
		byLabels = map[string]*point{}
		a.points[d] = byLabels
	}
	key := strings.Join(labels, "\xff")
	p := byLabels[key]
	if p == nil {
		p = &point{labels: slices.Clone(labels)}
		byLabels[key] = p
	}
	return p
}

func (a *acc) add(d *prometheus.Desc, v float64, labels ...string) { a.point(d, labels).v += v }

func (a *acc) set(d *prometheus.Desc, v float64, labels ...string) { a.point(d, labels).v = v }

func (a *acc) send(ch chan<- prometheus.Metric) {
	for d, byLabels := range a.points {
		for _, p := range byLabels {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, p.v, p.labels...)
		}
	}
}
