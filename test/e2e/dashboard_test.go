package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image"
	"image/png"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The JSON of `kplex top pools|tenants -o json` and of the dashboard's
// /api/report, written here from the documented names (package cli/top),
// so that a renamed field fails this test.
type topPool struct {
	Name                 string `json:"name"`
	Mode                 string `json:"mode"`
	Nodes                int    `json:"nodes"`
	ReadyNodes           int    `json:"readyNodes"`
	GPUCapacity          int64  `json:"gpuCapacity"`
	GPUAllocatable       int64  `json:"gpuAllocatable"`
	GPURequested         int64  `json:"gpuRequested"`
	GPUUnhealthy         int64  `json:"gpuUnhealthy"`
	CPUAllocatableMillis int64  `json:"cpuAllocatableMillis"`
	CPURequestedMillis   int64  `json:"cpuRequestedMillis"`
	MemoryRequestedBytes int64  `json:"memoryRequestedBytes"`
}

type topTenant struct {
	Name        string `json:"name"`
	Pods        int    `json:"pods"`
	GPUUsed     int64  `json:"gpuUsed"`
	PendingPods int    `json:"pendingPods"`
	Pending     []struct {
		Reason       string `json:"reason"`
		Pods         int    `json:"pods"`
		GPURequested int64  `json:"gpuRequested"`
	} `json:"pending"`
	Pools []struct {
		Pool              string `json:"pool"`
		Pods              int    `json:"pods"`
		GPUUsed           int64  `json:"gpuUsed"`
		GPUNominal        *int64 `json:"gpuNominal"`
		GPUBorrowingLimit *int64 `json:"gpuBorrowingLimit"`
		GPUBorrowed       int64  `json:"gpuBorrowed"`
	} `json:"pools"`
}

// dashPod is `kubectl run` overrides for a pod asking for gpus GPUs, half
// a core and 1Gi, on pool (any if "").
func dashPod(gpus, pool string) string {
	selector := ""
	if pool != "" {
		selector = `"nodeSelector":{"kplex.io/pool":"` + pool + `"},`
	}
	return `{"spec":{` + selector + `"containers":[{"name":"main","image":"busybox","resources":{"requests":{"cpu":"500m","memory":"1Gi"},"limits":{"nvidia.com/gpu":"` + gpus + `"}}}]}}`
}

// heartbeat renews the Leases of nodes registered with kubectl (m.node)
// every 10 s until the test ends, as their node agents would, so that the
// node lifecycle controller keeps them Ready however long the test runs.
func (m *machine) heartbeat(nodes ...string) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	renew := func() (string, string, error) {
		var docs []string
		now := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00")
		for _, n := range nodes {
			docs = append(docs, "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: "+n+", namespace: kube-node-lease}\n"+
				"spec: {holderIdentity: "+n+", leaseDurationSeconds: 40, renewTime: \""+now+"\"}\n")
		}
		return m.runStdin(strings.Join(docs, "---\n"), "kubectl", "--context=kplex-root", "apply", "-f", "-")
	}
	m.must(renew())
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
				_, _, _ = renew() // a failure shows as a node gone NotReady
			}
		}
	})
	m.t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestE2EDashboardAndTopShowPoolsTenantsAndQuotas: an operator's fleet of
