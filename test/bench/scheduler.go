package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/kubeconfig"
	"github.com/kplex/kplex/client/tenants"
)

// SchedulerOptions shape `make bench-scheduler`.
type SchedulerOptions struct {
	Tenants, PodsPerTenant, Nodes int
	// DedicatedTenants each get a dedicated pool of DedicatedNodes nodes;
	// the other nodes make SharedPools shared pools.
	DedicatedTenants, DedicatedNodes, SharedPools int
}

func defaultSchedulerOptions() SchedulerOptions {
	return SchedulerOptions{Tenants: 1000, PodsPerTenant: 10, Nodes: 5000, DedicatedTenants: 50, DedicatedNodes: 10, SharedPools: 5}
}

// schedulingRun is what one scheduler did with the pods.
type schedulingRun struct {
	pods       int
	elapsed    time.Duration // first binding to last
	perSecond  []float64     // pods bound in each whole second
	p50, p99   time.Duration // scheduling latency (upstream's SLI histogram)
	violations int           // pods bound outside the pools their tenant may use
}

func (r *schedulingRun) throughputP50() float64 {
	if len(r.perSecond) == 0 {
		return float64(r.pods) / r.elapsed.Seconds()
	}
	s := slices.Clone(r.perSecond)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchTenant names the i-th tenant.
func benchTenant(i int) string { return fmt.Sprintf("t-%04d", i) }

// layout is the nodes and pools both runs share: node i's labels.
func (o SchedulerOptions) nodeLabels(i int) map[string]string {
	labels := map[string]string{corev1.LabelHostname: fmt.Sprintf("node-%05d", i)}
	dedicated := o.DedicatedTenants * o.DedicatedNodes
	if i < dedicated {
		labels[schedulingv1alpha1.PoolLabel] = fmt.Sprintf("ded-%04d", i/o.DedicatedNodes)
	} else {
		labels[schedulingv1alpha1.PoolLabel] = fmt.Sprintf("shared-%d", (i-dedicated)%o.SharedPools)
	}
	return labels
}

// benchPod is the j-th pod of tenant i: a small request, and for a tenant
// with a dedicated pool, a selector of it.
func (o SchedulerOptions) benchPod(i, j int, namespace string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", j), Namespace: namespace},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: new(false),
			Containers: []corev1.Container{{Name: "web", Image: "busybox", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			}}},
		},
	}
	if i < o.DedicatedTenants {
		p.Spec.NodeSelector = map[string]string{schedulingv1alpha1.PoolLabel: fmt.Sprintf("ded-%04d", i)}
	}
	return p
}

func runSchedulerBench(binDir string, o SchedulerOptions) error {
	work, err := os.MkdirTemp("", "kplex-bench-scheduler-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	progress("kplex: %d tenants × %d pods onto %d nodes (%d dedicated pools of %d, %d shared pools)",
		o.Tenants, o.PodsPerTenant, o.Nodes, o.DedicatedTenants, o.DedicatedNodes, o.SharedPools)
	kplex, err := benchKplexScheduler(binDir, work, o)
	if err != nil {
		return fmt.Errorf("kplex: %w", err)
	}
	progress("vanilla: kube-scheduler, one namespace, the same pods and nodes")
	vanilla, err := benchVanillaScheduler(binDir, work, o)
	if err != nil {
		return fmt.Errorf("vanilla: %w", err)
	}
	printSchedulerTable(os.Stdout, o, kplex, vanilla)
	return nil
}

