package metrics_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-base/metrics/legacyregistry"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/apiserver/tenantmetrics"
	"github.com/kplex/kplex/capacity"
	capmetrics "github.com/kplex/kplex/capacity/metrics"
	"github.com/kplex/kplex/scheduler/tenancy"
	"github.com/kplex/kplex/tenant"
)

const dashboardFile = "../manifests/grafana/kplex-dashboard.json"

// exported gathers the names of the series kplex exports, from the real
// collectors after exercising each: a histogram's are its _bucket, _sum
// and _count.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	// The apiserver's and the scheduler's, as they register them.
	tenantmetrics.Register()
	tenancy.RegisterMetrics()
	tenantmetrics.SetPhases(t.Name(), func() map[string]int { return map[string]int{"Ready": 1} })
	tenantmetrics.SetStorage(t.Name(), map[string]tenantmetrics.Usage{"acme": {Objects: 1, Bytes: 100}})
	t.Cleanup(func() {
		tenantmetrics.SetPhases(t.Name(), nil)
		tenantmetrics.SetStorage(t.Name(), nil)
	})
	tenantmetrics.ObserveProvisioning(time.Second)
	tenancy.ObservePodScheduled("acme", "gpu", time.Second)
	req := httptest.NewRequest(http.MethodGet, "https://kplex/api", nil)
	tenantmetrics.WithRequests(http.NotFoundHandler(), nil, func(string) bool { return true }).
		ServeHTTP(httptest.NewRecorder(), req.WithContext(tenant.WithTenant(req.Context(), "acme")))
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}

	// The controller manager's, from a report with every figure in it.
	c := capmetrics.New(0)
	c.Set(everyFigure())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	more, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}

	names := map[string]bool{}
	for _, f := range append(families, more...) {
		if !strings.HasPrefix(f.GetName(), "kplex_") {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+suffix] = true
			}
		case dto.MetricType_SUMMARY:
			names[f.GetName()+"_sum"], names[f.GetName()+"_count"] = true, true
			names[f.GetName()] = true
		default:
			names[f.GetName()] = true
		}
	}
	return names
}

// everyFigure is a pool with limits and an unhealthy GPU, a tenant with
// a quota (and a borrowing limit) and a pod there, and a pending pod.
func everyFigure() *capacity.Report {
	gpus := func(n int64) corev1.ResourceList {
		return corev1.ResourceList{capacity.GPU: *resource.NewQuantity(n, resource.DecimalSI)}
	}
	borrowing := resource.MustParse("2")
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{schedulingv1alpha1.PoolLabel: "gpu"}},
		Status:     corev1.NodeStatus{Capacity: gpus(8), Allocatable: gpus(7), Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
	pod := func(name, nodeName string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{tenant.Annotation: "acme"}},
			Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: gpus(1), Limits: gpus(1)}}}},
		}
	}
	return capacity.Compute([]*corev1.Node{node}, []*corev1.Pod{pod("run", "n"), pod("wait", "")},
		[]*schedulingv1alpha1.NodePool{{ObjectMeta: metav1.ObjectMeta{Name: "gpu"}, Spec: schedulingv1alpha1.NodePoolSpec{Mode: schedulingv1alpha1.Shared, Limits: gpus(8)}}},
		[]*schedulingv1alpha1.TenantQuota{{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: schedulingv1alpha1.TenantQuotaSpec{Pools: []schedulingv1alpha1.PoolQuota{
			{Name: "gpu", Resources: []schedulingv1alpha1.ResourceQuota{{Name: capacity.GPU, NominalQuota: resource.MustParse("4"), BorrowingLimit: &borrowing}}},
		}}}})
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
}

// query is a variable's PromQL-ish query: a string, or {"query": ...}.
func (v variable) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var q struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &q)
	return q.Query
}

func TestDashboardQueriesOnlyKplexMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s does not parse: %v", dashboardFile, err)
	}
	// Every expr anywhere in the document, whatever the panel type.
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	walk(generic, func(key string, v any) {
		if s, ok := v.(string); ok && key == "expr" {
			exprs = append(exprs, s)
		}
	})
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 || len(d.Panels) == 0 {
		t.Errorf("not a Grafana dashboard model: uid %q title %q schemaVersion %d, %d panels", d.UID, d.Title, d.SchemaVersion, len(d.Panels))
	}
	ids := map[int]bool{}
	targets := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: target %+v without expr or with a missing or repeated refId", p.Title, tg)
			}
			refs[tg.RefID] = true
			targets++
		}
	}
	if targets != len(exprs) {
		t.Errorf("%d panel targets but %d exprs in the document: a nested panel?", targets, len(exprs))
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		for _, q := range []string{v.query(), v.Definition} {
			inner, ok := labelValuesMetric(q)
			if !ok {
				t.Errorf("variable %s: query %q is not label_values(<selector>, <label>)", v.Name, q)
				continue
			}
			exprs = append(exprs, inner)
		}
	}

	have := exported(t)
	used := map[string]bool{}
	for _, expr := range exprs {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%q: %v", expr, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%q names no metric", expr)
		}
		for _, name := range names {
			used[name] = true
			if !have[name] {
				t.Errorf("%q queries %s, which kplex does not export (it exports %v)", expr, name, sorted(have))
			}
		}
	}
	// The views the issue asks for.
	for _, name := range []string{
		"kplex_nodepool_allocatable", "kplex_nodepool_requested", // pool capacity vs requested
		"kplex_tenant_pool_requested", "kplex_tenant_quota_nominal", // per-tenant GPU use vs quota
		"kplex_tenant_pending_pods",                      // pending pods by reason
		"kplex_apiserver_tenant_requests_total",          // apiserver per-tenant load
		"kplex_nodepool_unhealthy_gpus", "kplex_tenants", // unhealthy GPUs, tenants
		"kplex_tenant_provisioning_duration_seconds_bucket",      // provisioning latency
		"kplex_scheduler_pod_scheduling_duration_seconds_bucket", // scheduling latency
		"kplex_tenant_storage_bytes",
	} {
		if !used[name] {
			t.Errorf("no panel queries %s", name)
		}
	}
}

// Every metric kplex exports is described in docs/notes/metrics.md.
func TestEveryMetricIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/notes/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range exported(t) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			name = strings.TrimSuffix(name, suffix)
		}
		if !strings.Contains(string(doc), "`"+name) {
			t.Errorf("%s is not in docs/notes/metrics.md", name)
		}
	}
}

func walk(v any, visit func(key string, v any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			visit(k, child)
			walk(child, visit)
		}
	case []any:
		for _, child := range v {
			walk(child, visit)
		}
	}
}

var (
	labelValues = regexp.MustCompile(`^\s*label_values\(\s*(.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)
	literals    = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	matchers    = regexp.MustCompile(`\{[^{}]*\}`)
	ranges      = regexp.MustCompile(`\[[^\[\]]*\]`)
	grouping    = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	identifier  = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	keywords    = map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	}
)

// labelValuesMetric returns the selector of a Grafana label_values query.
func labelValuesMetric(q string) (string, bool) {
	m := labelValues.FindStringSubmatch(q)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// metricNames returns the metric names a PromQL expression reads: the
// identifiers left once strings, label matchers, ranges and grouping
// labels are removed, that are not calls (functions, aggregations) or
// keywords.
func metricNames(expr string) ([]string, error) {
	s := literals.ReplaceAllString(expr, `""`)
	if strings.Count(s, "{") != strings.Count(s, "}") || strings.Count(s, "(") != strings.Count(s, ")") || strings.Count(s, "[") != strings.Count(s, "]") {
		return nil, errUnbalanced
	}
	s = matchers.ReplaceAllString(s, " ")
	s = ranges.ReplaceAllString(s, " ")
	s = grouping.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range identifier.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(s[loc[0]-1:loc[0]], "0123456789.$") {
			continue // 1e3, $variable
		}
		if keywords[name] || strings.HasPrefix(strings.TrimLeft(s[loc[1]:], " \t\n"), "(") {
			continue
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

var errUnbalanced = errorString("unbalanced brackets")

type errorString string

func (e errorString) Error() string { return string(e) }

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (pool) (kplex_nodepool_requested{resource="nvidia.com/gpu", pool=~"$pool"})`:                                   {"kplex_nodepool_requested"},
		`histogram_quantile(0.9, sum by (le) (rate(kplex_x_bucket{a="b{c}"}[$__rate_interval])))`:                              {"kplex_x_bucket"},
		`sum(a) / on(pool) group_left(mode) sum(b) > bool 1e3`:                                                                 {"a", "b"},
		`topk(10, sum without (tenant) (rate(kplex_apiserver_tenant_requests_total{code=~"5.."}[5m] offset 1h))) or vector(0)`: {"kplex_apiserver_tenant_requests_total"},
		`kplex_tenants`: {"kplex_tenants"},
	} {
		got, err := metricNames(expr)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v %v, want %v", expr, got, err, want)
		}
	}
}

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