// two pools (gpu-a dedicated to dash-a, 1 node × 8 GPUs; shared, 2 × 4)
// and a node in none; dash-b has a quota in shared of 2 GPUs + 2 borrowed
// and dash-c one of 4; pods placed by kplex-scheduler, one of dash-b's
// refused for its quota. `kplex top pools|tenants` (table and JSON) and
// `kplex dashboard`, rendered by headless Chromium, show the numbers the
// NodePools' and TenantQuotas' status hold; the screenshot is a real image.
func TestE2EDashboardAndTopShowPoolsTenantsAndQuotas(t *testing.T) {
	m := newMachine(t)
	chromium := findChromium(t)
	m.up()
	m.must(m.runStdin(`apiVersion: scheduling.kplex.io/v1alpha1
kind: NodePool
metadata: {name: gpu-a}
spec: {mode: dedicated, tenants: [dash-a]}
---
apiVersion: scheduling.kplex.io/v1alpha1
kind: NodePool
metadata: {name: shared}
spec: {mode: shared}
`, "kubectl", "--context=kplex-root", "apply", "-f", "-"))
	m.must(m.runStdin(`apiVersion: scheduling.kplex.io/v1alpha1
kind: TenantQuota
metadata: {name: dash-b}
spec:
  pools:
  - name: shared
    resources: [{name: nvidia.com/gpu, nominalQuota: 2, borrowingLimit: 2}]
---
apiVersion: scheduling.kplex.io/v1alpha1
kind: TenantQuota
metadata: {name: dash-c}
spec:
  pools:
  - name: shared
    resources: [{name: nvidia.com/gpu, nominalQuota: 4}]
`, "kubectl", "--context=kplex-root", "apply", "-f", "-"))
	m.node("dash-a-1", "gpu-a", "8")
	m.node("dash-s-1", "shared", "4")
	m.node("dash-s-2", "shared", "4")
	m.node("dash-free", "", "0")
	m.heartbeat("dash-a-1", "dash-s-1", "dash-s-2", "dash-free")
	for _, name := range []string{"dash-a", "dash-b", "dash-c"} {
		m.must(m.kplex("create", "cluster", name))
		m.eventuallyWithin(30*time.Second, name+": default ServiceAccount", "--context=kplex-"+name, "get", "serviceaccount", "default")
	}
	a, b, c := "--context=kplex-dash-a", "--context=kplex-dash-b", "--context=kplex-dash-c"
	m.must(m.kubectl(a, "run", "a1", "--image=busybox", "--overrides="+dashPod("3", "gpu-a")))
	m.must(m.kubectl(a, "run", "a2", "--image=busybox", "--overrides="+dashPod("3", "gpu-a")))
	m.must(m.kubectl(c, "run", "c1", "--image=busybox", "--overrides="+dashPod("1", "")))
	// dash-b's one at a time: within nominal, then borrowing (dash-c
	// leaves 3 of its 4 unused), then beyond the borrowing limit.
	m.must(m.kubectl(b, "run", "b1", "--image=busybox", "--overrides="+dashPod("2", "")))
	m.waitNodeName(b, "b1")
	m.must(m.kubectl(b, "run", "b2", "--image=busybox", "--overrides="+dashPod("2", "")))
	m.waitNodeName(b, "b2")
	m.must(m.kubectl(b, "run", "b3", "--image=busybox", "--overrides="+dashPod("1", "")))
	for _, p := range []struct{ ctx, pod, node string }{{a, "a1", "dash-a-1"}, {a, "a2", "dash-a-1"}, {c, "c1", "dash-s-"}} {
		if node := m.waitNodeName(p.ctx, p.pod); !strings.HasPrefix(node, p.node) {
			t.Errorf("%s on %s, want %s", p.pod, node, p.node)
		}
	}
	m.until(time.Minute, "dash-b's b3 refused for its quota", func(s string) bool { return strings.Contains(s, "tenant quota nvidia.com/gpu exhausted") },
		b, "get", "pod", "b3", "-o", `jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}`)
	// The node pools controller writes status every 5 s.
	m.until(30*time.Second, "gpu-a's status", equals("6 8"), "--context=kplex-root", "get", "nodepool", "gpu-a", "-o", `jsonpath={.status.requested.nvidia\.com/gpu} {.status.allocatable.nvidia\.com/gpu}`)
	m.until(30*time.Second, "shared's status", equals("5 8"), "--context=kplex-root", "get", "nodepool", "shared", "-o", `jsonpath={.status.requested.nvidia\.com/gpu} {.status.allocatable.nvidia\.com/gpu}`)
	m.until(30*time.Second, "dash-b's quota status", equals("4 2"), "--context=kplex-root", "get", "tenantquota", "dash-b", "-o", `jsonpath={.status.pools[0].used.nvidia\.com/gpu} {.status.pools[0].borrowed.nvidia\.com/gpu}`)
	api := readAPI(t, m)

	// kplex top pools and tenants, as JSON and as tables.
	var pools []topPool
	decode(t, m.must(m.kplex("top", "pools", "-o", "json")), &pools)
	checkPools(t, "kplex top pools -o json", pools, api)
	var tenants []topTenant
	decode(t, m.must(m.kplex("top", "tenants", "-o", "json")), &tenants)
	checkTenants(t, "kplex top tenants -o json", tenants)
	decode(t, m.must(m.kplex("top", "pools", "-o", "json", "--sort-by", "cpu")), &pools)
	if got := names(pools); got != "shared,gpu-a," {
		t.Errorf("kplex top pools --sort-by cpu: %s, want shared (1.5 cores), gpu-a (1), no pool", got)
	}
	table := m.must(m.kplex("top", "pools"))
	t.Logf("kplex top pools:\n%s", table)
	for _, want := range [][]string{
		{"NAME", "MODE", "NODES", "READY", "GPU(REQ/ALLOC)", "GPU%", "UNHEALTHY-GPUS", "CPU(REQ/ALLOC)", "MEMORY(REQ/ALLOC)"},
		{"gpu-a", "dedicated", "1", "1", "6/8", "75%", "0", "1/8", "2Gi/32Gi"},
		{"shared", "shared", "2", "2", "5/8", "62%", "0", "1.5/16", "3Gi/64Gi"},
		{"(no", "pool)", "-", "1", "1", "0/0", "-", "0", "0/8", "0/32Gi"},
	} {
		if !hasFields(table, want...) {
			t.Errorf("kplex top pools has no line %q:\n%s", want, table)
		}
	}
	table = m.must(m.kplex("top", "tenants", "--sort-by", "gpu"))
	t.Logf("kplex top tenants --sort-by gpu:\n%s", table)
	for _, want := range [][]string{
		{"TENANT", "POOL", "PODS", "GPU-USED", "GPU-QUOTA", "BORROWED", "CPU-USED", "MEMORY-USED", "PENDING"},
		{"dash-a", "gpu-a", "2", "6", "-", "-", "1", "2Gi", "-"},
		{"dash-b", "shared", "2", "4", "2+2", "2", "1", "2Gi", "1", "QuotaExhausted"},
		{"dash-c", "shared", "1", "1", "4+∞", "0", "0.5", "1Gi", "-"},
	} {
		if !hasFields(table, want...) {
			t.Errorf("kplex top tenants has no line %q:\n%s", want, table)
		}
	}
	if errOut := m.mustFail(m.kplex("top", "pools", "-o", "wide")); !strings.Contains(errOut, "--output") {
		t.Errorf("kplex top pools -o wide: %s", errOut)
	}
	if errOut := m.mustFail(m.kplex("dashboard", "--address", "0.0.0.0:0")); !strings.Contains(errOut, "--allow-remote") {
		t.Errorf("kplex dashboard on 0.0.0.0 without --allow-remote: %s", errOut)
	}

	// kplex dashboard: its JSON, then its page in a real browser. The
	// printed URL carries the token, which every request needs, loopback
	// or not: a script sends it as a bearer token, the browser opens the
	// URL and keeps it in a cookie.
	url, token := m.dashboard("--address", "127.0.0.1:0", "--refresh", "1s")
	base := strings.TrimSuffix(url, "?token="+token)
	var report struct {
		Pools   []topPool   `json:"pools"`
		Tenants []topTenant `json:"tenants"`
	}
	getReport := func(bearer string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+"api/report", nil)
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, bearer := range []string{"", "wrong-" + token} {
		resp := getReport(bearer)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %sapi/report with bearer %q: %d, want 401", base, bearer, resp.StatusCode)
		}
	}
	resp := getReport(token)
	err := json.NewDecoder(resp.Body).Decode(&report)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %sapi/report with the token: %d %v", base, resp.StatusCode, err)
	}
	checkPools(t, "/api/report", report.Pools, api)
	checkTenants(t, "/api/report", report.Tenants)

	// A browser without the token gets the refusal, not the figures.
	refused := browse(t, chromium, t.TempDir(), "--dump-dom", base)
	if !strings.Contains(refused, "requires its token") || strings.Contains(refused, "data-field") {
		t.Errorf("the page without the token is not the 401's message:\n%s", refused)
	}
	profile := t.TempDir()
	dom := browse(t, chromium, profile, "--dump-dom", url)
	if !regexp.MustCompile(`<body[^>]*data-state="ok"`).MatchString(dom) {
		t.Fatalf("the page did not render the report (no data-state=\"ok\" on body):\n%s", dom)
	}
	fields := domFields(dom)
	for _, p := range api.pools {
		for field, want := range map[string]string{
			"gpuAllocatable": p.allocatable, "gpuRequested": p.requested, "nodes": p.nodes,
		} {
			if got := fields["pool="+p.name+"/"+field]; got != want {
				t.Errorf("page: pool %s %s = %q, want %q (the NodePool's status)", p.name, field, got, want)
			}
		}
	}
	for key, want := range map[string]string{
		"pool=gpu-a/readyNodes": "1", "pool=shared/readyNodes": "2", "pool=/nodes": "1", "pool=/gpuAllocatable": "0",
		"pool=gpu-a/gpuPercent": "75%", "pool=shared/gpuPercent": "62%", "pool=gpu-a/gpuUnhealthy": "0",
		"pool=shared/cpuRequested": "1.5", "pool=gpu-a/mode": "dedicated", "pool=/name": "(no pool)",
		"tenant=dash-a,pool=gpu-a/gpuUsed": "6", "tenant=dash-a,pool=gpu-a/pods": "2",
		"tenant=dash-b,pool=shared/gpuUsed": "4", "tenant=dash-b,pool=shared/gpuBorrowed": "2",
		"tenant=dash-b,pool=shared/gpuNominal": api.quotas["dash-b"].nominal, "tenant=dash-b,pool=shared/gpuBorrowingLimit": api.quotas["dash-b"].borrowingLimit,
		"tenant=dash-c,pool=shared/gpuUsed": "1", "tenant=dash-c,pool=shared/gpuNominal": api.quotas["dash-c"].nominal,
		"tenant=dash-a/gpuUsed": "6", "tenant=dash-b/gpuUsed": "4", "tenant=dash-c/gpuUsed": "1",
		"tenant=dash-b/pendingPods": "1", "tenant=dash-b/pending": "1 QuotaExhausted", "tenant=dash-a/pendingPods": "0",
	} {
		if got, ok := fields[key]; !ok || got != want {
			t.Errorf("page: %s = %q (present %v), want %q", key, got, ok, want)
		}
	}
	if used, ok := api.quotas["dash-b"]; ok {
		if got := fields["tenant=dash-b,pool=shared/gpuUsed"]; got != used.used {
			t.Errorf("page: dash-b uses %s in shared, its TenantQuota's status %s", got, used.used)
		}
	}
	if _, ok := fields["tenant=dash-c,pool=shared/gpuBorrowingLimit"]; ok {
		t.Errorf("page: dash-c's quota sets no borrowing limit, the page shows one")
	}
	if _, ok := fields["tenant=dash-b,pool=gpu-a/gpuUsed"]; ok {
		t.Errorf("page: dash-b shows a use of dash-a's dedicated pool")
	}
	if t.Failed() {
		t.Logf("fields the page rendered: %v", fields)
	}

	// The screenshot is a real 1280×900 image, not a blank page.
	shot := filepath.Join(artifacts(t), "dashboard.png")
	browse(t, chromium, profile, "--screenshot="+shot, "--window-size=1280,900", "--hide-scrollbars", url)
	checkScreenshot(t, shot, 1280, 900)
	t.Logf("dashboard screenshot: %s", shot)
}

