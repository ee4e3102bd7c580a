// Package harness runs upstream's conformance suite against a kplex tenant
// on this machine, touching none of its network and no shared containerd.
//
// It lays out what package netlab of kplex's e2e tests makes: a control
// plane's network namespace, where `kplex up` serves on its own ports and
// e2e.test runs, and node namespaces joined to it by a bridge, each with a
// private containerd (package containerd) holding the suite's images and a
// kplex-nodeagent on the pod network. A tenant is created with Pod Security
// privileged, as the suite's namespaces ask, and e2e.test runs against its
// kubeconfig. Everything is removed when Run returns.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kplex/kplex/conformance/images"
	"github.com/kplex/kplex/test/containerd"
	"github.com/kplex/kplex/test/netlab"
)

// Options say what to run and where. Zero values are defaulted by
// Options.withDefaults.
type Options struct {
	// BinDir holds kplex and kplex-nodeagent (`make build`).
	BinDir string
	// E2E is the e2e.test binary.
	E2E string
	// Ginkgo is the ginkgo CLI; with Procs > 1 it runs e2e.test in
	// parallel. Empty runs e2e.test serially.
	Ginkgo string
	// Procs is how many ginkgo processes run specs; default 1.
	Procs int
	// Images are the programs the suite's images are built from.
	Images images.Binaries
	// ReportDir receives junit_01.xml, e2e.log and the components' logs.
	ReportDir string
	// Focus and Skip are ginkgo's regular expressions.
	Focus, Skip string
	// Timeout bounds the suite: ginkgo interrupts the specs still running
	// and names them in its report. Default 2h.
	Timeout time.Duration
	// Nodes is how many containerd nodes run pods; default 2 (the suite
	// has tests that spread pods over two nodes).
	Nodes int
	// Tenant is the tenant the suite runs in; default "conf".
	Tenant string
	// Keep leaves the work directory (containerd's state, kplex's data)
	// for debugging; the processes are stopped regardless.
	Keep bool
	// Log receives progress.
	Log io.Writer
}

