package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	tenancyv1alpha1 "github.com/kplex/kplex/apis/tenancy/v1alpha1"
	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/client/kubeconfig"
	"github.com/kplex/kplex/client/tenants"
	"github.com/kplex/kplex/podsecurity"
	"github.com/kplex/kplex/test/containerd"
	"github.com/kplex/kplex/test/netlab"
)

// NetworkOptions shape `make bench-network`.
type NetworkOptions struct {
	BinDir string
	// Tenants × ServicesPerTenant selector-less Services, each with an
	// EndpointSlice of endpointsPerService made-up endpoints, are programmed
	// on the node; the reference is as many Services in one tenant.
	Tenants, ServicesPerTenant int
	// Changes EndpointSlice changes are timed to their rule on the node, in
	// each of the two.
	Changes int
	// Pods busybox pods on the pod network, and as many hostNetwork pods,
	// are created Batch at a time.
	Pods, Batch int
	// DNSClients query the node's DNS server from one pod for DNSDuration.
	DNSClients  int
	DNSDuration time.Duration
	// Settle is the wait before the agent's RSS is read.
	Settle time.Duration
}

// addNetworkFlags binds the --network bench's flags.
func addNetworkFlags(fs *flag.FlagSet) *NetworkOptions {
	o := &NetworkOptions{Tenants: 1000, ServicesPerTenant: 3, Changes: 50, Pods: 20, Batch: 5,
		DNSClients: 4, DNSDuration: 10 * time.Second, Settle: 20 * time.Second}
	fs.IntVar(&o.Tenants, "network-tenants", o.Tenants, "--network: tenants, each with --network-services-per-tenant Services programmed on the node")
	fs.IntVar(&o.ServicesPerTenant, "network-services-per-tenant", o.ServicesPerTenant, "--network: selector-less Services (each with an EndpointSlice of 2 made-up endpoints) per tenant")
	fs.IntVar(&o.Changes, "network-changes", o.Changes, "--network: EndpointSlice changes timed to their rule on the node, with many tenants and with one")
	fs.IntVar(&o.Pods, "network-pods", o.Pods, "--network: busybox pods on the pod network, and as many hostNetwork pods, timed create → Ready (0 skips)")
	fs.IntVar(&o.Batch, "network-pod-batch", o.Batch, "--network: pods created at once; the next batch once these are Ready")
	fs.IntVar(&o.DNSClients, "network-dns-clients", o.DNSClients, "--network: concurrent DNS clients in one pod's network namespace (0 skips)")
	fs.DurationVar(&o.DNSDuration, "network-dns-duration", o.DNSDuration, "--network: how long the DNS clients query")
	fs.DurationVar(&o.Settle, "network-settle", o.Settle, "--network: wait before reading the agent's RSS")
	return o
}

// endpointsPerService is how many made-up endpoints each Service's
// EndpointSlice names.
const endpointsPerService = 2

// The made-up endpoints are addresses of 10.244.64.0–10.244.255.254, far
// above the node's pod CIDR (the first /24s of 10.244.0.0/16): the
// Services' own counted up from the bottom, the changes' down from the top.
var (
	endpointBase  = netip.MustParseAddr("10.244.64.0")
	endpointRange = uint32(192 << 8)
)

func endpointIP(n uint32) string {
	b := endpointBase.As4()
	var out [4]byte
	binary.BigEndian.PutUint32(out[:], binary.BigEndian.Uint32(b[:])+n)
	return netip.AddrFrom4(out).String()
}

