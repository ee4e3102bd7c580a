package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	tenancyv1alpha1 "github.com/kplex/kplex/apis/tenancy/v1alpha1"
	"github.com/kplex/kplex/client/kubeconfig"
	"github.com/kplex/kplex/client/tenants"
	"github.com/kplex/kplex/podsecurity"
	"github.com/kplex/kplex/test/containerd"
	"github.com/kplex/kplex/test/images"
)

// NodeAgentOptions shape `make bench-nodeagent`.
type NodeAgentOptions struct {
	BinDir         string
	ApiserverFlags []string
	// SimPods pods are bound at creation to one agent with the simulated
	// runtime, created back to back by SimWorkers clients.
	SimPods, SimWorkers int
	// ContainerdPods pods are bound to one agent over a private containerd,
	// created ContainerdBatch at a time, each batch once the last runs.
	ContainerdPods, ContainerdBatch int
	// Nodes simulated nodes are run by one agent process; their Leases are
	// sampled every Sample over Window.
	Nodes                        int
	Window, Sample               time.Duration
	RenewInterval, LeaseDuration time.Duration
	RegisterTimeout              time.Duration
	// Baseline runs an agent with one simulated node first, for its RSS.
	Baseline bool
	// Dump, when set, is a CSV file of every lease renewal seen.
	Dump string
}

// addNodeAgentFlags binds the --nodeagent bench's flags.
func addNodeAgentFlags(fs *flag.FlagSet) *NodeAgentOptions {
	o := &NodeAgentOptions{SimPods: 100, SimWorkers: 10, ContainerdPods: 20, ContainerdBatch: 5, Nodes: 5000,
		Window: time.Minute, Sample: 5 * time.Second, RenewInterval: 10 * time.Second, LeaseDuration: 40 * time.Second,
		RegisterTimeout: 10 * time.Minute, Baseline: true}
	fs.IntVar(&o.SimPods, "nodeagent-pods", o.SimPods, "--nodeagent: pods bound to one agent with the simulated runtime (0 skips; at most 110, the agent's max-pods)")
	fs.IntVar(&o.SimWorkers, "nodeagent-parallel", o.SimWorkers, "--nodeagent: clients creating the simulated-runtime pods back to back")
	fs.IntVar(&o.ContainerdPods, "nodeagent-containerd-pods", o.ContainerdPods, "--nodeagent: pods bound to one agent over a private containerd (0 skips)")
	fs.IntVar(&o.ContainerdBatch, "nodeagent-containerd-batch", o.ContainerdBatch, "--nodeagent: containerd pods created at once; the next batch once these run")
	fs.IntVar(&o.Nodes, "nodeagent-nodes", o.Nodes, "--nodeagent: simulated nodes of one agent process, for registration, heartbeats and RSS (0 skips)")
	fs.DurationVar(&o.Window, "nodeagent-window", o.Window, "--nodeagent: how long the Leases of the simulated nodes are watched once all are Ready")
	fs.DurationVar(&o.Sample, "nodeagent-sample", o.Sample, "--nodeagent: how often every Lease is listed in the window (at most half the renew interval)")
	fs.DurationVar(&o.RenewInterval, "nodeagent-renew-interval", o.RenewInterval, "--nodeagent: the scale agent's --node-lease-renew-interval")
	fs.DurationVar(&o.LeaseDuration, "nodeagent-lease-duration", o.LeaseDuration, "--nodeagent: the scale agent's --node-lease-duration")
	fs.DurationVar(&o.RegisterTimeout, "nodeagent-register-timeout", o.RegisterTimeout, "--nodeagent: how long the simulated nodes may take to be Ready")
	fs.BoolVar(&o.Baseline, "nodeagent-baseline", o.Baseline, "--nodeagent: first run an agent of one simulated node, for its RSS")
	fs.StringVar(&o.Dump, "nodeagent-dump", o.Dump, "--nodeagent: write every lease renewal seen (lease, previous and new renewTime, gap) to this CSV file")
	return o
}

// podStartRun is pods bound at creation and timed until they started
// (Running, or Ready: see podKind).
type podStartRun struct {
	skipped string // why there are no figures
	pods    int
	how     string
	// toStarted is, per pod, the start of its create call to the arrival of
	// the watch event showing it started.
	toStarted []time.Duration
	creates   []time.Duration // the create calls
	elapsed   time.Duration   // first create to last started
	notRun    int             // pods not started within the timeout
	agentErrs logErrors
}

