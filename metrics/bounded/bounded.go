// Package bounded keeps kplex's per-tenant Prometheus series to a bound
// that does not grow with the number of tenants: only the K tenants that
// rank first get series of their own, and everything of the others is
// summed under tenant="_other". An apiserver serving 10,000 tenants so
// exports at most K+1 tenant values per metric family (and label set),
// whatever K is set to (DefaultTopTenants).
//
// Gauges (what a tenant holds now) are ranked and summed at each scrape by
// their owner, with Select. Counters and histograms (what a tenant did
// since the process started) are kept exactly, per tenant, by Vec, which
// exports the top K and folds the others into "_other" so that every
// increment shows in exactly one exported series and "_other" never goes
// down: sum(rate(...)) stays right while tenants enter and leave the top.
package bounded

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// DefaultTopTenants is how many tenants get series of their own.
	DefaultTopTenants = 100
	// Other is the tenant label value of what the other tenants sum to.
	Other = "_other"
	// Unknown is the tenant label value of requests for a name that is
	// not a tenant: anyone may ask for /clusters/<anything>, and such
	// names must not make series (or memory).
	Unknown = "_unknown"
	// NoPool is the pool label value of the nodes in no NodePool (every
	// tenant's). NodePool names are DNS labels, so a pool could be named
	// "none": kplex's own pools should not be.
	NoPool = "none"
	// DefaultIdle is how long a tenant of a Vec may go without an
	// increment before its counts are folded into "_other" and forgotten.
	DefaultIdle = time.Hour
)

// PoolLabel is the pool label value of a pool name ("" is NoPool).
func PoolLabel(pool string) string {
	if pool == "" {
		return NoPool
	}
	return pool
}

// Select returns the k names of items that rank first: before(a, b)
// tells whether a ranks before b; ties go to the smaller name, so that the
// choice is stable from one scrape to the next. k <= 0 selects none.
func Select[T any](items map[string]T, k int, before func(a, b T) bool) map[string]bool {
	out := make(map[string]bool, min(max(k, 0), len(items)))
	if k <= 0 {
		return out
	}
	names := slices.Collect(maps.Keys(items))
	if len(names) > k {
		sort.Slice(names, func(i, j int) bool {
			a, b := items[names[i]], items[names[j]]
			if before(a, b) {
				return true
			}
			if before(b, a) {
				return false
			}
			return names[i] < names[j]
		})
		names = names[:k]
	}
	for _, n := range names {
		out[n] = true
	}
	return out
}

// Vec is a family of counters or histograms with a tenant label, kept
// exactly per tenant in memory and exported for the top K tenants by
// count (requests, observations) only; the others' increments are folded
// into tenant="_other" at each scrape.
//
// The tenant label comes first, then the Vec's own labels. Tenant names
// must come from a bounded set (tenants that exist); a tenant without an
// increment for Idle is folded and forgotten, so that deleted tenants do
// not stay in memory.
type Vec struct {
	desc    *prometheus.Desc
	buckets []float64 // upper bounds; nil for a counter
	labels  int
	now     func() time.Time

	mu      sync.Mutex
	k       int
	idle    time.Duration
	tenants map[string]*tenantSeries
	other   map[string]*series
}

type tenantSeries struct {
	series map[string]*series
	count  uint64
	last   time.Time
}

// series is one label set's counts, and how much of them was folded into
// "_other" already (or exported under the tenant's own name).
type series struct {
	values     []string
	count      uint64
	sum        float64
	buckets    []uint64 // per bucket, not cumulative
	doneCount  uint64
	doneSum    float64
	doneBucket []uint64
}

// NewCounterVec makes a counter family: name and help, and the labels
// after tenant.
func NewCounterVec(name, help string, labels ...string) *Vec {
	return newVec(name, help, nil, labels)
}

// NewHistogramVec makes a histogram family with the given bucket upper
// bounds (sorted, without +Inf).
func NewHistogramVec(name, help string, buckets []float64, labels ...string) *Vec {
	return newVec(name, help, slices.Clone(buckets), labels)
}

