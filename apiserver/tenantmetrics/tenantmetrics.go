// Package tenantmetrics is the kplex apiserver's per-tenant Prometheus
// metrics, registered in legacyregistry and so served at the apiserver's
// /metrics (and, in `kplex up`'s single process, beside the controller
// manager's and the scheduler's):
//
//	kplex_apiserver_tenant_requests_total{tenant,verb,code}  requests answered
//	kplex_tenants{phase}                                    Tenant objects by phase
//	kplex_tenant_provisioning_duration_seconds               Tenant created → Ready
//	kplex_tenant_objects{tenant}                             keys in etcd
//	kplex_tenant_storage_bytes{tenant}                       bytes of those keys and values
//
// Per-tenant series name the top K tenants only (by requests, by storage
// bytes), the others summed as tenant="_other" (package bounded); names
// that are not tenants are tenant="_unknown". See docs/notes/metrics.md.
package tenantmetrics

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/kplex/kplex/metrics/bounded"
)

// ProvisioningBuckets are the upper bounds of
// kplex_tenant_provisioning_duration_seconds.
var ProvisioningBuckets = []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}

// Phases are the values of kplex_tenants' phase label: Pending is a
// Tenant no controller has written a phase for yet.
var Phases = []string{"Pending", "Provisioning", "Ready", "Terminating"}

var (
	requests = bounded.NewCounterVec("kplex_apiserver_tenant_requests_total",
		"Requests the apiserver answered, by tenant (the top tenants by requests; the others as tenant=\"_other\", names that are not tenants as \"_unknown\"), verb and HTTP code.",
		"verb", "code")
	provisioning = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kplex_tenant_provisioning_duration_seconds",
		Help:    "Time from a Tenant's creation to its Ready condition (its path serving, its admin bound).",
		Buckets: ProvisioningBuckets,
	})
	tenantsDesc = prometheus.NewDesc("kplex_tenants", "Tenant objects, by status.phase (Pending: no phase written yet).", []string{"phase"}, nil)
	objectsDesc = prometheus.NewDesc("kplex_tenant_objects", "Keys a tenant has in etcd (every resource), at the last scan; the top tenants by bytes, the others as tenant=\"_other\".", []string{"tenant"}, nil)
	bytesDesc   = prometheus.NewDesc("kplex_tenant_storage_bytes", "Bytes of a tenant's keys and values in etcd at the last scan (not etcd's history or overhead); the top tenants, the others as tenant=\"_other\".", []string{"tenant"}, nil)
)

var register sync.Once

// Register registers the metrics with legacyregistry, once per process.
func Register() {
	register.Do(func() {
		legacyregistry.RawMustRegister(requests, provisioning, &collector{})
	})
}

// SetTopTenants sets how many tenants get request and storage series of
// their own; k <= 0 is bounded.DefaultTopTenants.
func SetTopTenants(k int) {
	if k <= 0 {
		k = bounded.DefaultTopTenants
	}
	requests.SetTopTenants(k)
	sources.mu.Lock()
	sources.k = k
	sources.mu.Unlock()
}

// ObserveProvisioning records how long a tenant took to become Ready.
func ObserveProvisioning(d time.Duration) { provisioning.Observe(d.Seconds()) }

// Usage is what a tenant stores.
type Usage struct {
	Objects, Bytes int64
}

// sources are what the process's apiservers report (one in production,
// several in tests): their figures add up.
var sources = struct {
	mu      sync.Mutex
	k       int
	phases  map[any]func() map[string]int
	storage map[any]map[string]Usage
}{k: bounded.DefaultTopTenants, phases: map[any]func() map[string]int{}, storage: map[any]map[string]Usage{}}

// SetPhases makes count the source of source's Tenants by phase; nil
// forgets it.
func SetPhases(source any, count func() map[string]int) {
	sources.mu.Lock()
	defer sources.mu.Unlock()
	if count == nil {
		delete(sources.phases, source)
		return
	}
	sources.phases[source] = count
}

// SetStorage records source's last storage scan; nil forgets it.
func SetStorage(source any, usage map[string]Usage) {
	sources.mu.Lock()
	defer sources.mu.Unlock()
	if usage == nil {
		delete(sources.storage, source)
		return
	}
	sources.storage[source] = usage
}

// collector exports kplex_tenants and the storage gauges.
type collector struct{}

func (*collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tenantsDesc
	ch <- objectsDesc
	ch <- bytesDesc
}

func (*collector) Collect(ch chan<- prometheus.Metric) {
	sources.mu.Lock()
	counts := slices.Collect(maps.Values(sources.phases))
	scans := slices.Collect(maps.Values(sources.storage))
	k := sources.k
	sources.mu.Unlock()

	if len(counts) > 0 {
		byPhase := map[string]int{}
		for _, count := range counts {
			for phase, n := range count() {
				if phase == "" {
					phase = "Pending"
				}
				if !slices.Contains(Phases, phase) {
					continue // written by hand: not a lifecycle phase
				}
				byPhase[phase] += n
			}
		}
		for _, phase := range Phases {
			ch <- prometheus.MustNewConstMetric(tenantsDesc, prometheus.GaugeValue, float64(byPhase[phase]), phase)
		}
	}

	if len(scans) == 0 {
		return
	}
	usage := map[string]Usage{}
	for _, scan := range scans {
		for name, u := range scan {
			sum := usage[name]
			sum.Objects += u.Objects
			sum.Bytes += u.Bytes
			usage[name] = sum
		}
	}
	top := bounded.Select(usage, k, func(a, b Usage) bool { return a.Bytes > b.Bytes })
	var other Usage
	for name, u := range usage {
		if !top[name] {
			other.Objects += u.Objects
			other.Bytes += u.Bytes
			continue
		}
		ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, float64(u.Objects), name)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.GaugeValue, float64(u.Bytes), name)
	}
	if len(usage) > len(top) {
		ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, float64(other.Objects), bounded.Other)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.GaugeValue, float64(other.Bytes), bounded.Other)
	}
}