// scaleRun is one agent process running many simulated nodes.
type scaleRun struct {
	skipped  string
	nodes    int
	interval time.Duration
	duration time.Duration
	window   time.Duration
	sample   time.Duration

	registered, ready       int
	allRegistered, allReady time.Duration // agent start to the last node
	readyTimes              []time.Duration
	leases                  int // of the agent's nodes, seen in the window
	onTime                  int // leases never older than the lease duration
	renewed                 int // leases renewed at least once in the window
	gaps                    []time.Duration
	windowGaps              []time.Duration // gaps whose first renewal was in the window
	worst                   []time.Duration // per lease: longest gap or age seen
	samples                 int
	listTime                []time.Duration
	rss, rss1               int64
	peakRSS                 int64 // the agent's, sampled while nodes registered
	stopTime                time.Duration
	markedNotReady          int // nodes not Ready once the agent stopped
	registerCPU, windowCPU  cpuUse
	apiserverRSS            int64
	agentErrs, baselineErrs logErrors
}

// logErrors counts a klog log's error and warning lines.
type logErrors struct {
	errors, warnings int
	// stopping are the errors logged once the agent was told to stop.
	stopping int
	first    []string // the first distinct error messages
}

func runNodeAgentBench(o *NodeAgentOptions) error {
	work, err := os.MkdirTemp("", "kplex-bench-nodeagent-")
	if err != nil {
		return err
	}
	keep := os.Getenv("KPLEX_BENCH_KEEP") != ""
	if !keep {
		defer os.RemoveAll(work)
	}
	ctx := context.Background()
	etcdServer, etcdArgs, err := startEtcd(ctx, filepath.Join(work, "kplex-etcd"))
	if err != nil {
		return err
	}
	defer etcdServer.Close()
	cp, err := startKplexAPIServer(o.BinDir, filepath.Join(work, "kplex"), filepath.Join(work, "kplex-apiserver.log"), etcdArgs, o.ApiserverFlags...)
	if err != nil {
		return err
	}
	defer cp.stop()
	admin := rest.CopyConfig(cp.admin)
	admin.QPS, admin.Burst = -1, -1
	if err := waitReady(admin); err != nil {
		return err
	}
	kc := filepath.Join(work, "nodeagent.kubeconfig")
	if err := kubeconfig.WriteFile(kc, cp.admin); err != nil {
		return err
	}
	b := &nodeAgentBench{opts: o, work: work, admin: admin, kubeconfig: kc, apiserver: cp.apiserver}
	if b.root, err = kubernetes.NewForConfig(protobuf(admin)); err != nil {
		return err
	}
	if b.tc, err = tenants.New(admin); err != nil {
		return err
	}

	sim := &podStartRun{skipped: "--nodeagent-pods=0"}
	if o.SimPods > 0 {
		progress("simulated runtime: %d pods bound at creation to one agent, created by %d clients", o.SimPods, o.SimWorkers)
		if sim, err = b.simulatedPods(ctx); err != nil {
			return fmt.Errorf("simulated runtime: %w", err)
		}
	}
	ctr := &podStartRun{skipped: "--nodeagent-containerd-pods=0"}
	if o.ContainerdPods > 0 {
		if why := containerd.Available(); why != nil {
			ctr.skipped = "containerd unavailable: " + strings.ReplaceAll(why.Error(), "\n", "; ")
		} else {
			progress("containerd: %d pods bound at creation, %d at a time", o.ContainerdPods, o.ContainerdBatch)
			if ctr, err = b.containerdPods(ctx); err != nil {
				// A broken containerd is a finding, not a number: say so in the
				// table and go on with the scale part.
				progress("containerd: %v", err)
				ctr = &podStartRun{skipped: "failed: " + strings.ReplaceAll(err.Error(), "\n", "; ")}
			}
		}
	}
	scale := &scaleRun{skipped: "--nodeagent-nodes=0"}
	if o.Nodes > 0 {
		progress("scale: one agent process with %d simulated nodes", o.Nodes)
		if scale, err = b.scale(ctx); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	printNodeAgentTable(os.Stdout, o, sim, ctr, scale)
	if keep {
		progress("logs kept in %s", work)
	}
	return nil
}

type nodeAgentBench struct {
	opts       *NodeAgentOptions
	work       string
	admin      *rest.Config
	kubeconfig string
	apiserver  *process
	root       kubernetes.Interface
	tc         *tenants.Client
}

func protobuf(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return cfg
}

// startAgent runs bin/kplex-nodeagent against the management plane, its log
// (stderr) in <work>/<name>.log, its root directory in <work>/<name> and
// its device-plugin socket in <work>/<name>-device-plugins (not the host's).
func (b *nodeAgentBench) startAgent(name string, extra ...string) (*process, string, error) {
	logPath := filepath.Join(b.work, name+".log")
	args := append([]string{"--kubeconfig", b.kubeconfig, "--hostname-override", name, "--port", "0",
		"--root-dir", filepath.Join(b.work, name), "--device-plugin-dir", filepath.Join(b.work, name+"-device-plugins"),
		"--node-ip", "127.0.0.1"}, extra...)
	p, err := start(logPath, filepath.Join(b.opts.BinDir, "kplex-nodeagent"), args...)
	return p, logPath, err
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitNodeReady waits for node name to be registered and Ready, or for the
// agent to exit.
func waitNodeReady(ctx context.Context, root kubernetes.Interface, name string, agent *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if agent.cmd.ProcessState != nil || !alive(agent) {
			return fmt.Errorf("the agent exited before node %s was Ready: see %s", name, agent.log.Name())
		}
		n, err := root.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil && nodeReady(n) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("node %s not Ready within %s: see %s", name, timeout, agent.log.Name())
}

func alive(p *process) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return false
	}
	state, _ := procStatus(p.cmd.Process.Pid, "State:")
	return !strings.HasPrefix(state, "Z")
}

