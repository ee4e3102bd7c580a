// Package usage keeps what each tenant's pods request in each pool, and
// what the nodes offer, for the scheduler's quota and fair-share checks.
// Amounts are in milli-units so that CPU, memory and devices add alike.
package usage

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Amounts are milli-units per resource.
type Amounts map[corev1.ResourceName]int64

// FromList converts a ResourceList to milli-units.
func FromList(l corev1.ResourceList) Amounts {
	a := make(Amounts, len(l))
	for name, q := range l {
		if v := q.MilliValue(); v != 0 {
			a[name] = v
		}
	}
	return a
}

func (a Amounts) add(b Amounts, sign int64) {
	for name, v := range b {
		if a[name] += sign * v; a[name] == 0 {
			delete(a, name)
		}
	}
}

// Key is one tenant's usage in one pool; Pool is "" for nodes in none.
type Key struct{ Tenant, Pool string }

type entry struct {
	key      Key
	requests Amounts
}

// Tracker sums pods' requests by tenant and pool, and nodes' allocatable.
type Tracker struct {
	mu       sync.RWMutex
	pods     map[types.UID]entry
	used     map[Key]Amounts
	byTenant map[string]Amounts
	byPool   map[string]Amounts
	nodes    map[string]Amounts
	capacity Amounts
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	return &Tracker{
		pods: map[types.UID]entry{}, used: map[Key]Amounts{}, byTenant: map[string]Amounts{},
		byPool: map[string]Amounts{}, nodes: map[string]Amounts{}, capacity: Amounts{},
	}
}

// SetPod counts a pod's requests against key, replacing what it counted
// before: an assumed pod seen bound, or a pod's pool learnt again, is
// counted once.
func (t *Tracker) SetPod(uid types.UID, key Key, requests Amounts) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(uid)
	t.pods[uid] = entry{key: key, requests: requests}
	addTo(t.used, key, requests, 1)
	addTo(t.byTenant, key.Tenant, requests, 1)
	addTo(t.byPool, key.Pool, requests, 1)
}

// RemovePod stops counting a pod.
func (t *Tracker) RemovePod(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(uid)
}

// HasPod reports whether a pod is counted.
func (t *Tracker) HasPod(uid types.UID) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.pods[uid]
	return ok
}

func (t *Tracker) removeLocked(uid types.UID) {
	e, ok := t.pods[uid]
	if !ok {
		return
	}
	delete(t.pods, uid)
	addTo(t.used, e.key, e.requests, -1)
	addTo(t.byTenant, e.key.Tenant, e.requests, -1)
	addTo(t.byPool, e.key.Pool, e.requests, -1)
}

func addTo[K comparable](m map[K]Amounts, k K, a Amounts, sign int64) {
	cur := m[k]
	if cur == nil {
		cur = Amounts{}
		m[k] = cur
	}
	cur.add(a, sign)
	if len(cur) == 0 {
		delete(m, k)
	}
}

// Used is what key's pods request of resource.
func (t *Tracker) Used(key Key, resource corev1.ResourceName) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.used[key][resource]
}

// UsedIn returns a copy of what key's pods request.
func (t *Tracker) UsedIn(key Key) Amounts {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(Amounts, len(t.used[key]))
	for k, v := range t.used[key] {
		out[k] = v
	}
	return out
}

// PoolUsed is what every tenant's pods in pool request of resource.
func (t *Tracker) PoolUsed(pool string, resource corev1.ResourceName) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byPool[pool][resource]
}

// SetNode counts a node's allocatable, replacing what it counted before.
func (t *Tracker) SetNode(name string, allocatable Amounts) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.capacity.add(t.nodes[name], -1)
	t.nodes[name] = allocatable
	t.capacity.add(allocatable, 1)
}

// RemoveNode stops counting a node.
func (t *Tracker) RemoveNode(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.capacity.add(t.nodes[name], -1)
	delete(t.nodes, name)
}

// DominantShare is DRF's: the largest fraction of any resource's total
// allocatable that the tenant's pods request.
func (t *Tracker) DominantShare(tenant string) float64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	share := 0.0
	for name, v := range t.byTenant[tenant] {
		if total := t.capacity[name]; total > 0 {
			share = max(share, float64(v)/float64(total))
		}
	}
	return share
}
