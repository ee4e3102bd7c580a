package bounded

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSelect(t *testing.T) {
	scores := map[string]int{"a": 1, "b": 5, "c": 5, "d": 3}
	got := Select(scores, 2, func(x, y int) bool { return x > y })
	if len(got) != 2 || !got["b"] || !got["c"] {
		t.Errorf("top 2: %v, want b and c", got)
	}
	got = Select(scores, 3, func(x, y int) bool { return x > y })
	if len(got) != 3 || !got["d"] {
		t.Errorf("top 3: %v, want b, c, d", got)
	}
	if got := Select(scores, 10, func(x, y int) bool { return x > y }); len(got) != 4 {
		t.Errorf("top 10 of 4: %v", got)
	}
	if got := Select(scores, 0, func(x, y int) bool { return x > y }); len(got) != 0 {
		t.Errorf("top 0: %v", got)
	}
	// Ties go to the smaller name.
	if got := Select(map[string]int{"z": 1, "y": 1, "x": 1}, 1, func(x, y int) bool { return x > y }); !got["x"] {
		t.Errorf("tie: %v, want x", got)
	}
}

// Every increment shows in exactly one exported series, and _other never
// goes down, while tenants enter and leave the top.
func TestCounterVecFoldsOthers(t *testing.T) {
	v := NewCounterVec("test_requests_total", "Requests.", "code")
	v.SetTopTenants(1)
	for range 3 {
		v.Inc("a", "200")
	}
	v.Inc("b", "200")
	v.Inc("b", "500")
	expect(t, v, `
test_requests_total{code="200",tenant="a"} 3
test_requests_total{code="200",tenant="_other"} 1
test_requests_total{code="500",tenant="_other"} 1
`)
	// b overtakes a: b is exported with all it did, a's new increments
	// go to _other, which keeps what it had.
	for range 4 {
		v.Inc("b", "200")
	}
	v.Inc("a", "200")
	expect(t, v, `
test_requests_total{code="200",tenant="b"} 5
test_requests_total{code="500",tenant="b"} 1
test_requests_total{code="200",tenant="_other"} 2
test_requests_total{code="500",tenant="_other"} 1
`)
}

func TestHistogramVecAndIdle(t *testing.T) {
	now := time.Unix(1000, 0)
	v := NewHistogramVec("test_duration_seconds", "Durations.", []float64{1, 10}, "pool")
	v.now = func() time.Time { return now }
	v.SetTopTenants(1)
	v.Observe("a", 0.5, "p")
	v.Observe("a", 1, "p")
	v.Observe("a", 20, "p")
	v.Observe("b", 5, "p")
	expect(t, v, `
test_duration_seconds_bucket{pool="p",tenant="a",le="1"} 2
test_duration_seconds_bucket{pool="p",tenant="a",le="10"} 2
test_duration_seconds_bucket{pool="p",tenant="a",le="+Inf"} 3
test_duration_seconds_sum{pool="p",tenant="a"} 21.5
test_duration_seconds_count{pool="p",tenant="a"} 3
test_duration_seconds_bucket{pool="p",tenant="_other",le="1"} 0
test_duration_seconds_bucket{pool="p",tenant="_other",le="10"} 1
test_duration_seconds_bucket{pool="p",tenant="_other",le="+Inf"} 1
test_duration_seconds_sum{pool="p",tenant="_other"} 5
test_duration_seconds_count{pool="p",tenant="_other"} 1
`)
	// An idle tenant is forgotten; what it had not exported goes to _other.
	now = now.Add(DefaultIdle + time.Minute)
	v.Observe("c", 2, "p")
	expect(t, v, `
test_duration_seconds_bucket{pool="p",tenant="c",le="1"} 0
test_duration_seconds_bucket{pool="p",tenant="c",le="10"} 1
test_duration_seconds_bucket{pool="p",tenant="c",le="+Inf"} 1
test_duration_seconds_sum{pool="p",tenant="c"} 2
test_duration_seconds_count{pool="p",tenant="c"} 1
test_duration_seconds_bucket{pool="p",tenant="_other",le="1"} 0
test_duration_seconds_bucket{pool="p",tenant="_other",le="10"} 1
test_duration_seconds_bucket{pool="p",tenant="_other",le="+Inf"} 1
test_duration_seconds_sum{pool="p",tenant="_other"} 5
test_duration_seconds_count{pool="p",tenant="_other"} 1
`)
	if n := v.Tenants(); n != 1 {
		t.Errorf("%d tenants in memory, want 1 (c)", n)
	}
}

// At 1,000 tenants, series are those of K tenants and _other.
func TestVecSeriesBounded(t *testing.T) {
	v := NewCounterVec("test_requests_total", "Requests.", "verb", "code")
	v.SetTopTenants(100)
	for i := range 1000 {
		for j := range i%7 + 1 {
			v.Inc(fmt.Sprintf("t%04d", i), "get", fmt.Sprint(200+j%2))
		}
	}
	// Two label sets per tenant at most: (100 + 1) × 2.
	if n := testutil.CollectAndCount(v); n > (100+1)*2 {
		t.Errorf("%d series, want at most %d", n, (100+1)*2)
	}
}

func expect(t *testing.T, c prometheus.Collector, want string) {
	t.Helper()
	var name string
	for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
		name, _, _ = strings.Cut(line, "{")
		break
	}
	kind, base := "counter", name
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if strings.HasSuffix(name, suffix) {
			kind, base = "histogram", strings.TrimSuffix(name, suffix)
		}
	}
	help := map[string]string{"test_requests_total": "Requests.", "test_duration_seconds": "Durations."}[base]
	header := fmt.Sprintf("# HELP %s %s\n# TYPE %s %s\n", base, help, base, kind)
	if err := testutil.CollectAndCompare(c, strings.NewReader(header+want)); err != nil {
		t.Error(err)
	}
}