func procStatus(pid int, field string) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// cpuUse is the CPU the agent, the apiserver and this process (which runs
// etcd) used over a span, in cores.
type cpuUse struct{ agent, apiserver, bench float64 }

// cpuMeter starts measuring cpuUse; calling the result ends it.
func cpuMeter(agent, apiserver *process) func() cpuUse {
	pids := []int{agent.cmd.Process.Pid, apiserver.cmd.Process.Pid, os.Getpid()}
	var before [3]float64
	for i, pid := range pids {
		before[i], _ = cpuSeconds(pid)
	}
	began := time.Now()
	return func() cpuUse {
		var after [3]float64
		for i, pid := range pids {
			after[i], _ = cpuSeconds(pid)
		}
		d := time.Since(began).Seconds()
		return cpuUse{(after[0] - before[0]) / d, (after[1] - before[1]) / d, (after[2] - before[2]) / d}
	}
}

func (c cpuUse) String() string {
	return fmt.Sprintf("%.2f, %.2f, %.2f", c.agent, c.apiserver, c.bench)
}

// cpuSeconds is the user and system CPU time process pid has used.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command, which is in parentheses: state is
	// field 3, utime 14 and stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return (u + st) / 100, nil // USER_HZ is 100 on Linux
}

// benchTenantClient creates tenant name, waits for it to serve, and gives
// its default namespace a default ServiceAccount (no controller manager
// runs to make it; the ServiceAccount admission plugin wants it).
func (b *nodeAgentBench) benchTenantClient(ctx context.Context, name string) (kubernetes.Interface, error) {
	// hostNetwork pods are among those timed: the bench's tenant is one the
	// operator trusts (Pod Security level privileged), on its own node.
	if _, err := b.tc.CreateWithSpec(ctx, name, tenancyv1alpha1.TenantSpec{PodSecurity: podsecurity.Privileged}); err != nil {
		return nil, err
	}
	if err := b.tc.WaitServing(ctx, name); err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(tenantConfig(b.admin, name))
	if err != nil {
		return nil, err
	}
	return c, ensureDefaultServiceAccount(ctx, c)
}

// agentPod is a busybox pod bound at creation to node.
func agentPod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			HostNetwork:                   true,
			AutomountServiceAccountToken:  new(false),
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers: []corev1.Container{{Name: "app", Image: images.Busybox, Command: []string{"sleep", "3600"},
				ImagePullPolicy: corev1.PullIfNotPresent}},
		},
	}
}

// podKind is what timePods creates, and when it counts a pod as started.
type podKind struct {
	pod     func(name string) *corev1.Pod
	started func(*corev1.Pod) bool
}

// boundRunning is agentPod bound to node, started once Running.
func boundRunning(node string) podKind {
	return podKind{
		pod:     func(name string) *corev1.Pod { return agentPod(name, node) },
		started: func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning },
	}
}

// startWatch records when each pod of a tenant's default namespace is
// first seen started.
type startWatch struct {
	mu      sync.Mutex
	started map[string]time.Time
	changed chan struct{}
	stop    func()
}