func (o *NetworkOptions) validate() error {
	switch {
	case o.Tenants < 1:
		return errors.New("--network-tenants must be at least 1")
	case o.ServicesPerTenant < 1:
		return errors.New("--network-services-per-tenant must be at least 1")
	case o.Changes < 1:
		return errors.New("--network-changes must be at least 1")
	case o.Pods > 0 && o.Batch < 1:
		return errors.New("--network-pod-batch must be at least 1")
	}
	// Each Service's endpoints, a change's in each of the two sets, and
	// the /16's broadcast address, which no endpoint takes.
	if need := uint64(endpointsPerService)*uint64(o.Tenants)*uint64(o.ServicesPerTenant) + 2*uint64(o.Changes) + 1; need > uint64(endpointRange) {
		return fmt.Errorf("--network-tenants × --network-services-per-tenant × %d endpoints and 2 × --network-changes need %d made-up endpoints; 10.244.64.0–10.244.255.254 has %d", endpointsPerService, need, endpointRange-1)
	}
	return nil
}

const (
	// networkNode is the lab's one node.
	networkNode = "node-1"
	// apiPort is where the apiserver listens in the control plane's
	// namespace, which has no other.
	apiPort = "6443"
)

// networkBench is the lab and the clients of one run.
type networkBench struct {
	opts     *NetworkOptions
	work     string
	lab      *netlab.Lab
	nodeNS   string // the node's namespace, a path
	admin    *rest.Config
	http     *http.Client
	root     kubernetes.Interface
	tc       *tenants.Client
	ctrd     *containerd.Containerd
	agent    *process
	agentLog string

	mu      sync.Mutex
	clients map[string]kubernetes.Interface
	changes uint32 // change IPs handed out
}

type networkResults struct {
	opts             *NetworkOptions
	context          string
	rss0, rssT, rssN int64 // the agent's: no tenant, the tenants, their Services
	chainsN          int
	multi, ref       *programRun
	multiCh, refCh   *changeRun
	refErr           error
	first            *podStartRun // the DNS client: the first pod on the pod network
	podNet, podHost  *podStartRun
	podErr, dnsErr   error
	dns              *dnsRun
	agentErrs        logErrors
	startedInNetwork time.Duration // lab made → node Ready
}

// teardown undoes what the bench set up, last first, once: at the end of
// the run or on SIGINT/SIGTERM, so no namespace, container or process of
// the bench outlives it.
type teardown struct {
	mu   sync.Mutex
	fns  []func()
	done bool
}

func (t *teardown) add(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fns = append(t.fns, f)
}

func (t *teardown) run() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return
	}
	t.done = true
	for i := len(t.fns) - 1; i >= 0; i-- {
		t.fns[i]()
	}
}

// workspace makes the bench's temporary directory (kept with
// KPLEX_BENCH_KEEP) and a teardown that also runs, saying onInterrupt, when
// the bench is interrupted; call the returned stop when the bench ends.
func workspace(prefix, onInterrupt string) (work string, td *teardown, stop func(), err error) {
	work, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, nil, err
	}
	td = &teardown{}
	if os.Getenv("KPLEX_BENCH_KEEP") == "" {
		td.add(func() { os.RemoveAll(work) })
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sigs; ok {
			progress(onInterrupt)
			td.run()
			os.Exit(130)
		}
	}()
	return work, td, func() { signal.Stop(sigs); td.run() }, nil
}