func (o Options) withDefaults() Options {
	if o.Procs < 1 {
		o.Procs = 1
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Hour
	}
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	if o.Tenant == "" {
		o.Tenant = "conf"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

// ErrSpecsFailed is returned when the suite ran and some spec failed.
var ErrSpecsFailed = errors.New("some conformance specs failed")

// Missing reports nil when this machine can run Run; otherwise the error
// names what is missing and the apt-get line that installs it.
func Missing() error { return netlab.Missing() }

// Run brings kplex up in a lab of its own, runs the suite against a tenant
// and tears everything down. It returns ErrSpecsFailed (wrapped) when the
// suite ran but not every spec passed.
func Run(ctx context.Context, o Options) (err error) {
	o = o.withDefaults()
	if err := Missing(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.ReportDir, 0o755); err != nil {
		return fmt.Errorf("report dir: %w", err)
	}
	work, err := os.MkdirTemp("", "kplex-conformance-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	r := &run{o: o, work: work, dataDir: filepath.Join(work, "kplex"), kubeconfig: filepath.Join(work, "root.kubeconfig")}
	defer func() { err = errors.Join(err, r.teardown()) }()
	return r.run(ctx)
}

// run is one Run's state, for teardown.
type run struct {
	o          Options
	work       string
	lab        *netlab.Lab
	dataDir    string
	kubeconfig string // the management plane's, kplex up's --kubeconfig
	up         bool
	nodes      []*node
}

type node struct {
	name  string
	ctrd  *containerd.Containerd
	agent *exec.Cmd
	log   string
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// step logs what is about to happen and, once f returns, how long it took.
func (r *run) step(what string, f func() error) error {
	r.logf("%s ...", what)
	start := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	r.logf("%s: done in %s", what, time.Since(start).Round(100*time.Millisecond))
	return nil
}

func (r *run) run(ctx context.Context) error {
	var tars map[string]string
	if err := r.step("Building the suite's images", func() (err error) {
		tars, err = images.Build(filepath.Join(r.work, "images"), r.o.Images)
		return err
	}); err != nil {
		return err
	}
	if err := r.step("Making the network lab", func() (err error) {
		// Namespace names are global: the pid keeps concurrent runs apart.
		r.lab, err = netlab.New(fmt.Sprintf("kc%d", os.Getpid()%100000), r.o.Nodes)
		return err
	}); err != nil {
		return err
	}
	if err := r.step("Starting kplex (embedded etcd) in "+r.lab.Ctl, r.startKplex); err != nil {
		return err
	}
	client, err := r.rootClient()
	if err != nil {
		return err
	}
	for i := range r.o.Nodes {
		name := fmt.Sprintf("node-%d", i+1)
		if err := r.step("Starting containerd and kplex-nodeagent for "+name, func() error {
			return r.startNode(ctx, i, name, tars)
		}); err != nil {
			return err
		}
	}
	if err := r.step("Waiting for the nodes to be Ready", func() error { return waitNodesReady(ctx, client, r.o.Nodes) }); err != nil {
		return err
	}
	tenantConfig := filepath.Join(r.o.ReportDir, "tenant.kubeconfig")
	if err := r.step("Creating tenant "+r.o.Tenant, func() error { return r.createTenant(tenantConfig) }); err != nil {
		return err
	}
	return r.runSuite(ctx, tenantConfig)
}

// inCtl runs a command in the control plane's namespace with the lab's
// kubeconfig and data dir.
func (r *run) inCtl(name string, args ...string) *exec.Cmd {
	cmd := netlab.Command(netlab.Path(r.lab.Ctl), name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+r.kubeconfig, "KPLEX_DATA_DIR="+r.dataDir)
	return cmd
}

func (r *run) kplex(args ...string) error {
	cmd := r.inCtl(filepath.Join(r.o.BinDir, "kplex"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kplex %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// startKplex runs `kplex up` without a local node, listening on the lab's
// address so that the nodes' agents reach it.
func (r *run) startKplex() error {
	r.up = true
	return r.kplex("up", "--data-dir", r.dataDir, "--runtime=none", "--bind-address=0.0.0.0",
		"--advertise-address="+r.lab.CtlIP(), "--wait=5m")
}

// rootClient is the management plane's client, dialing from the control
// plane's namespace, where 127.0.0.1 is kplex's.
func (r *run) rootClient() (kubernetes.Interface, error) {
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: r.kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: "kplex-root"}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("management plane's kubeconfig: %w", err)
	}
	cfg.Dial = netlab.DialIn(netlab.Path(r.lab.Ctl))
	return kubernetes.NewForConfig(cfg)
}

// writeConfig writes the one context of kubeconfig named context to path,
// its server's 127.0.0.1 replaced by host when host is set.
func writeConfig(kubeconfig, context, host, path string) error {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	cfg.CurrentContext = context
	if err := clientcmdapi.MinifyConfig(cfg); err != nil {
		return fmt.Errorf("context %s: %w", context, err)
	}
	if err := clientcmdapi.FlattenConfig(cfg); err != nil {
		return fmt.Errorf("context %s: %w", context, err)
	}
	if host != "" {
		for _, c := range cfg.Clusters {
			c.Server = strings.Replace(c.Server, "127.0.0.1", host, 1)
		}
	}
	return clientcmd.WriteToFile(*cfg, path)
}

// startNode runs node i: a private containerd in the node's namespace with
// the suite's images, and kplex-nodeagent on the pod network.
func (r *run) startNode(ctx context.Context, i int, name string, tars map[string]string) error {
	dir := filepath.Join(r.work, name)
	n := &node{name: name, log: filepath.Join(dir, "nodeagent.log")}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	ctrd, err := containerd.StartIn(ctx, filepath.Join(dir, "containerd"), r.lab.Nodes[i])
	if err != nil {
		return err
	}
	n.ctrd = ctrd
	r.nodes = append(r.nodes, n)
	if err := Import(ctx, ctrd.Address, ctrd.Snapshotter, tars); err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "root.kubeconfig")
	if err := writeConfig(r.kubeconfig, "kplex-root", r.lab.CtlIP(), kubeconfig); err != nil {
		return err
	}
	log, err := os.Create(n.log)
	if err != nil {
		return fmt.Errorf("node agent log: %w", err)
	}
	defer log.Close()
	ip := r.lab.NodeIP(i)
	n.agent = netlab.Command(netlab.Path(r.lab.Nodes[i]), filepath.Join(r.o.BinDir, "kplex-nodeagent"),
		"--kubeconfig="+kubeconfig, "--hostname-override="+name,
		"--container-runtime-endpoint="+ctrd.Endpoint,
		"--address="+ip, "--port=10250", "--node-ip="+ip,
		"--client-ca-file="+filepath.Join(r.dataDir, "pki", "ca.crt"),
		"--root-dir="+filepath.Join(dir, "root"), "--device-plugin-dir="+filepath.Join(dir, "dp"),
		"--network=cni", "--cni-conf-dir="+ctrd.CNIConfDir, "--cni-bin-dir="+ctrd.CNIBinDir, "-v=2")
	n.agent.Stdout, n.agent.Stderr = log, log
	// Should the harness die without teardown, the agent goes with it.
	n.agent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := n.agent.Start(); err != nil {
		return fmt.Errorf("start kplex-nodeagent: %w", err)
	}
	return nil
}

// Import loads the image archives (name to path, as images.Build returns
// them) into the containerd at address, in the CRI plugin's namespace and
// unpacked for snapshotter ("" for containerd's default), so that pods
// find them without a pull.
func Import(ctx context.Context, address, snapshotter string, tars map[string]string) error {
	for ref, tar := range tars {
		args := []string{"--address", address, "-n", containerd.Namespace, "images", "import"}
		if snapshotter != "" {
			args = append(args, "--snapshotter", snapshotter)
		}
		cmd := exec.CommandContext(ctx, "ctr", append(args, tar)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("import %s: %w: %s", ref, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

func waitNodesReady(ctx context.Context, c kubernetes.Interface, want int) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		last = fmt.Sprintf("%d of %d nodes Ready", ready, want)
		return ready >= want, nil
	})
	if err != nil {
		return fmt.Errorf("%w (%s)", err, last)
	}
	return nil
}

// createTenant creates the suite's tenant, privileged: the suite labels its
// namespaces for the Pod Security level each test needs, and a tenant's
// floor may only tighten them.
func (r *run) createTenant(path string) error {
	if err := r.kplex("create", "cluster", r.o.Tenant, "--pod-security=privileged", "--wait=2m"); err != nil {
		return err
	}
	return writeConfig(r.kubeconfig, "kplex-"+r.o.Tenant, "", path)
}

// runSuite runs e2e.test in the control plane's namespace, its output
// going to e2e.log and the log writer. A hard deadline past the suite's
// own timeout kills a suite that ginkgo could not interrupt.
func (r *run) runSuite(ctx context.Context, kubeconfig string) error {
	// The suite writes junit_01.xml into --report-dir, spec names
	// without ginkgo's labels, as upstream's conformance runs publish it.
	junit := filepath.Join(r.o.ReportDir, "junit_01.xml")
	os.Remove(junit)
	e2eArgs := []string{
		"--kubeconfig=" + kubeconfig, "--provider=skeleton",
		"--report-dir=" + r.o.ReportDir,
		// The suite may not read the nodes' logs or metrics: they are
		// kplex's, through the management plane only.
		"--dump-logs-on-failure=false", "--allowed-not-ready-nodes=0",
	}
	ginkgoFlags := [][2]string{
		{"focus", r.o.Focus},
		{"skip", r.o.Skip},
		{"timeout", r.o.Timeout.String()},
		// A spec still running after 5 minutes is named, with its stack,
		// every 5 minutes: a hang shows before the timeout.
		{"poll-progress-after", "5m"},
		{"poll-progress-interval", "5m"},
		{"silence-skips", "true"},
		{"no-color", "true"},
	}
	var cmd *exec.Cmd
	if r.o.Ginkgo != "" && r.o.Procs > 1 {
		args := []string{"run", "-p", "--procs=" + strconv.Itoa(r.o.Procs)}
		for _, f := range ginkgoFlags {
			if f[1] != "" {
				args = append(args, "--"+f[0]+"="+f[1])
			}
		}
		args = append(append(args, r.o.E2E, "--"), e2eArgs...)
		cmd = r.inCtl(r.o.Ginkgo, args...)
	} else {
		args := e2eArgs
		for _, f := range ginkgoFlags {
			if f[1] != "" {
				args = append(args, "--ginkgo."+f[0]+"="+f[1])
			}
		}
		cmd = r.inCtl(r.o.E2E, args...)
	}
	log, err := os.Create(filepath.Join(r.o.ReportDir, "e2e.log"))
	if err != nil {
		return fmt.Errorf("e2e log: %w", err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = io.MultiWriter(log, r.o.Log), io.MultiWriter(log, r.o.Log)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	// ginkgo reports the specs it interrupts at its timeout; give it time
	// to, then kill.
	hard := r.o.Timeout + 5*time.Minute
	deadline, cancel := context.WithTimeout(ctx, hard)
	defer cancel()
	r.logf("Running the suite in tenant %s (focus %q, skip %q, %d process(es), timeout %s): %s",
		r.o.Tenant, r.o.Focus, r.o.Skip, r.o.Procs, r.o.Timeout, strings.Join(cmd.Args, " "))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start e2e.test: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-deadline.Done():
		interrupt(cmd, done)
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; the specs that were running are in %s", log.Name())
		}
		return fmt.Errorf("the suite ran past %s and was killed; the specs that were running are in %s", hard, log.Name())
	}
	r.logf("The suite ran in %s; JUnit report %s", time.Since(start).Round(time.Second), junit)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("%w (e2e.test: %v)", ErrSpecsFailed, err)
	}
	return err
}

// interrupt stops a running suite as a user's Ctrl-C would: ginkgo runs
// the specs' cleanup and writes its reports; a second interrupt skips the
// cleanup; then it is killed.
func interrupt(cmd *exec.Cmd, done <-chan error) {
	for _, wait := range []time.Duration{90 * time.Second, 30 * time.Second} {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
			return
		case <-time.After(wait):
		}
	}
	cmd.Process.Kill()
	<-done
}

// teardown stops what run started, keeps the logs in the report dir and
// removes the work dir unless Keep.
func (r *run) teardown() error {
	var errs []error
	logs := filepath.Join(r.o.ReportDir, "logs")
	os.MkdirAll(logs, 0o755)
	for _, n := range r.nodes {
		if n.agent != nil && n.agent.Process != nil {
			n.agent.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { n.agent.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				n.agent.Process.Kill()
				<-done
			}
		}
		copyFile(n.log, filepath.Join(logs, n.name+"-nodeagent.log"))
		copyFile(n.ctrd.Log, filepath.Join(logs, n.name+"-containerd.log"))
		if err := n.ctrd.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.name, err))
		}
	}
	if r.up {
		if err := r.kplex("down", "--data-dir", r.dataDir); err != nil {
			errs = append(errs, err)
		}
		copyFile(filepath.Join(r.dataDir, "kplex.log"), filepath.Join(logs, "kplex.log"))
	}
	if r.lab != nil {
		if err := r.lab.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("remove the network lab: %w", err))
		}
	}
	if r.o.Keep {
		r.logf("Kept the work dir %s", r.work)
	} else if err := os.RemoveAll(r.work); err != nil {
		errs = append(errs, fmt.Errorf("remove the work dir: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	return nil
}

// copyFile copies a log, best effort: a missing log is no teardown error.
func copyFile(from, to string) {
	if data, err := os.ReadFile(from); err == nil {
		os.WriteFile(to, data, 0o644)
	}
}