func watchStarted(ctx context.Context, c kubernetes.Interface, started func(*corev1.Pod) bool) (*startWatch, error) {
	w, err := watchFrom(ctx, c.CoreV1().Pods("default"), metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	sw := &startWatch{started: map[string]time.Time{}, changed: make(chan struct{}, 1), stop: w.Stop}
	go func() {
		for ev := range w.ResultChan() {
			at := time.Now()
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || !started(p) {
				continue
			}
			sw.mu.Lock()
			if _, seen := sw.started[p.Name]; !seen {
				sw.started[p.Name] = at
			}
			sw.mu.Unlock()
			select {
			case sw.changed <- struct{}{}:
			default:
			}
		}
	}()
	return sw, nil
}

// wait waits until every pod of names started or timeout passed, and
// returns how many did not.
func (sw *startWatch) wait(names []string, timeout time.Duration) int {
	deadline := time.After(timeout)
	for {
		sw.mu.Lock()
		missing := 0
		for _, n := range names {
			if _, ok := sw.started[n]; !ok {
				missing++
			}
		}
		sw.mu.Unlock()
		if missing == 0 {
			return 0
		}
		select {
		case <-sw.changed:
		case <-time.After(time.Second):
		case <-deadline:
			return missing
		}
	}
}

func (sw *startWatch) at(name string) (time.Time, bool) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	t, ok := sw.started[name]
	return t, ok
}

// timePods creates the pods names of kind (by create, in batches of batch
// each created by up to batch clients at once; wait says whether a batch
// waits for the last to start) and times each until it started.
func timePods(ctx context.Context, c kubernetes.Interface, kind podKind, names []string, batch int, waitBatch bool, timeout time.Duration) (*podStartRun, error) {
	sw, err := watchStarted(ctx, c, kind.started)
	if err != nil {
		return nil, err
	}
	defer sw.stop()
	run := &podStartRun{pods: len(names)}
	var mu sync.Mutex
	created := map[string]time.Time{}
	first := time.Now()
	for i := 0; i < len(names); i += batch {
		chunk := names[i:min(i+batch, len(names))]
		if err := parallel(chunk, batch, func(name string) error {
			began := time.Now()
			if _, err := c.CoreV1().Pods("default").Create(ctx, kind.pod(name), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating pod %s: %w", name, err)
			}
			took := time.Since(began)
			mu.Lock()
			created[name] = began
			run.creates = append(run.creates, took)
			mu.Unlock()
			return nil
		}); err != nil {
			return nil, err
		}
		if waitBatch {
			if missing := sw.wait(chunk, timeout); missing > 0 {
				return nil, fmt.Errorf("%d of pods %s…%s not started within %s", missing, chunk[0], chunk[len(chunk)-1], timeout)
			}
		}
	}
	run.notRun = sw.wait(names, timeout)
	var last time.Time
	for _, n := range names {
		at, ok := sw.at(n)
		if !ok {
			continue
		}
		run.toStarted = append(run.toStarted, at.Sub(created[n]))
		if at.After(last) {
			last = at
		}
	}
	run.elapsed = last.Sub(first)
	return run, nil
}