func runNetworkBench(o *NetworkOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	if err := netlab.Missing(); err != nil {
		return fmt.Errorf("this bench needs root, containerd, Debian's CNI plugins, ip and nft:\n%w", err)
	}
	work, td, stop, err := workspace("kplex-bench-network-", "interrupted: removing the lab")
	if err != nil {
		return err
	}
	defer stop()

	r := &networkResults{opts: o, context: machineContext()}
	b := &networkBench{opts: o, work: work, clients: map[string]kubernetes.Interface{}}
	ctx := context.Background()
	began := time.Now()
	if err := b.setUp(ctx, td); err != nil {
		return err
	}
	r.startedInNetwork = time.Since(began)

	// 3: the agent's RSS with no tenant, then with every Service programmed.
	progress("settling %s for the agent's RSS with no tenant", o.Settle)
	time.Sleep(o.Settle)
	if r.rss0, err = b.agent.rss(); err != nil {
		return err
	}
	multi := &serviceSet{perTenant: o.ServicesPerTenant}
	for i := range o.Tenants {
		multi.tenants = append(multi.tenants, fmt.Sprintf("nt-%04d", i))
	}
	tenantsTook, err := b.createTenants(ctx, multi)
	if err != nil {
		return err
	}
	progress("settling %s for the agent's RSS with the tenants, no Service", o.Settle)
	time.Sleep(o.Settle)
	if r.rssT, err = b.agent.rss(); err != nil {
		return err
	}
	if r.multi, err = b.program(ctx, multi); err != nil {
		return fmt.Errorf("%s: %w", multi.describe(), err)
	}
	r.multi.tenants = tenantsTook
	progress("settling %s for the agent's RSS with the Services", o.Settle)
	time.Sleep(o.Settle)
	if r.rssN, err = b.agent.rss(); err != nil {
		return err
	}
	if r.chainsN, err = b.chains("chain "); err != nil {
		return err
	}
	// 2: programming latency among many tenants.
	if r.multiCh, err = b.timeChanges(ctx, multi); err != nil {
		return fmt.Errorf("%s: %w", multi.describe(), err)
	}
	// 1 and 4: pods and DNS, among the same tenants.
	r.first, r.podNet, r.podHost, r.dns, r.podErr, r.dnsErr = b.podsAndDNS(ctx)
	// 2's reference: as many Services in one tenant, alone on the node.
	r.ref, r.refCh, r.refErr = b.reference(ctx, multi)
	b.cleanUpPods(ctx)
	stopped := time.Now()
	b.agent.stop()
	r.agentErrs = scanLog(b.agentLog, stopped)
	r.print(os.Stdout)
	if os.Getenv("KPLEX_BENCH_KEEP") != "" {
		progress("logs kept in %s", work)
	}
	return nil
}

