package top

import (
	"cmp"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/kplex/kplex/capacity"
)

// Pool is one node pool (or the nodes in none) as `kplex top pools` and
// the dashboard show it.
type Pool struct {
	// Name is the pool's; "" is the nodes in no pool (every tenant's).
	Name    string   `json:"name"`
	Mode    string   `json:"mode,omitempty"`
	Tenants []string `json:"tenants,omitempty"`
	// Nodes are the pool's nodes; ReadyNodes those whose Ready is True.
	Nodes      int `json:"nodes"`
	ReadyNodes int `json:"readyNodes"`
	// Sandbox is the runtime the pool requires (gvisor, none, or empty:
	// gvisor on shared nodes that have it); SandboxedNodes counts the
	// nodes that have it.
	Sandbox        string `json:"sandbox,omitempty"`
	SandboxedNodes int    `json:"sandboxedNodes"`
	// GPUCapacity counts every GPU of the pool's nodes; GPUAllocatable
	// those that may be handed out (unhealthy ones are not); GPURequested
	// what the pods bound there request; GPUUnhealthy is capacity less
	// allocatable.
	GPUCapacity    int64 `json:"gpuCapacity"`
	GPUAllocatable int64 `json:"gpuAllocatable"`
	GPURequested   int64 `json:"gpuRequested"`
	GPUUnhealthy   int64 `json:"gpuUnhealthy"`
	// GPULimit is the pool's spec.limits for GPUs; absent without one.
	GPULimit               *int64 `json:"gpuLimit,omitempty"`
	CPUAllocatableMillis   int64  `json:"cpuAllocatableMillis"`
	CPURequestedMillis     int64  `json:"cpuRequestedMillis"`
	MemoryAllocatableBytes int64  `json:"memoryAllocatableBytes"`
	MemoryRequestedBytes   int64  `json:"memoryRequestedBytes"`
}

// Tenant is one tenant's use of the pools and its waiting pods, as
// `kplex top tenants` and the dashboard show it. Its totals sum Pools.
type Tenant struct {
	Name            string `json:"name"`
	Pods            int    `json:"pods"`
	GPUUsed         int64  `json:"gpuUsed"`
	CPUUsedMillis   int64  `json:"cpuUsedMillis"`
	MemoryUsedBytes int64  `json:"memoryUsedBytes"`
	// PendingPods sums Pending.
	PendingPods int          `json:"pendingPods"`
	Pending     []Pending    `json:"pending"`
	Pools       []TenantPool `json:"pools"`
}

// TenantPool is one tenant's use of one pool, and its quota there.
type TenantPool struct {
	Pool string `json:"pool"`
	// Pods are the tenant's pods bound to the pool's nodes, not finished;
	// the Used figures sum their requests.
	Pods            int   `json:"pods"`
	GPUUsed         int64 `json:"gpuUsed"`
	CPUUsedMillis   int64 `json:"cpuUsedMillis"`
	MemoryUsedBytes int64 `json:"memoryUsedBytes"`
	// GPUNominal is the tenant's TenantQuota for GPUs in the pool, absent
	// when it has none; GPUBorrowingLimit is how much more it may borrow,
	// absent when the quota sets no bound (or there is no quota); and
	// GPUBorrowed what it uses beyond nominal.
	GPUNominal        *int64 `json:"gpuNominal,omitempty"`
	GPUBorrowingLimit *int64 `json:"gpuBorrowingLimit,omitempty"`
	GPUBorrowed       int64  `json:"gpuBorrowed"`
}

// Pending is a tenant's pods waiting to be scheduled for one reason
// (capacity.PendingReason), and what they ask for.
type Pending struct {
	Reason             string `json:"reason"`
	Pods               int    `json:"pods"`
	GPURequested       int64  `json:"gpuRequested"`
	CPURequestedMillis int64  `json:"cpuRequestedMillis"`
}

// Sort is the order of rows: by GPUs or CPU (most first) or by name.
type Sort string

// The orders of --sort-by.
const (
	SortName Sort = "name"
	SortGPU  Sort = "gpu"
	SortCPU  Sort = "cpu"
)

// ParseSort reads a --sort-by value; "" is SortName.
func ParseSort(s string) (Sort, error) {
	switch Sort(s) {
	case "", SortName:
		return SortName, nil
	case SortGPU, SortCPU:
		return Sort(s), nil
	}
	return "", fmt.Errorf("--sort-by %q is not supported: use gpu, cpu or name", s)
}

