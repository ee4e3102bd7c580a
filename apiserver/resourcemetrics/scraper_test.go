package resourcemetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape decodes an agent's text as the scraper does, after prev.
func scrape(t *testing.T, text string, prev *endpointState) *endpointState {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return decode(families, prev)
}

// CPU is a rate between two samples; a container's first sample gives no
// figure, and a pod has one only when all its containers do. Two tenants'
// same-named pods stay apart.
func TestDecodeRatesPerTenant(t *testing.T) {
	first := `
container_cpu_usage_seconds_total{container="app",namespace="default",node="n1",pod="web",tenant="a"} 10 1000000
container_memory_working_set_bytes{container="app",namespace="default",node="n1",pod="web",tenant="a"} 1048576 1000000
container_cpu_usage_seconds_total{container="app",namespace="default",node="n1",pod="web",tenant="b"} 5 1000000
container_memory_working_set_bytes{container="app",namespace="default",node="n1",pod="web",tenant="b"} 2097152 1000000
node_cpu_usage_seconds_total{node="n1"} 100 1000000
node_memory_working_set_bytes{node="n1"} 1073741824 1000000
`
	second := `
container_cpu_usage_seconds_total{container="app",namespace="default",node="n1",pod="web",tenant="a"} 11 1002000
container_memory_working_set_bytes{container="app",namespace="default",node="n1",pod="web",tenant="a"} 1048576 1002000
container_cpu_usage_seconds_total{container="app",namespace="default",node="n1",pod="web",tenant="b"} 5.5 1002000
container_memory_working_set_bytes{container="app",namespace="default",node="n1",pod="web",tenant="b"} 2097152 1002000
container_cpu_usage_seconds_total{container="sidecar",namespace="default",node="n1",pod="web",tenant="b"} 1 1002000
container_memory_working_set_bytes{container="sidecar",namespace="default",node="n1",pod="web",tenant="b"} 1024 1002000
node_cpu_usage_seconds_total{node="n1"} 104 1002000
node_memory_working_set_bytes{node="n1"} 1073741824 1002000
`
	st := scrape(t, first, nil)
	if len(st.pods) != 0 || len(st.nodes) != 0 {
		t.Fatalf("first scrape gave figures: %v %v", st.pods, st.nodes)
	}
	st = scrape(t, second, st)
	a := st.pods[podKey{"a", "default", "web"}]
	if a == nil || len(a.Containers) != 1 {
		t.Fatalf("tenant a's web: %+v", a)
	}
	if cpu := a.Containers[0].Usage.Cpu().MilliValue(); cpu != 500 {
		t.Errorf("a's web uses %dm CPU, want 500m (1s over 2s)", cpu)
	}
	if a.Window.Seconds() != 2 {
		t.Errorf("window %s, want 2s", a.Window.Duration)
	}
	if b := st.pods[podKey{"b", "default", "web"}]; b != nil {
		t.Errorf("b's web has a figure while its sidecar has one sample only: %+v", b)
	}
	n := st.nodes["n1"]
	if n == nil || n.Usage.Cpu().MilliValue() != 2000 || n.Usage.Memory().Value() != 1<<30 {
		t.Errorf("node n1: %+v, want 2 cores and 1Gi", n)
	}
}

// A counter that goes back (a restarted container) gives no figure rather
// than a negative one.
func TestDecodeRestartedContainer(t *testing.T) {
	st := scrape(t, `container_cpu_usage_seconds_total{container="app",namespace="ns",node="n",pod="p",tenant="a"} 10 1000
container_memory_working_set_bytes{container="app",namespace="ns",node="n",pod="p",tenant="a"} 1 1000
`, nil)
	st = scrape(t, `container_cpu_usage_seconds_total{container="app",namespace="ns",node="n",pod="p",tenant="a"} 1 2000
container_memory_working_set_bytes{container="app",namespace="ns",node="n",pod="p",tenant="a"} 1 2000
`, st)
	if len(st.pods) != 0 {
		t.Errorf("a reset counter gave %+v", st.pods)
	}
}