// findChromium returns headless Chromium's path; the test needs it.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed; .ci/run installs it (Debian package chromium): the dashboard is tested in a real browser")
	return ""
}

// apiView is what the management plane's API says: NodePool status
// (GPU allocatable, requested; nodes) and TenantQuotas (GPU nominal,
// borrowing limit, used).
type apiView struct {
	pools  []struct{ name, allocatable, requested, nodes string }
	quotas map[string]struct{ nominal, borrowingLimit, used string }
}

func readAPI(t *testing.T, m *machine) apiView {
	t.Helper()
	var nodePools struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct {
				Nodes       int
				Allocatable map[string]string
				Requested   map[string]string
			}
		}
	}
	decode(t, m.must(m.kubectl("--context=kplex-root", "get", "nodepools", "-o", "json")), &nodePools)
	var quotas struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct {
				Pools []struct {
					Name      string
					Resources []struct {
						Name           string
						NominalQuota   quantity
						BorrowingLimit quantity
					}
				}
			}
			Status struct {
				Pools []struct {
					Name string
					Used map[string]string
				}
			}
		}
	}
	decode(t, m.must(m.kubectl("--context=kplex-root", "get", "tenantquotas", "-o", "json")), &quotas)
	var v apiView
	for _, p := range nodePools.Items {
		v.pools = append(v.pools, struct{ name, allocatable, requested, nodes string }{
			p.Metadata.Name, orZero(p.Status.Allocatable["nvidia.com/gpu"]), orZero(p.Status.Requested["nvidia.com/gpu"]), strconv.Itoa(p.Status.Nodes),
		})
	}
	v.quotas = map[string]struct{ nominal, borrowingLimit, used string }{}
	for _, q := range quotas.Items {
		for _, p := range q.Spec.Pools {
			if p.Name != "shared" {
				continue
			}
			for _, r := range p.Resources {
				if r.Name == "nvidia.com/gpu" {
					e := v.quotas[q.Metadata.Name]
					e.nominal, e.borrowingLimit = string(r.NominalQuota), string(r.BorrowingLimit)
					v.quotas[q.Metadata.Name] = e
				}
			}
		}
		for _, p := range q.Status.Pools {
			if p.Name == "shared" {
				e := v.quotas[q.Metadata.Name]
				e.used = orZero(p.Used["nvidia.com/gpu"])
				v.quotas[q.Metadata.Name] = e
			}
		}
	}
	if len(v.pools) != 2 || v.quotas["dash-b"].nominal != "2" || v.quotas["dash-b"].borrowingLimit != "2" || v.quotas["dash-c"].nominal != "4" {
		t.Fatalf("the API's pools and quotas are not the test's: %+v", v)
	}
	return v
}