func newVec(name, help string, buckets []float64, labels []string) *Vec {
	return &Vec{
		desc:    prometheus.NewDesc(name, help, append([]string{"tenant"}, labels...), nil),
		buckets: buckets,
		labels:  len(labels),
		now:     time.Now,
		k:       DefaultTopTenants,
		idle:    DefaultIdle,
		tenants: map[string]*tenantSeries{},
		other:   map[string]*series{},
	}
}

// SetTopTenants sets K; k <= 0 keeps the default.
func (v *Vec) SetTopTenants(k int) {
	if k <= 0 {
		k = DefaultTopTenants
	}
	v.mu.Lock()
	v.k = k
	v.mu.Unlock()
}

// SetIdle sets how long a tenant may go without an increment before it
// is forgotten; 0 keeps tenants forever.
func (v *Vec) SetIdle(d time.Duration) {
	v.mu.Lock()
	v.idle = d
	v.mu.Unlock()
}

// Inc adds one to a counter.
func (v *Vec) Inc(tenant string, values ...string) {
	v.add(tenant, values, 0, false)
}

// Observe records a value in a histogram.
func (v *Vec) Observe(tenant string, value float64, values ...string) {
	v.add(tenant, values, value, true)
}

func (v *Vec) add(tenant string, values []string, value float64, observe bool) {
	if len(values) != v.labels {
		panic("bounded: " + v.desc.String() + ": wrong number of label values")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	t := v.tenants[tenant]
	if t == nil {
		t = &tenantSeries{series: map[string]*series{}}
		v.tenants[tenant] = t
	}
	s := v.series(t.series, values)
	t.count++
	t.last = v.now()
	s.count++
	if observe {
		s.sum += value
		if i, _ := slices.BinarySearch(v.buckets, value); i < len(v.buckets) {
			s.buckets[i]++
		}
	}
}

func (v *Vec) series(in map[string]*series, values []string) *series {
	key := strings.Join(values, "\xff")
	s := in[key]
	if s == nil {
		s = &series{values: slices.Clone(values)}
		if v.buckets != nil {
			s.buckets = make([]uint64, len(v.buckets))
			s.doneBucket = make([]uint64, len(v.buckets))
		}
		in[key] = s
	}
	return s
}

// fold adds to "_other" what of t was not yet exported.
func (v *Vec) fold(t *tenantSeries) {
	for _, s := range t.series {
		o := v.series(v.other, s.values)
		o.count += s.count - s.doneCount
		o.sum += s.sum - s.doneSum
		for i := range s.buckets {
			o.buckets[i] += s.buckets[i] - s.doneBucket[i]
		}
		s.done()
	}
}

func (s *series) done() {
	s.doneCount, s.doneSum = s.count, s.sum
	copy(s.doneBucket, s.buckets)
}

// Describe sends the family's descriptor.
func (v *Vec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect exports the top K tenants and "_other". The metrics are made
// under the lock and sent after it, so that a slow scrape does not hold
// up the increments.
func (v *Vec) Collect(ch chan<- prometheus.Metric) {
	for _, m := range v.snapshot() {
		ch <- m
	}
}

func (v *Vec) snapshot() []prometheus.Metric {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	for name, t := range v.tenants {
		if v.idle > 0 && now.Sub(t.last) > v.idle {
			v.fold(t)
			delete(v.tenants, name)
		}
	}
	top := Select(v.tenants, v.k, func(a, b *tenantSeries) bool { return a.count > b.count })
	var out []prometheus.Metric
	for name, t := range v.tenants {
		if !top[name] {
			v.fold(t)
			continue
		}
		for _, s := range t.series {
			s.done()
			out = append(out, v.metric(name, s))
		}
	}
	for _, s := range v.other {
		out = append(out, v.metric(Other, s))
	}
	return out
}

func (v *Vec) metric(tenant string, s *series) prometheus.Metric {
	labels := append([]string{tenant}, s.values...)
	if v.buckets == nil {
		return prometheus.MustNewConstMetric(v.desc, prometheus.CounterValue, float64(s.count), labels...)
	}
	cumulative := make(map[float64]uint64, len(v.buckets))
	var n uint64
	for i, le := range v.buckets {
		n += s.buckets[i]
		cumulative[le] = n
	}
	return prometheus.MustNewConstHistogram(v.desc, s.count, s.sum, cumulative, labels...)
}

// Tenants returns how many tenants the Vec holds in memory.
func (v *Vec) Tenants() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.tenants)
}
