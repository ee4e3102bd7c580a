package tenancy

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/kplex/kplex/metrics/bounded"
)

// SchedulingDurationBuckets are the upper bounds of
// kplex_scheduler_pod_scheduling_duration_seconds: from a pod placed at
// once to one that waited for quota or capacity.
var SchedulingDurationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// schedulingDuration is the time from a pod's creation to its binding,
// per tenant (the top K by pods bound, the others as "_other") and pool.
var schedulingDuration = bounded.NewHistogramVec("kplex_scheduler_pod_scheduling_duration_seconds",
	"Time from a pod's creation to its binding to a node, gates and waits for quota included, by tenant (the top tenants by pods bound; the others as tenant=\"_other\") and the node's pool.",
	SchedulingDurationBuckets, "pool")

var registerMetrics sync.Once

// RegisterMetrics registers the plugin's metrics with legacyregistry
// (kube-scheduler's /metrics; in `kplex up`'s process, the apiserver's),
// once per process.
func RegisterMetrics() {
	registerMetrics.Do(func() { legacyregistry.RawMustRegister(schedulingDuration) })
}

// SetMetricsTopTenants sets how many tenants get scheduling-latency
// series of their own; k <= 0 is bounded.DefaultTopTenants.
func SetMetricsTopTenants(k int) { schedulingDuration.SetTopTenants(k) }

// arrivals remembers when the scheduler first saw each unbound pod, a
// finer start than its creation timestamp, which has whole seconds.
type arrivals struct {
	mu   sync.Mutex
	seen map[types.UID]time.Time
}

func (a *arrivals) saw(pod *corev1.Pod, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.seen[pod.UID]; !ok {
		a.seen[pod.UID] = now
	}
}

func (a *arrivals) forget(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.seen, uid)
}

// since is how long ago pod was created: from when the scheduler first
// saw it if that was within a second of its creation timestamp (the
// watch's delay), else (the scheduler started later) from the timestamp.
func (a *arrivals) since(pod *corev1.Pod, now time.Time) time.Duration {
	a.mu.Lock()
	seen, ok := a.seen[pod.UID]
	delete(a.seen, pod.UID)
	a.mu.Unlock()
	start := pod.CreationTimestamp.Time
	if ok && (start.IsZero() || (!seen.Before(start) && seen.Sub(start) < time.Second)) {
		start = seen
	}
	if start.IsZero() {
		return 0
	}
	return max(0, now.Sub(start))
}

// ObservePodScheduled records that one of tenant's pods waited latency
// to be bound to a node in pool ("" for none).
func ObservePodScheduled(tenant, pool string, latency time.Duration) {
	schedulingDuration.Observe(tenant, latency.Seconds(), bounded.PoolLabel(pool))
}

// observeBound records the scheduling latency of a pod just bound.
func (p *Plugin) observeBound(pod *corev1.Pod, pool string) {
	ObservePodScheduled(TenantOf(pod.Namespace), pool, p.arrivals.since(pod, time.Now()))
}