// quantity is a resource.Quantity as kubectl prints it: a string, or a
// number as written in the applied manifest.
type quantity string

func (q *quantity) UnmarshalJSON(b []byte) error {
	*q = quantity(strings.Trim(string(b), `"`))
	return nil
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func decode(t *testing.T, s string, into any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), into); err != nil {
		t.Fatalf("decoding %T: %v\n%s", into, err, s)
	}
}

func names(pools []topPool) string {
	var s []string
	for _, p := range pools {
		s = append(s, p.Name)
	}
	return strings.Join(s, ",")
}

// checkPools compares pools with the fleet the test made and with the
// NodePools' status.
func checkPools(t *testing.T, what string, pools []topPool, api apiView) {
	t.Helper()
	if got := names(pools); got != "gpu-a,shared," {
		t.Errorf("%s: pools %q, want gpu-a, shared, then the nodes in no pool", what, got)
		return
	}
	want := []topPool{
		{Name: "gpu-a", Mode: "dedicated", Nodes: 1, ReadyNodes: 1, GPUCapacity: 8, GPUAllocatable: 8, GPURequested: 6, CPUAllocatableMillis: 8000, CPURequestedMillis: 1000, MemoryRequestedBytes: 2 << 30},
		{Name: "shared", Mode: "shared", Nodes: 2, ReadyNodes: 2, GPUCapacity: 8, GPUAllocatable: 8, GPURequested: 5, CPUAllocatableMillis: 16000, CPURequestedMillis: 1500, MemoryRequestedBytes: 3 << 30},
		{Name: "", Nodes: 1, ReadyNodes: 1, CPUAllocatableMillis: 8000},
	}
	for i := range want {
		if pools[i] != want[i] {
			t.Errorf("%s: pool %q\n got %+v\nwant %+v", what, want[i].Name, pools[i], want[i])
		}
	}
	for _, p := range api.pools {
		i := slices.IndexFunc(pools, func(q topPool) bool { return q.Name == p.name })
		if got := fmt.Sprintf("%d %d %d", pools[i].GPUAllocatable, pools[i].GPURequested, pools[i].Nodes); got != p.allocatable+" "+p.requested+" "+p.nodes {
			t.Errorf("%s: pool %s GPU allocatable, requested, nodes %s; its status says %s %s %s", what, p.name, got, p.allocatable, p.requested, p.nodes)
		}
	}
}