// deletePods deletes the bench pods of a tenant and waits for them to go:
// through the agent, which stops their containers, then deletes them.
func deletePods(ctx context.Context, c kubernetes.Interface, grace int64, timeout time.Duration) error {
	if err := c.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &grace}, metav1.ListOptions{}); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		list, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(list.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d pods still there %s after deleting them", len(list.Items), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func podNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

func (b *nodeAgentBench) simulatedPods(ctx context.Context) (*podStartRun, error) {
	const node = "bench-sim"
	agent, logPath, err := b.startAgent(node, "--container-runtime-endpoint", "simulated")
	if err != nil {
		return nil, err
	}
	defer agent.stop()
	if err := waitNodeReady(ctx, b.root, node, agent, 2*time.Minute); err != nil {
		return nil, err
	}
	c, err := b.benchTenantClient(ctx, "na-sim")
	if err != nil {
		return nil, err
	}
	run, err := timePods(ctx, c, boundRunning(node), podNames("sim", b.opts.SimPods), max(1, b.opts.SimWorkers), false, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	run.how = fmt.Sprintf("%d pods, created back to back by %d clients", b.opts.SimPods, b.opts.SimWorkers)
	if err := deletePods(ctx, c, 0, time.Minute); err != nil {
		progress("simulated runtime: cleaning up: %v", err)
	}
	time.Sleep(time.Second) // the agent's last deletes, so stopping it cancels none
	stopped := time.Now()
	agent.stop()
	run.agentErrs = scanLog(logPath, stopped)
	return run, nil
}

func (b *nodeAgentBench) containerdPods(ctx context.Context) (*podStartRun, error) {
	const node = "bench-containerd"
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	began := time.Now()
	ctrd, err := containerd.Start(startCtx, filepath.Join(b.work, "containerd"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := ctrd.Stop(); err != nil {
			progress("containerd: stopping: %v", err)
		}
	}()
	progress("containerd: started with its images in %s (snapshotter %s)", time.Since(began).Round(time.Millisecond), ctrd.Snapshotter)
	agent, logPath, err := b.startAgent(node, "--container-runtime-endpoint", ctrd.Endpoint)
	if err != nil {
		return nil, err
	}
	defer agent.stop()
	if err := waitNodeReady(ctx, b.root, node, agent, 2*time.Minute); err != nil {
		return nil, err
	}
	c, err := b.benchTenantClient(ctx, "na-containerd")
	if err != nil {
		return nil, err
	}
	batch := max(1, b.opts.ContainerdBatch)
	run, err := timePods(ctx, c, boundRunning(node), podNames("ctr", b.opts.ContainerdPods), batch, true, 3*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("%w (agent log %s, containerd log %s)", err, logPath, ctrd.Log)
	}
	run.how = fmt.Sprintf("%d pods, %d at a time, each batch once the last runs", b.opts.ContainerdPods, batch)
	progress("containerd: deleting the pods (grace 1 s)")
	if err := deletePods(ctx, c, 1, 3*time.Minute); err != nil {
		progress("containerd: cleaning up: %v", err)
	}
	time.Sleep(time.Second)
	stopped := time.Now()
	agent.stop()
	run.agentErrs = scanLog(logPath, stopped)
	return run, nil
}

// nodeWatch tracks when the nodes named <prefix>-<i> are registered and
// Ready, from one watch of every node.
type nodeWatch struct {
	prefix string
	mu     sync.Mutex
	added  map[string]time.Time
	ready  map[string]time.Time
	stop   func()
}

func (b *nodeAgentBench) watchNodes(ctx context.Context, prefix string) (*nodeWatch, error) {
	w, err := watchFrom(ctx, b.root.CoreV1().Nodes(), metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	nw := &nodeWatch{prefix: prefix + "-", added: map[string]time.Time{}, ready: map[string]time.Time{}, stop: w.Stop}
	go func() {
		for ev := range w.ResultChan() {
			at := time.Now()
			n, ok := ev.Object.(*corev1.Node)
			if !ok || !strings.HasPrefix(n.Name, nw.prefix) || ev.Type == watch.Deleted {
				continue
			}
			nw.mu.Lock()
			if _, ok := nw.added[n.Name]; !ok {
				nw.added[n.Name] = at
			}
			if _, ok := nw.ready[n.Name]; !ok && nodeReady(n) {
				nw.ready[n.Name] = at
			}
			nw.mu.Unlock()
		}
	}()
	return nw, nil
}

func (nw *nodeWatch) counts() (added, ready int) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return len(nw.added), len(nw.ready)
}

func lastOf(m map[string]time.Time, since time.Time) (time.Duration, []time.Duration) {
	var last time.Duration
	var all []time.Duration
	for _, t := range m {
		d := t.Sub(since)
		all = append(all, d)
		last = max(last, d)
	}
	return last, all
}

func (b *nodeAgentBench) scale(ctx context.Context) (*scaleRun, error) {
	o := b.opts
	r := &scaleRun{nodes: o.Nodes, interval: o.RenewInterval, duration: o.LeaseDuration, window: o.Window,
		sample: min(o.Sample, o.RenewInterval/2)}
	if o.Baseline {
		progress("scale: baseline, one agent with --simulate-nodes 1")
		agent, logPath, err := b.startAgent("bench-one", "--simulate-nodes", "1")
		if err != nil {
			return nil, err
		}
		if err := waitNodeReady(ctx, b.root, "bench-one-0", agent, 2*time.Minute); err != nil {
			agent.stop()
			return nil, err
		}
		time.Sleep(2 * o.RenewInterval) // a few renewals and status syncs
		r.rss1, err = agent.rss()
		stopped := time.Now()
		agent.stop()
		if err != nil {
			return nil, err
		}
		r.baselineErrs = scanLog(logPath, stopped)
	}

	const prefix = "bench-scale"
	nw, err := b.watchNodes(ctx, prefix)
	if err != nil {
		return nil, err
	}
	defer nw.stop()
	began := time.Now()
	agent, logPath, err := b.startAgent(prefix, "--simulate-nodes", strconv.Itoa(o.Nodes),
		"--node-lease-renew-interval", o.RenewInterval.String(), "--node-lease-duration", o.LeaseDuration.String())
	if err != nil {
		return nil, err
	}
	defer agent.stop()
	registerCPU := cpuMeter(agent, b.apiserver)
	deadline := began.Add(o.RegisterTimeout)
	lastReport := began
	for {
		added, ready := nw.counts()
		if ready >= o.Nodes {
			break
		}
		if !alive(agent) {
			return nil, fmt.Errorf("the agent exited with %d of %d nodes Ready: see %s", ready, o.Nodes, logPath)
		}
		if time.Now().After(deadline) {
			progress("scale: only %d registered, %d of %d Ready after %s; measuring heartbeats anyway", added, ready, o.Nodes, o.RegisterTimeout)
			break
		}
		rss, _ := agent.rss()
		r.peakRSS = max(r.peakRSS, rss)
		if time.Since(lastReport) >= 10*time.Second {
			lastReport = time.Now()
			progress("scale: %s: %d registered, %d Ready (agent RSS %.0f MiB)", time.Since(began).Round(time.Second), added, ready, mib(rss))
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.registerCPU = registerCPU()
	nw.mu.Lock()
	r.registered, r.ready = len(nw.added), len(nw.ready)
	r.allRegistered, _ = lastOf(nw.added, began)
	r.allReady, r.readyTimes = lastOf(nw.ready, began)
	nw.mu.Unlock()
	progress("scale: %d of %d nodes Ready in %s; sampling their Leases every %s for %s", r.ready, o.Nodes, r.allReady.Round(time.Millisecond), r.sample, o.Window)

	if err := b.sampleLeases(ctx, r, prefix+"-", agent); err != nil {
		return nil, err
	}
	if r.rss, err = agent.rss(); err != nil {
		return nil, err
	}
	if r.apiserverRSS, err = b.apiserver.rss(); err != nil {
		return nil, err
	}
	stopped := time.Now()
	agent.stop()
	r.stopTime = time.Since(stopped)
	r.agentErrs = scanLog(logPath, stopped)
	// On stop the agent marks its nodes NotReady (within 10 s).
	nodes, err := b.root.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range nodes.Items {
		if strings.HasPrefix(nodes.Items[i].Name, prefix+"-") && !nodeReady(&nodes.Items[i]) {
			r.markedNotReady++
		}
	}
	return r, nil
}

// leaseTrack is what the samples showed of one Lease.
type leaseTrack struct {
	last     time.Time // the renewTime last seen
	renewals int       // changes of renewTime seen
	worst    time.Duration
}

// sampleLeases lists the Leases every r.sample for r.window. A Lease's
// gaps are between the successive renewTimes seen; its worst is the
// longest gap, or the longest a sample found it unrenewed, whichever is
// longer: a node is NotReady once that passes the lease duration.
func (b *nodeAgentBench) sampleLeases(ctx context.Context, r *scaleRun, prefix string, agent *process) error {
	tracks := map[string]*leaseTrack{}
	var dump *bufio.Writer
	if b.opts.Dump != "" {
		f, err := os.Create(b.opts.Dump)
		if err != nil {
			return err
		}
		defer f.Close()
		dump = bufio.NewWriter(f)
		defer dump.Flush()
		fmt.Fprintln(dump, "lease,previous_renew,renew,gap_seconds,seen")
	}
	windowCPU := cpuMeter(agent, b.apiserver)
	began := time.Now()
	tick := time.NewTicker(r.sample)
	defer tick.Stop()
	for {
		listBegan := time.Now()
		list, err := b.root.CoordinationV1().Leases("kube-node-lease").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		now := time.Now()
		r.listTime = append(r.listTime, now.Sub(listBegan))
		r.samples++
		for i := range list.Items {
			l := &list.Items[i]
			if !strings.HasPrefix(l.Name, prefix) {
				continue
			}
			renew := renewTime(l)
			t := tracks[l.Name]
			if t == nil {
				t = &leaseTrack{}
				tracks[l.Name] = t
			}
			if !renew.Equal(t.last) {
				if !t.last.IsZero() {
					gap := renew.Sub(t.last)
					r.gaps = append(r.gaps, gap)
					if !t.last.Before(began) {
						r.windowGaps = append(r.windowGaps, gap)
					}
					t.worst = max(t.worst, gap)
					if dump != nil {
						fmt.Fprintf(dump, "%s,%s,%s,%.3f,%s\n", l.Name, t.last.Format(time.RFC3339Nano), renew.Format(time.RFC3339Nano), gap.Seconds(), now.Format(time.RFC3339Nano))
					}
				}
				t.last = renew
				t.renewals++
			}
			t.worst = max(t.worst, now.Sub(renew))
		}
		if now.Sub(began) >= r.window {
			break
		}
		<-tick.C
	}
	r.windowCPU = windowCPU()
	r.leases = len(tracks)
	for _, t := range tracks {
		r.worst = append(r.worst, t.worst)
		if t.worst <= r.duration {
			r.onTime++
		}
		if t.renewals >= 2 {
			r.renewed++
		}
	}
	return nil
}

func renewTime(l *coordinationv1.Lease) time.Time {
	if l.Spec.RenewTime == nil {
		return time.Time{}
	}
	return l.Spec.RenewTime.Time
}

// scanLog counts klog's error (E…) and warning (W…) lines of a log, and
// the errors logged from stopped on.
func scanLog(path string, stopped time.Time) logErrors {
	var out logErrors
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	seen := map[string]bool{}
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if len(line) < 2 || line[1] < '0' || line[1] > '9' {
			continue
		}
		switch line[0] {
		case 'E':
			out.errors++
			if at, ok := klogTime(line, stopped); ok && !at.Before(stopped.Truncate(time.Microsecond)) {
				out.stopping++
				continue
			}
			// "E1129 14:34:00.123456   123 file.go:12] message…"
			msg := line
			if i := strings.Index(line, "] "); i >= 0 {
				msg = line[i+2:]
			}
			if i := strings.Index(msg, `" `); i >= 0 {
				msg = msg[:i+1] // the message, without its key-value pairs
			}
			if !seen[msg] && len(out.first) < 6 {
				seen[msg] = true
				out.first = append(out.first, line)
			}
		case 'W':
			out.warnings++
		}
	}
	return out
}

// klogTime reads the time of a klog header, "E1129 14:34:00.123456 …",
// in the year and zone of near.
func klogTime(line string, near time.Time) (time.Time, bool) {
	if len(line) < 21 {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation("0102 15:04:05.000000", line[1:21], near.Location())
	if err != nil {
		return time.Time{}, false
	}
	return t.AddDate(near.Year(), 0, 0), true
}

func (e logErrors) String() string {
	return fmt.Sprintf("%d errors (%d of them once told to stop), %d warnings", e.errors, e.stopping, e.warnings)
}

func printNodeAgentTable(w io.Writer, o *NodeAgentOptions, sim, ctr *podStartRun, s *scaleRun) {
	fmt.Fprintf(w, "\nkplex bench-nodeagent: kplex-nodeagent against one kplex-apiserver, %d CPUs, %s\n\n", runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	rows := [][]string{{"figure", "kplex-nodeagent", "baseline", "ratio", "target"}}
	podRows := func(name string, r *podStartRun) {
		if r.skipped != "" {
			rows = append(rows, []string{name + ": pod bound → Running", "skipped: " + r.skipped, "", "", "p50 ≤ 1 s"})
			return
		}
		p50, p99 := percentile(r.toStarted, 0.5), percentile(r.toStarted, 0.99)
		target := "≤ 1 s: " + verdict(p50 <= time.Second && r.notRun == 0)
		rows = append(rows,
			[]string{fmt.Sprintf("%s: pod bound → Running p50 (%s)", name, r.how), ms(p50), "", "", target},
			[]string{"  same, p99 / max", ms(p99) + " / " + ms(slices.Max(append([]time.Duration{0}, r.toStarted...))), "", "", ""},
			[]string{"  pods Running (of created), first create → last Running", fmt.Sprintf("%d of %d, in %s", len(r.toStarted), r.pods, ms(r.elapsed)), "", "", fmt.Sprintf("%d: %s", r.pods, verdict(r.notRun == 0))},
			[]string{"  of which the create call, p50 / p99", ms(percentile(r.creates, 0.5)) + " / " + ms(percentile(r.creates, 0.99)), "", "", ""},
			[]string{"  agent log", r.agentErrs.String(), "", "", ""},
		)
	}
	podRows("simulated runtime", sim)
	podRows("containerd", ctr)
	if s.skipped != "" {
		rows = append(rows, []string{"N simulated nodes in one agent process", "skipped: " + s.skipped, "", "", "5,000 nodes, heartbeats on time"})
	} else {
		rows = append(rows,
			[]string{fmt.Sprintf("%d simulated nodes, one process: agent start → all Ready", s.nodes), readyFigure(s), "", "", fmt.Sprintf("%d Ready: %s", s.nodes, verdict(s.ready == s.nodes))},
			[]string{"  agent start → node Ready p50 / p99; → last registered", ms(percentile(s.readyTimes, 0.5)) + " / " + ms(percentile(s.readyTimes, 0.99)) + "; " + ms(s.allRegistered), "", "", ""},
			[]string{"  CPU while registering: agent, apiserver, bench with etcd (cores)", s.registerCPU.String(), "", "", ""},
			[]string{"  agent RSS peak while registering", fmt.Sprintf("%.0f MiB", mib(s.peakRSS)), "", "", ""},
		)
		pct := 0.0
		if s.nodes > 0 {
			pct = 100 * float64(s.onTime) / float64(s.nodes)
		}
		rows = append(rows,
			[]string{fmt.Sprintf("leases never older than the lease duration (%s), %s window, listed every %s", s.duration, s.window, s.sample),
				fmt.Sprintf("%.2f%% (%d of %d nodes)", pct, s.onTime, s.nodes), "", "", "100%: " + verdict(s.onTime == s.nodes)},
			[]string{fmt.Sprintf("  renewal gap p50 / p99 / max (renew interval %s)", s.interval),
				ms(percentile(s.gaps, 0.5)) + " / " + ms(percentile(s.gaps, 0.99)) + " / " + ms(slices.Max(append([]time.Duration{0}, s.gaps...))),
				"", fmt.Sprintf("p99 %.2f× the interval", float64(percentile(s.gaps, 0.99))/float64(s.interval)), ""},
			[]string{"  same, renewals whose previous one was in the window too",
				ms(percentile(s.windowGaps, 0.5)) + " / " + ms(percentile(s.windowGaps, 0.99)) + " / " + ms(slices.Max(append([]time.Duration{0}, s.windowGaps...))),
				"", fmt.Sprintf("p99 %.2f× the interval", float64(percentile(s.windowGaps, 0.99))/float64(s.interval)), ""},
			[]string{"  per lease, longest gap or age seen, p99 / max", ms(percentile(s.worst, 0.99)) + " / " + ms(slices.Max(append([]time.Duration{0}, s.worst...))), "", "", ""},
			[]string{"  leases seen / renewed in the window (renewals counted)", fmt.Sprintf("%d / %d (%d)", s.leases, s.renewed, len(s.gaps)), "", "", ""},
			[]string{"  bench's lease list p50 (sampling is late by this much)", ms(percentile(s.listTime, 0.5)), "", "", ""},
		)
		rssRow := []string{fmt.Sprintf("agent RSS at %d nodes, end of window", s.nodes), fmt.Sprintf("%.0f MiB", mib(s.rss)), "", "", ""}
		if s.rss1 > 0 {
			rssRow[2] = fmt.Sprintf("%.0f MiB at 1 node", mib(s.rss1))
			rssRow[3] = fmt.Sprintf("%.1f×", float64(s.rss)/float64(s.rss1))
		}
		rows = append(rows, rssRow)
		per := float64(s.rss) / float64(s.nodes)
		perLabel := "  agent RSS per node, RSS_N / N"
		if s.rss1 > 0 && s.nodes > 1 {
			per = float64(s.rss-s.rss1) / float64(s.nodes-1)
			perLabel = "  agent RSS per node, (RSS_N − RSS_1)/(N − 1)"
		}
		rows = append(rows,
			[]string{perLabel, fmt.Sprintf("%.1f KiB", per/1024), "", "", ""},
			[]string{"  CPU over the window: agent, apiserver, bench with etcd (cores)", s.windowCPU.String(), "", "", ""},
			[]string{"  apiserver RSS at the end", fmt.Sprintf("%.0f MiB", mib(s.apiserverRSS)), "", "", ""},
			[]string{"  agent log", s.agentErrs.String(), "", "", ""},
			[]string{"  agent stop (SIGINT → exit): time; nodes NotReady after it (it marks them)", fmt.Sprintf("%s; %d of %d", ms(s.stopTime), s.markedNotReady, s.nodes), "", "", ""},
		)
	}
	printRows(w, rows)
	for _, x := range []struct {
		name string
		e    logErrors
	}{{"simulated-runtime agent", sim.agentErrs}, {"containerd agent", ctr.agentErrs}, {"baseline agent", s.baselineErrs}, {"scale agent", s.agentErrs}} {
		for i, line := range x.e.first {
			if i == 0 {
				fmt.Fprintf(w, "\nfirst distinct errors in the %s's log:\n", x.name)
			}
			if len(line) > 300 {
				line = line[:300] + "…"
			}
			fmt.Fprintln(w, "  "+line)
		}
	}
}

func readyFigure(s *scaleRun) string {
	if s.ready < s.nodes {
		return fmt.Sprintf("%d of %d Ready, %d registered, after %s", s.ready, s.nodes, s.registered, ms(s.allReady))
	}
	return fmt.Sprintf("%.1f s", s.allReady.Seconds())
}