// setUp makes the lab (a control-plane namespace and one node's), runs
// kplex up in the first, containerd and kplex-nodeagent in the second, and
// waits for the node to be Ready.
func (b *networkBench) setUp(ctx context.Context, td *teardown) error {
	var err error
	if b.lab, err = netlab.New(fmt.Sprintf("kb%d", os.Getpid()%100000), 1); err != nil {
		return err
	}
	td.add(func() {
		if err := b.lab.Destroy(); err != nil {
			progress("removing the lab: %v", err)
		}
	})
	b.nodeNS = netlab.Path(b.lab.Nodes[0])
	progress("lab: control plane in %s (%s), node %s in %s (%s)", b.lab.Ctl, b.lab.CtlIP(), networkNode, b.lab.Nodes[0], b.lab.NodeIP(0))

	dataDir := filepath.Join(b.work, "kplex")
	kplexLog := filepath.Join(b.work, "kplex.log")
	cp, err := startCommand(kplexLog, netlab.Command(netlab.Path(b.lab.Ctl), filepath.Join(b.opts.BinDir, "kplex"),
		"up", "--foreground", "--write-kubeconfig=false", "--data-dir", dataDir, "--secure-port", apiPort,
		"--runtime=none", "--bind-address=0.0.0.0", "--advertise-address="+b.lab.CtlIP()))
	if err != nil {
		return err
	}
	td.add(cp.stop)
	// The bench reaches the apiserver where the node does, in the lab.
	files := server.PKIFiles(dataDir)
	plain := files.AdminConfig("https://" + net.JoinHostPort(b.lab.CtlIP(), apiPort))
	plain.QPS, plain.Burst = -1, -1
	b.admin = rest.CopyConfig(plain)
	b.admin.Dial = netlab.DialIn(netlab.Path(b.lab.Ctl))
	if err := waitReady(b.admin); err != nil {
		return fmt.Errorf("kplex up in %s: %w; its log ends:\n%s", b.lab.Ctl, err, logTail(kplexLog, 20))
	}
	if b.http, err = rest.HTTPClientFor(b.admin); err != nil {
		return err
	}
	if b.root, err = kubernetes.NewForConfigAndClient(b.admin, b.http); err != nil {
		return err
	}
	if b.tc, err = tenants.New(b.admin); err != nil {
		return err
	}

	progress("containerd in %s", b.lab.Nodes[0])
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if b.ctrd, err = containerd.StartIn(startCtx, filepath.Join(b.work, "containerd"), b.lab.Nodes[0]); err != nil {
		return err
	}
	td.add(func() {
		removeSandboxes(b.ctrd.Endpoint)
		if err := b.ctrd.Stop(); err != nil {
			progress("stopping containerd: %v", err)
		}
	})
	kc := filepath.Join(b.work, "node.kubeconfig")
	if err := kubeconfig.WriteFile(kc, plain); err != nil {
		return err
	}
	ip := b.lab.NodeIP(0)
	b.agentLog = filepath.Join(b.work, "nodeagent.log")
	if b.agent, err = startCommand(b.agentLog, netlab.Command(b.nodeNS, filepath.Join(b.opts.BinDir, "kplex-nodeagent"),
		"--kubeconfig="+kc, "--hostname-override="+networkNode, "--container-runtime-endpoint="+b.ctrd.Endpoint,
		"--address="+ip, "--port=10250", "--node-ip="+ip, "--client-ca-file="+files.CACert(),
		"--root-dir="+filepath.Join(b.work, "node"), "--device-plugin-dir="+filepath.Join(b.work, "dp"),
		"--network=cni", "--cni-conf-dir="+b.ctrd.CNIConfDir, "--cni-bin-dir="+b.ctrd.CNIBinDir)); err != nil {
		return err
	}
	td.add(b.agent.stop)
	progress("kplex-nodeagent --network=cni in %s; waiting for %s to be Ready", b.lab.Nodes[0], networkNode)
	if err := waitNodeReady(ctx, b.root, networkNode, b.agent, 3*time.Minute); err != nil {
		return fmt.Errorf("%w; its log ends:\n%s", err, logTail(b.agentLog, 20))
	}
	// nsenter execs the agent: its pid is the agent's, and so is its RSS.
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", b.agent.cmd.Process.Pid)); strings.TrimSpace(string(comm)) != "kplex-nodeagent" {
		return fmt.Errorf("pid %d is %q, not kplex-nodeagent: its RSS would not be the agent's", b.agent.cmd.Process.Pid, strings.TrimSpace(string(comm)))
	}
	return nil
}

// client is the tenant's clientset, over the bench's one connection pool.
func (b *networkBench) client(t string) (kubernetes.Interface, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.clients[t]; ok {
		return c, nil
	}
	c, err := kubernetes.NewForConfigAndClient(tenantConfig(b.admin, t), b.http)
	if err != nil {
		return nil, err
	}
	b.clients[t] = c
	return c, nil
}

// newTenant creates tenant t and returns its client once it serves.
func (b *networkBench) newTenant(ctx context.Context, t string) (kubernetes.Interface, error) {
	// hostNetwork pods are among those timed: the bench's tenant is one the
	// operator trusts (Pod Security level privileged), on its own node.
	if _, err := b.tc.CreateWithSpec(ctx, t, tenancyv1alpha1.TenantSpec{PodSecurity: podsecurity.Privileged}); err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.tc.WaitServing(waitCtx, t); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", t, err)
	}
	return b.client(t)
}

// logTail is the last n lines of a log, for errors that outlive it.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// machineContext describes this machine for a bench's header.
func machineContext() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	var mem int64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &mem)
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	version := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			return name + " ?"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	loadFields := strings.Fields(string(load))
	return fmt.Sprintf("%d CPUs (%s), %.1f GiB memory, Linux %s, %s, %s, load average %s at the end",
		runtime.NumCPU(), model, float64(mem)/(1<<20), strings.TrimSpace(string(kernel)),
		version("containerd", "--version"), version("nft", "--version"), strings.Join(loadFields[:min(3, len(loadFields))], " "))
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