// checkTenants compares tenants with the pods and quotas the test made.
func checkTenants(t *testing.T, what string, tenants []topTenant) {
	t.Helper()
	got := map[string]string{}
	for _, tn := range tenants {
		s := fmt.Sprintf("pods %d gpu %d pending %d", tn.Pods, tn.GPUUsed, tn.PendingPods)
		for _, p := range tn.Pending {
			s += fmt.Sprintf(" [%d %s %d]", p.Pods, p.Reason, p.GPURequested)
		}
		for _, p := range tn.Pools {
			s += fmt.Sprintf(" %s: pods %d gpu %d quota %s+%s borrowed %d", p.Pool, p.Pods, p.GPUUsed, ptr(p.GPUNominal), ptr(p.GPUBorrowingLimit), p.GPUBorrowed)
		}
		got[tn.Name] = s
	}
	want := map[string]string{
		"dash-a": "pods 2 gpu 6 pending 0 gpu-a: pods 2 gpu 6 quota -+- borrowed 0",
		"dash-b": "pods 2 gpu 4 pending 1 [1 QuotaExhausted 1] shared: pods 2 gpu 4 quota 2+2 borrowed 2",
		"dash-c": "pods 1 gpu 1 pending 0 shared: pods 1 gpu 1 quota 4+- borrowed 0",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: tenant %s\n got %s\nwant %s", what, name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: tenants %v, want dash-a, dash-b and dash-c only", what, got)
	}
}