func printSchedulerTable(w io.Writer, o SchedulerOptions, kplex, vanilla *schedulingRun) {
	ratio := kplex.throughputP50() / vanilla.throughputP50()
	fmt.Fprintf(w, "\nkplex bench-scheduler: %d tenants × %d pods = %d pods onto %d nodes, %d CPUs, %s; baseline = vanilla kube-scheduler (same module, same run)\n\n",
		o.Tenants, o.PodsPerTenant, o.Tenants*o.PodsPerTenant, o.Nodes, runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	rows := [][]string{
		{"figure", "kplex-scheduler", "vanilla kube-scheduler", "ratio", "target"},
		{"throughput p50 (pods bound per second)", fmt.Sprintf("%.0f pods/s", kplex.throughputP50()), fmt.Sprintf("%.0f pods/s", vanilla.throughputP50()), fmt.Sprintf("%.2f×", ratio), "≥ 0.9×: " + verdict(ratio >= 0.9)},
		{"throughput overall (first to last binding)", fmt.Sprintf("%.0f pods/s in %s", float64(kplex.pods)/kplex.elapsed.Seconds(), kplex.elapsed.Round(time.Millisecond)), fmt.Sprintf("%.0f pods/s in %s", float64(vanilla.pods)/vanilla.elapsed.Seconds(), vanilla.elapsed.Round(time.Millisecond)), fmt.Sprintf("%.2f×", (float64(kplex.pods)/kplex.elapsed.Seconds())/(float64(vanilla.pods)/vanilla.elapsed.Seconds())), ""},
		{"pod scheduling latency p50 (SLI)", ms(kplex.p50), ms(vanilla.p50), "", ""},
		{"pod scheduling latency p99 (SLI)", ms(kplex.p99), ms(vanilla.p99), "", ""},
		{"pods bound outside their tenant's pools", strconv.Itoa(kplex.violations), "n/a (no tenants)", "", "0: " + verdict(kplex.violations == 0)},
	}
	printRows(w, rows)
}

func printRows(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, r := range rows {
		for i, c := range r {
			fmt.Fprintf(w, "%-*s", widths[i]+2, c)
			if i < len(r)-1 {
				fmt.Fprint(w, "|")
			}
		}
		fmt.Fprintln(w)
	}
}

func benchKplexScheduler(binDir, work string, o SchedulerOptions) (*schedulingRun, error) {
	ctx := context.Background()
	etcdServer, etcdArgs, err := startEtcd(ctx, filepath.Join(work, "kplex-etcd"))
	if err != nil {
		return nil, err
	}
	defer etcdServer.Close()
	// Unthrottled on both sides: the schedulers are measured, not the
	// servers' limits.
	cp, err := startKplexAPIServer(binDir, filepath.Join(work, "kplex"), filepath.Join(work, "kplex-apiserver.log"), etcdArgs,
		"--max-requests-inflight=0", "--max-mutating-requests-inflight=0", "--enable-priority-and-fairness=false", "--max-requests-inflight-per-tenant=0")
	if err != nil {
		return nil, err
	}
	defer cp.stop()
	admin := cp.admin
	admin.QPS, admin.Burst = -1, -1
	if err := waitReady(admin); err != nil {
		return nil, err
	}
	root, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(admin)
	if err != nil {
		return nil, err
	}
	tc, err := tenants.New(admin)
	if err != nil {
		return nil, err
	}
	for i := range o.DedicatedTenants {
		if err := createPool(ctx, dyn, fmt.Sprintf("ded-%04d", i), schedulingv1alpha1.Dedicated, benchTenant(i)); err != nil {
			return nil, err
		}
	}
	for i := range o.SharedPools {
		if err := createPool(ctx, dyn, fmt.Sprintf("shared-%d", i), schedulingv1alpha1.Shared); err != nil {
			return nil, err
		}
	}
	if err := createNodes(ctx, root, o); err != nil {
		return nil, err
	}
	progress("kplex: %d nodes registered; creating %d tenants and their pods", o.Nodes, o.Tenants)
	names := make([]string, o.Tenants)
	for i := range names {
		names[i] = benchTenant(i)
	}
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	if err := parallel(names, 8, func(t string) error {
		if _, err := tc.Create(ctx, t); err != nil {
			return err
		}
		if err := tc.WaitServing(ctx, t); err != nil {
			return err
		}
		c, err := kubernetes.NewForConfig(tenantConfig(admin, t))
		if err != nil {
			return err
		}
		if err := ensureDefaultServiceAccount(ctx, c); err != nil {
			return err
		}
		for j := range o.PodsPerTenant {
			if _, err := c.CoreV1().Pods("default").Create(ctx, o.benchPod(index[t], j, "default"), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("%s: %w", t, err)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	cross, err := kubernetes.NewForConfig(crosstenant.Config(admin))
	if err != nil {
		return nil, err
	}
	// Which pool each node is in, to check the fence held.
	poolOf := map[string]string{}
	for i := range o.Nodes {
		poolOf[fmt.Sprintf("node-%05d", i)] = o.nodeLabels(i)[schedulingv1alpha1.PoolLabel]
	}
	allowed := func(p *corev1.Pod) bool {
		pool := poolOf[p.Spec.NodeName]
		if !strings.HasPrefix(pool, "ded-") {
			return true
		}
		i := index[crosstenant.TenantOf(p)]
		return pool == fmt.Sprintf("ded-%04d", i) && i < o.DedicatedTenants
	}
	progress("kplex: %d pods pending; starting kplex-scheduler", o.Tenants*o.PodsPerTenant)
	return runScheduler(filepath.Join(binDir, "kplex-scheduler"), work, admin, cross, o.Tenants*o.PodsPerTenant, allowed)
}

func benchVanillaScheduler(binDir, work string, o SchedulerOptions) (*schedulingRun, error) {
	ctx := context.Background()
	dir := filepath.Join(work, "vanilla")
	cp, err := startDedicated(binDir, dir, "--max-requests-inflight=0", "--max-mutating-requests-inflight=0", "--enable-priority-and-fairness=false")
	if err != nil {
		return nil, err
	}
	defer cp.stop()
	admin := cp.admin
	admin.QPS, admin.Burst = -1, -1
	if err := waitReady(admin); err != nil {
		return nil, err
	}
	root, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, err
	}
	if err := createNodes(ctx, root, o); err != nil {
		return nil, err
	}
	if err := ensureDefaultServiceAccount(ctx, root); err != nil {
		return nil, err
	}
	progress("vanilla: %d nodes registered; creating %d pods in one namespace", o.Nodes, o.Tenants*o.PodsPerTenant)
	names := make([]string, o.Tenants)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	if err := parallel(names, 8, func(s string) error {
		i, _ := strconv.Atoi(s)
		for j := range o.PodsPerTenant {
			p := o.benchPod(i, j, "default")
			p.Name = fmt.Sprintf("%s-web-%d", benchTenant(i), j)
			if _, err := root.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	progress("vanilla: %d pods pending; starting kube-scheduler", o.Tenants*o.PodsPerTenant)
	return runScheduler(filepath.Join(binDir, "kube-scheduler"), dir, admin, root, o.Tenants*o.PodsPerTenant, func(*corev1.Pod) bool { return true })
}

// runScheduler starts the scheduler binary against admin's server (its
// log and kubeconfig in dir) and measures it binding total pods, which
// client lists.
func runScheduler(binary, dir string, admin *rest.Config, client kubernetes.Interface, total int, allowed func(*corev1.Pod) bool) (*schedulingRun, error) {
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "scheduler.kubeconfig")
	if err := kubeconfig.WriteFile(path, admin); err != nil {
		return nil, err
	}
	return measureScheduling(client, total, allowed, metricsPort, func() (*process, error) {
		return start(filepath.Join(dir, filepath.Base(binary)+".log"), binary, schedulerArgs(path, metricsPort)...)
	})
}

func schedulerArgs(kubeconfig string, port int) []string {
	return []string{"--kubeconfig=" + kubeconfig, "--leader-elect=false", "--secure-port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1", "--authorization-always-allow-paths=/metrics,/healthz", "--authentication-skip-lookup=true", "--kube-api-qps=5000", "--kube-api-burst=5000"}
}

func ensureDefaultServiceAccount(ctx context.Context, c kubernetes.Interface) error {
	_, err := c.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

func createPool(ctx context.Context, dyn dynamic.Interface, name string, mode schedulingv1alpha1.PoolMode, tenantNames ...string) error {
	spec := map[string]any{"mode": string(mode)}
	if len(tenantNames) > 0 {
		ts := make([]any, len(tenantNames))
		for i, t := range tenantNames {
			ts[i] = t
		}
		spec["tenants"] = ts
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": schedulingv1alpha1.SchemeGroupVersion.String(), "kind": "NodePool",
		"metadata": map[string]any{"name": name}, "spec": spec,
	}}
	_, err := dyn.Resource(schedulingv1alpha1.NodePoolsResource).Create(ctx, u, metav1.CreateOptions{})
	return err
}

// createNodes registers o.Nodes Ready nodes of 32 CPUs and 128 GiB.
func createNodes(ctx context.Context, c kubernetes.Interface, o SchedulerOptions) error {
	ids := make([]string, o.Nodes)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi"), corev1.ResourcePods: resource.MustParse("110")}
	return parallel(ids, 16, func(s string) error {
		i, _ := strconv.Atoi(s)
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%05d", i), Labels: o.nodeLabels(i)}}
		n, err := c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if len(n.Spec.Taints) > 0 {
			if n, err = c.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(`{"spec":{"taints":null}}`), metav1.PatchOptions{}); err != nil {
				return err
			}
		}
		n.Status.Capacity, n.Status.Allocatable = capacity, capacity
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
		_, err = c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// measureScheduling watches pods (client lists all of them: one tenant's
// or every tenant's) while the scheduler starts, until total are bound.
func measureScheduling(client kubernetes.Interface, total int, allowed func(*corev1.Pod) bool, metricsPort int, startScheduler func() (*process, error)) (*schedulingRun, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	w, err := watchFrom(ctx, client.CoreV1().Pods(""), metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	sched, err := startScheduler()
	if err != nil {
		return nil, err
	}
	defer sched.stop()
	run := &schedulingRun{}
	bound := map[types.UID]bool{}
	var times []time.Time
	for len(bound) < total {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, fmt.Errorf("the pod watch ended with %d of %d bound", len(bound), total)
			}
			if ev.Type != watch.Modified {
				continue
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || p.Spec.NodeName == "" || bound[p.UID] {
				continue
			}
			bound[p.UID] = true
			times = append(times, time.Now())
			if !allowed(p) {
				run.violations++
			}
			if len(bound)%max(1, total/10) == 0 {
				progress("%d of %d pods bound", len(bound), total)
			}
		case <-time.After(2 * time.Minute):
			return nil, fmt.Errorf("no pod bound for 2 minutes, %d of %d bound: see the scheduler's log", len(bound), total)
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d pods bound after 30 minutes", len(bound), total)
		}
	}
	run.pods = total
	run.elapsed = times[len(times)-1].Sub(times[0])
	first := times[0]
	bins := map[int]int{}
	for _, t := range times {
		bins[int(t.Sub(first)/time.Second)]++
	}
	whole := int(run.elapsed / time.Second)
	for s := 0; s < whole; s++ {
		run.perSecond = append(run.perSecond, float64(bins[s]))
	}
	run.p50, run.p99, err = sliQuantiles(metricsPort)
	if err != nil {
		return nil, err
	}
	return run, nil
}

// sliQuantiles reads upstream's pod scheduling SLI histogram (queue entry
// to binding, gates excluded) from the scheduler's /metrics and returns
// its p50 and p99, interpolated within their buckets.
func sliQuantiles(port int) (p50, p99 time.Duration, err error) {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second} //nolint:gosec // the bench's own scheduler on loopback
	resp, err := client.Get("https://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	buckets := map[float64]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "scheduler_pod_scheduling_sli_duration_seconds_bucket{") {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.LastIndex(line, " ")
		if i < 0 || j < 0 {
			continue
		}
		leStr := line[i+4:]
		leStr = leStr[:strings.Index(leStr, `"`)]
		le := math.Inf(1)
		if leStr != "+Inf" {
			if le, err = strconv.ParseFloat(leStr, 64); err != nil {
				continue
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[j+1:]), 64)
		if err != nil {
			continue
		}
		buckets[le] += v
	}
	if len(buckets) == 0 {
		return 0, 0, fmt.Errorf("no scheduler_pod_scheduling_sli_duration_seconds in the scheduler's metrics")
	}
	les := make([]float64, 0, len(buckets))
	for le := range buckets {
		les = append(les, le)
	}
	slices.Sort(les)
	count := buckets[math.Inf(1)]
	// As Prometheus's histogram_quantile: linear within the bucket.
	quantile := func(q float64) time.Duration {
		rank := q * count
		lower, below := 0.0, 0.0
		for _, le := range les {
			if buckets[le] >= rank {
				if math.IsInf(le, 1) {
					return time.Duration(lower * float64(time.Second))
				}
				in := buckets[le] - below
				frac := 1.0
				if in > 0 {
					frac = (rank - below) / in
				}
				return time.Duration((lower + (le-lower)*frac) * float64(time.Second))
			}
			lower, below = le, buckets[le]
		}
		return 0
	}
	return quantile(0.5), quantile(0.99), nil
}