func (r *networkResults) print(w io.Writer) {
	o := r.opts
	total := o.Tenants * o.ServicesPerTenant
	fmt.Fprintf(w, "\nkplex bench-network: one node (containerd + kplex-nodeagent --network=cni) and kplex up, each in a network namespace of the bench's; %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %s\n\n", r.context)
	rows := [][]string{{"figure", "result", "reference", "ratio"}}
	failed := func(what string, err error) {
		rows = append(rows, []string{what, "failed: " + strings.ReplaceAll(err.Error(), "\n", "; "), "", ""})
	}

	// 1. Pods.
	switch {
	case o.Pods == 0:
		rows = append(rows, []string{"pod create → Ready", "skipped: --network-pods=0", "", ""})
	case r.podErr != nil:
		failed("pod create → Ready", r.podErr)
	default:
		n, h := r.podNet, r.podHost
		rows = append(rows,
			[]string{fmt.Sprintf("pod create → Ready p50, pod network (%s, bound to the node)", n.how), ms(percentile(n.toStarted, 0.5)), ms(percentile(h.toStarted, 0.5)) + " hostNetwork", ratio(percentile(n.toStarted, 0.5), percentile(h.toStarted, 0.5))},
			[]string{"  same, p99", ms(percentile(n.toStarted, 0.99)), ms(percentile(h.toStarted, 0.99)) + " hostNetwork", ratio(percentile(n.toStarted, 0.99), percentile(h.toStarted, 0.99))},
			[]string{"  pods Ready of created; first create → last Ready", fmt.Sprintf("%d of %d; %s", len(n.toStarted), n.pods, ms(n.elapsed)), fmt.Sprintf("%d of %d; %s", len(h.toStarted), h.pods, ms(h.elapsed)), ratio(n.elapsed, h.elapsed)},
		)
	}
	if r.first != nil && len(r.first.toStarted) > 0 {
		rows = append(rows, []string{"  first pod on the pod network (its sandbox makes the bridge)", ms(r.first.toStarted[0]), "", ""})
	}

	// 2. Programming latency.
	changeRows := func(m, ref *changeRun) {
		refP50, refP99, refUpd, refMissed := "", "", "", ""
		var rp50, rp99 time.Duration
		if ref != nil {
			rp50, rp99 = percentile(ref.latencies, 0.5), percentile(ref.latencies, 0.99)
			refP50 = fmt.Sprintf("%s, %d Services in 1 tenant", ms(rp50), total)
			refP99, refUpd, refMissed = ms(rp99), ms(percentile(ref.updates, 0.5)), fmt.Sprint(ref.missed)
		}
		rows = append(rows,
			[]string{fmt.Sprintf("EndpointSlice change → its rule on the node p50, %d tenants × %d Services", o.Tenants, o.ServicesPerTenant), ms(percentile(m.latencies, 0.5)), refP50, ratio(percentile(m.latencies, 0.5), rp50)},
			[]string{fmt.Sprintf("  same, p99 (%d changes, 1–1.5 s apart: the proxier's min sync period is 1 s)", o.Changes), ms(percentile(m.latencies, 0.99)), refP99, ratio(percentile(m.latencies, 0.99), rp99)},
			[]string{"  of which the update call, p50", ms(percentile(m.updates, 0.5)), refUpd, ""},
			[]string{fmt.Sprintf("  changes not on the node within %s", changeTimeout), fmt.Sprint(m.missed), refMissed, ""},
		)
	}
	changeRows(r.multiCh, r.refCh)
	progRef, progRatio, lastRef, lastRatio, cpuRef := "", "", "", "", ""
	if r.ref != nil {
		progRef = fmt.Sprintf("%.1f s, 1 tenant", r.ref.programmed.Seconds())
		progRatio = ratio(r.multi.programmed, r.ref.programmed)
		lastRef, lastRatio = fmt.Sprintf("%.1f s", r.ref.afterLast.Seconds()), ratio(r.multi.afterLast, r.ref.afterLast)
		cpuRef = fmt.Sprintf("%.1f s", r.ref.agentCPU)
	}
	rows = append(rows,
		[]string{fmt.Sprintf("%d Services (%d endpoints each) created → all on the node (8 clients)", total, endpointsPerService), fmt.Sprintf("%.1f s, %d tenants", r.multi.programmed.Seconds(), o.Tenants), progRef, progRatio},
		[]string{"  of which after the last create", fmt.Sprintf("%.1f s", r.multi.afterLast.Seconds()), lastRef, lastRatio},
		[]string{"  agent CPU over the same span", fmt.Sprintf("%.1f s", r.multi.agentCPU), cpuRef, ""},
		[]string{"  tenants created until each serves (4 at a time)", fmt.Sprintf("%.1f s", r.multi.tenants.Seconds()), "", ""},
	)
	if r.refErr != nil {
		failed("reference: the same Services in one tenant", r.refErr)
	}

	// 3. Memory.
	rows = append(rows,
		[]string{fmt.Sprintf("kplex-nodeagent RSS, no tenant → %d tenants × %d Services on the node", o.Tenants, o.ServicesPerTenant), fmt.Sprintf("%.1f → %.1f MiB", mib(r.rss0), mib(r.rssN)), "", ""},
		[]string{"  per Service, (RSS_N − RSS_0) / Services", fmt.Sprintf("%.1f KiB", float64(r.rssN-r.rss0)/1024/float64(total)), "", ""},
		[]string{fmt.Sprintf("  of which the %d tenants before any Service: RSS_T − RSS_0, per tenant", o.Tenants), fmt.Sprintf("%.1f MiB, %.1f KiB", mib(r.rssT-r.rss0), float64(r.rssT-r.rss0)/1024/float64(o.Tenants)), "", ""},
		[]string{"  and the Services: (RSS_N − RSS_T) / Services", fmt.Sprintf("%.1f KiB", float64(r.rssN-r.rssT)/1024/float64(total)), "", ""},
		[]string{"  nftables chains on the node (family ip)", fmt.Sprint(r.chainsN), "", ""},
	)

	// 4. DNS.
	switch {
	case o.DNSClients == 0:
		rows = append(rows, []string{"DNS from a pod", "skipped: --network-dns-clients=0", "", ""})
	case r.dnsErr != nil:
		failed("DNS from a pod", r.dnsErr)
	default:
		d := r.dns
		rows = append(rows,
			[]string{fmt.Sprintf("DNS A %s from one pod (%s), %d clients, %s: p50", strings.TrimSuffix(d.question, "."), d.from, d.clients, d.duration.Round(time.Second)), ms(percentile(d.rtts, 0.5)), "", ""},
			[]string{"  same, p99", ms(percentile(d.rtts, 0.99)), "", ""},
			[]string{"  answers per second (errors; wrong answers)", fmt.Sprintf("%.0f/s (%d; %d)", float64(len(d.rtts))/d.duration.Seconds(), d.errors, d.wrong), "", ""},
		)
		if d.firstError != "" {
			rows = append(rows, []string{"  first DNS error", d.firstError, "", ""})
		}
	}
	rows = append(rows,
		[]string{"lab made → node Ready (kplex up, containerd, agent)", fmt.Sprintf("%.1f s", r.startedInNetwork.Seconds()), "", ""},
		[]string{"agent log", r.agentErrs.String(), "", ""},
	)
	printRows(w, rows)
	for i, line := range r.agentErrs.first {
		if i == 0 {
			fmt.Fprintln(w, "\nfirst distinct errors in the agent's log:")
		}
		if len(line) > 300 {
			line = line[:300] + "…"
		}
		fmt.Fprintln(w, "  "+line)
	}
}