// Pools returns the report's pools, ordered by. The nodes in no pool come
// last among equals.
func Pools(r *capacity.Report, by Sort) []Pool {
	out := make([]Pool, 0, len(r.Pools))
	for _, p := range r.Pools {
		row := Pool{
			Name: p.Name, Mode: string(p.Mode), Tenants: p.Tenants,
			Nodes: p.Nodes, ReadyNodes: p.ReadyNodes,
			Sandbox: string(p.Sandbox), SandboxedNodes: p.SandboxedNodes,
			GPUCapacity:            count(p.Capacity, capacity.GPU),
			GPUAllocatable:         count(p.Allocatable, capacity.GPU),
			GPURequested:           count(p.Requested, capacity.GPU),
			GPUUnhealthy:           p.UnhealthyGPUs(),
			GPULimit:               optional(p.Limits, capacity.GPU),
			CPUAllocatableMillis:   millis(p.Allocatable, corev1.ResourceCPU),
			CPURequestedMillis:     millis(p.Requested, corev1.ResourceCPU),
			MemoryAllocatableBytes: count(p.Allocatable, corev1.ResourceMemory),
			MemoryRequestedBytes:   count(p.Requested, corev1.ResourceMemory),
		}
		out = append(out, row)
	}
	slices.SortStableFunc(out, func(a, b Pool) int {
		if c := by.most(a.GPURequested, b.GPURequested, a.CPURequestedMillis, b.CPURequestedMillis); c != 0 {
			return c
		}
		return comparePools(a.Name, b.Name)
	})
	return out
}

// Tenants returns every tenant with pods bound, pods waiting or a quota,
// ordered by (their totals); each tenant's pools are ordered by name.
func Tenants(r *capacity.Report, by Sort) []Tenant {
	byName := map[string]*Tenant{}
	tenant := func(name string) *Tenant {
		t := byName[name]
		if t == nil {
			t = &Tenant{Name: name, Pending: []Pending{}, Pools: []TenantPool{}}
			byName[name] = t
		}
		return t
	}
	for _, tp := range r.TenantPools {
		t := tenant(tp.Tenant)
		row := TenantPool{
			Pool: tp.Pool, Pods: tp.Pods,
			GPUUsed:         count(tp.Requested, capacity.GPU),
			CPUUsedMillis:   millis(tp.Requested, corev1.ResourceCPU),
			MemoryUsedBytes: count(tp.Requested, corev1.ResourceMemory),
			GPUNominal:      optional(tp.Nominal, capacity.GPU),
		}
		if row.GPUNominal != nil {
			row.GPUBorrowingLimit = optional(tp.BorrowingLimit, capacity.GPU)
			row.GPUBorrowed = count(tp.Borrowed, capacity.GPU)
		}
		t.Pools = append(t.Pools, row)
		t.Pods += row.Pods
		t.GPUUsed += row.GPUUsed
		t.CPUUsedMillis += row.CPUUsedMillis
		t.MemoryUsedBytes += row.MemoryUsedBytes
	}
	for _, p := range r.Pending {
		t := tenant(p.Tenant)
		t.Pending = append(t.Pending, Pending{
			Reason: p.Reason, Pods: p.Pods,
			GPURequested:       count(p.Requested, capacity.GPU),
			CPURequestedMillis: millis(p.Requested, corev1.ResourceCPU),
		})
		t.PendingPods += p.Pods
	}
	out := make([]Tenant, 0, len(byName))
	for _, t := range byName {
		slices.SortFunc(t.Pools, func(a, b TenantPool) int { return comparePools(a.Pool, b.Pool) })
		slices.SortFunc(t.Pending, func(a, b Pending) int { return cmp.Compare(a.Reason, b.Reason) })
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b Tenant) int {
		if c := by.most(a.GPUUsed, b.GPUUsed, a.CPUUsedMillis, b.CPUUsedMillis); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out
}

// comparePools orders pool names, the nodes in no pool last.
// most orders two rows by the GPUs or CPU by asks for, the larger first;
// 0 when by is SortName or the two are equal.
func (by Sort) most(aGPU, bGPU, aCPU, bCPU int64) int {
	switch by {
	case SortGPU:
		return cmp.Compare(bGPU, aGPU)
	case SortCPU:
		return cmp.Compare(bCPU, aCPU)
	}
	return 0
}

func comparePools(a, b string) int {
	if (a == capacity.NoPool) != (b == capacity.NoPool) {
		if a == capacity.NoPool {
			return 1
		}
		return -1
	}
	return cmp.Compare(a, b)
}

// count is a resource as a whole number (GPUs, bytes), rounded up.
func count(l corev1.ResourceList, name corev1.ResourceName) int64 {
	q, ok := l[name]
	if !ok {
		return 0
	}
	return q.Value()
}

func millis(l corev1.ResourceList, name corev1.ResourceName) int64 {
	q, ok := l[name]
	if !ok {
		return 0
	}
	return q.MilliValue()
}

// optional is count, or nil when l does not name the resource.
func optional(l corev1.ResourceList, name corev1.ResourceName) *int64 {
	q, ok := l[name]
	if !ok {
		return nil
	}
	v := q.Value()
	return &v
}