func ptr(p *int64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatInt(*p, 10)
}

// dashboard starts `kplex dashboard` with args and returns the URL it
// prints, which carries its token, and the token; at the end of the test
// it is stopped with Ctrl-C and must exit 0.
func (m *machine) dashboard(args ...string) (string, string) {
	m.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "kplex"), append([]string{"dashboard"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+m.kubeconfig)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	exited := make(chan error, 1)
	urls := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			urls <- s.Text()
		}
		for s.Scan() {
		}
		exited <- cmd.Wait()
	}()
	m.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			if err != nil {
				m.t.Errorf("kplex dashboard after Ctrl-C: %v, want exit 0\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			m.t.Errorf("kplex dashboard did not stop within 15 s of Ctrl-C")
		}
	})
	select {
	case u := <-urls:
		parsed, err := neturl.Parse(u)
		if err != nil || !strings.HasPrefix(u, "http://127.0.0.1:") || parsed.Path != "/" || len(parsed.Query().Get("token")) < 16 {
			m.t.Fatalf("kplex dashboard printed %q, want its URL with a token (http://127.0.0.1:<port>/?token=…)", u)
		}
		return u, parsed.Query().Get("token")
	case err := <-exited:
		m.t.Fatalf("kplex dashboard exited: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		m.t.Fatalf("kplex dashboard printed no URL within 30 s\n%s", stderr.String())
	}
	return "", ""
}

// browse runs headless Chromium on url with args (--dump-dom, or
// --screenshot=…) and returns its stdout.
func browse(t *testing.T, chromium, profile string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile, "--virtual-time-budget=10000",
	}, args...)...)
	cmd.Dir = profile
	cmd.WaitDelay = 10 * time.Second // its children may hold the pipes
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.String(), 4000))
	}
	return stdout.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

var (
	elementRE   = regexp.MustCompile(`<[a-z0-9]+((?:\s+[a-zA-Z-]+="[^"]*")*)\s*>([^<]*)`)
	attributeRE = regexp.MustCompile(`([a-zA-Z-]+)="([^"]*)"`)
)

// domFields reads the page's values: every element with data-field holds
// one as its text, named by its data-tenant and data-pool. Keys are
// "tenant=T,pool=P/field", either part absent when the element has no
// such attribute.
func domFields(dom string) map[string]string {
	fields := map[string]string{}
	for _, el := range elementRE.FindAllStringSubmatch(dom, -1) {
		attrs := map[string]string{}
		for _, a := range attributeRE.FindAllStringSubmatch(el[1], -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		field, ok := attrs["data-field"]
		if !ok {
			continue
		}
		var id []string
		if v, ok := attrs["data-tenant"]; ok {
			id = append(id, "tenant="+v)
		}
		if v, ok := attrs["data-pool"]; ok {
			id = append(id, "pool="+v)
		}
		fields[strings.Join(id, ",")+"/"+field] = strings.TrimSpace(html.UnescapeString(el[2]))
	}
	return fields
}

// artifacts is where files a person looks at after the test go: they
// outlive it ($KPLEX_E2E_ARTIFACTS, else a new directory under $TMPDIR).
func artifacts(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("KPLEX_E2E_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir, err := os.MkdirTemp("", "kplex-e2e-dashboard-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkScreenshot decodes the PNG at path and checks its size and that it
// is not one colour.
func checkScreenshot(t *testing.T, path string, width, height int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot %s is not a PNG: %v", path, err)
	}
	if got := img.Bounds().Size(); got != (image.Point{X: width, Y: height}) {
		t.Errorf("the screenshot is %v, want %dx%d", got, width, height)
	}
	colours := map[[4]uint32]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 3 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 3 {
			r, g, b, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, b, a}] = true
		}
	}
	if len(colours) < 16 {
		t.Errorf("the screenshot %s has %d colours: a blank page?", path, len(colours))
	}
}
