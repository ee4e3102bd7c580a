// Package up is `kplex up`: it brings kplex up on this machine, on embedded
// etcd unless --etcd-servers is given, and writes the kplex-root context.
// By default it starts kplex in the background and returns once it is ready;
// --foreground keeps it attached.
package up

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/apiserver/pki"
	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/cli"
	"github.com/kplex/kplex/cli/daemon"
	"github.com/kplex/kplex/client/kubeconfig"
	"github.com/kplex/kplex/client/nodetokens"
	"github.com/kplex/kplex/controllers/activation"
	"github.com/kplex/kplex/controllers/autoscaling"
	"github.com/kplex/kplex/controllers/certificates"
	"github.com/kplex/kplex/controllers/manager"
	"github.com/kplex/kplex/dataplane/cni"
	"github.com/kplex/kplex/deviceplugin/gpu"
	deviceserver "github.com/kplex/kplex/deviceplugin/server"
	"github.com/kplex/kplex/nodeagent"
	schedulerserver "github.com/kplex/kplex/scheduler/server"
	"github.com/kplex/kplex/tenant"
)

type flagpole struct {
	DataDir     string
	SecurePort  int
	EtcdServers []string
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile are upstream's flags for
	// an external etcd's TLS; the embedded etcd uses its own PKI.
	EtcdCAFile      string
	EtcdCertFile    string
	EtcdKeyFile     string
	Foreground      bool
	Wait            time.Duration
	QuietPeriod     time.Duration
	Scheduler       bool
	Runtime         string
	PodNetwork      string
	CNIConfDir      string
	BindAddress     string
	Advertise       string
	SimulateGPUs    string
	RuntimeEndpoint string
	// MetricsResolution and AutoscalerSyncPeriod: how fresh kubectl top
	// is, and how soon autoscalers act on it.
	MetricsResolution    time.Duration
	AutoscalerSyncPeriod time.Duration
	writeKubeconfig      bool
}

// NewCommand returns the up command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Bring kplex up on this machine and write the kplex-root context",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flags.Foreground {
				return runForeground(cmd.Context(), g, streams, flags)
			}
			return runBackground(cmd.Context(), g, streams, flags)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&flags.DataDir, "data-dir", server.DefaultDataDir(), "directory for kplex's PKI, embedded etcd data, pid file and log")
	fs.IntVar(&flags.SecurePort, "secure-port", server.DefaultSecurePort, "port the apiserver serves HTTPS on, on --bind-address")
	fs.StringVar(&flags.BindAddress, "bind-address", "127.0.0.1", "address the apiserver listens on; 0.0.0.0 for every address of this host (nodes on other machines, pods reaching their API)")
	fs.StringVar(&flags.Advertise, "advertise-address", "", "address the kubernetes Service's endpoints name, where pods reach the apiserver; empty picks this host's default-route address")
	fs.StringSliceVar(&flags.EtcdServers, "etcd-servers", nil, "external etcd servers (scheme://ip:port, comma separated); empty runs etcd embedded")
	fs.StringVar(&flags.EtcdCAFile, "etcd-cafile", "", "with --etcd-servers, the CA file that verifies the etcd servers")
	fs.StringVar(&flags.EtcdCertFile, "etcd-certfile", "", "with --etcd-servers, the client certificate kplex presents to etcd")
	fs.StringVar(&flags.EtcdKeyFile, "etcd-keyfile", "", "with --etcd-servers, the key of --etcd-certfile")
	fs.BoolVar(&flags.Foreground, "foreground", false, "run in the foreground, logging to stderr, until interrupted")
	fs.DurationVar(&flags.Wait, "wait", 2*time.Minute, "how long to wait for kplex to be ready")
	fs.DurationVar(&flags.QuietPeriod, "controllers-quiet-period", activation.DefaultQuietPeriod, "stop a tenant's controller after it had no work for this long")
	fs.BoolVar(&flags.Scheduler, "scheduler", true, "run kplex-scheduler in this process; false when it runs on its own (with leader election)")
	fs.StringVar(&flags.Runtime, "runtime", runtimeSimulated, `the local node agent's runtime: "simulated" (pods run nowhere, for trying kplex), "containerd" (real containers through CRI at --container-runtime-endpoint), or "none" (no local node)`)
	fs.StringVar(&flags.SimulateGPUs, "simulate-gpus", "", "give the local node simulated GPUs through kplex-deviceplugin's simulated backend, e.g. h100x8 (one of "+strings.Join(gpu.SimulatedSpecs(), ", ")+")")
	fs.StringVar(&flags.RuntimeEndpoint, "container-runtime-endpoint", nodeagent.DefaultContainerdEndpoint, "containerd's CRI socket, for --runtime containerd")
	fs.StringVar(&flags.PodNetwork, "pod-network", nodeagent.NetworkHost, `with --runtime containerd, "cni" gives each pod its own network namespace and IP, with Services, cluster DNS and tenant isolation on this host (needs Debian's containernetworking-plugins and containerd's CNI conf dir at --cni-conf-dir); "host" runs every pod on the host's network`)
	fs.StringVar(&flags.CNIConfDir, "cni-conf-dir", cni.DefaultConfDir, "containerd's CNI configuration directory, for --pod-network cni")
	fs.DurationVar(&flags.MetricsResolution, "metrics-resolution", 15*time.Second, "how often pods' and nodes' usage is read for metrics.k8s.io (kubectl top, autoscalers)")
	fs.DurationVar(&flags.AutoscalerSyncPeriod, "horizontal-pod-autoscaler-sync-period", autoscaling.DefaultOptions().SyncPeriod, "how often horizontal pod autoscalers are evaluated")
	fs.BoolVar(&flags.writeKubeconfig, "write-kubeconfig", true, "write the kplex-root context")
	_ = fs.MarkHidden("write-kubeconfig")
	return cmd
}

func url(port int) string { return "https://127.0.0.1:" + strconv.Itoa(port) }

func checkNotRunning(dataDir string) error {
	pid, err := daemon.Running(dataDir)
	if err != nil {
		return err
	}
	if pid != 0 {
		return fmt.Errorf("kplex is already running from %s (pid %d); stop it with `kplex down`", dataDir, pid)
	}
	return nil
}

// runBackground re-runs `kplex up --foreground` detached, its log in the
// data directory, and waits until it is ready.
func runBackground(ctx context.Context, g *cli.Global, streams cli.Streams, flags *flagpole) error {
	if err := checkNotRunning(flags.DataDir); err != nil {
		return err
	}
	if _, err := flags.nodeAgentConfig(""); err != nil {
		return err
	}
	if flags.MetricsResolution != 0 && flags.MetricsResolution < time.Second {
		return fmt.Errorf("--metrics-resolution must be 0 or at least 1s, got %s", flags.MetricsResolution)
	}
	if len(flags.EtcdServers) == 0 && flags.EtcdCAFile+flags.EtcdCertFile+flags.EtcdKeyFile != "" {
		return errors.New("--etcd-cafile, --etcd-certfile and --etcd-keyfile need --etcd-servers: the embedded etcd uses its own PKI")
	}
	if flags.AutoscalerSyncPeriod <= 0 {
		return fmt.Errorf("--horizontal-pod-autoscaler-sync-period must be positive, got %s", flags.AutoscalerSyncPeriod)
	}
	if err := os.MkdirAll(flags.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	logPath := daemon.LogFile(flags.DataDir)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening log file: %w", err)
	}
	defer logFile.Close()
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the kplex binary: %w", err)
	}
	args := []string{"up", "--foreground", "--write-kubeconfig=false",
		"--data-dir", flags.DataDir, "--secure-port", strconv.Itoa(flags.SecurePort),
		"--bind-address", flags.BindAddress, "--advertise-address", flags.Advertise,
		"--pod-network", flags.PodNetwork, "--cni-conf-dir", flags.CNIConfDir,
		"--controllers-quiet-period", flags.QuietPeriod.String(), "--scheduler=" + strconv.FormatBool(flags.Scheduler),
		"--runtime", flags.Runtime, "--container-runtime-endpoint", flags.RuntimeEndpoint, "--simulate-gpus", flags.SimulateGPUs,
		"--metrics-resolution", flags.MetricsResolution.String(), "--horizontal-pod-autoscaler-sync-period", flags.AutoscalerSyncPeriod.String()}
	if len(flags.EtcdServers) > 0 {
		args = append(args, "--etcd-servers", strings.Join(flags.EtcdServers, ","),
			"--etcd-cafile", flags.EtcdCAFile, "--etcd-certfile", flags.EtcdCertFile, "--etcd-keyfile", flags.EtcdKeyFile)
	}
	child := exec.Command(self, args...)
	child.Stdout, child.Stderr = logFile, logFile
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}

	st := g.Status(streams)
	defer st.End(false)
	st.Start(fmt.Sprintf("Starting kplex (etcd, apiserver) from %s", flags.DataDir))
	if err := child.Start(); err != nil {
		return fmt.Errorf("starting kplex: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()

	st.Start(fmt.Sprintf("Waiting ≤ %s for kplex to be ready", flags.Wait))
	waitCtx, cancel := context.WithTimeout(ctx, flags.Wait)
	defer cancel()
	files := server.PKIFiles(flags.DataDir)
	ready := make(chan error, 1)
	go func() { ready <- server.WaitReady(waitCtx, files.AdminConfig(url(flags.SecurePort))) }()
	select {
	case err := <-exited:
		return fmt.Errorf("kplex exited before it was ready (%v); see %s", err, logPath)
	case err := <-ready:
		if err != nil {
			_ = child.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("kplex was not ready within %s: %w; see %s", flags.Wait, err, logPath)
		}
	}
	if flags.Runtime != runtimeNone {
		st.Start(fmt.Sprintf("Waiting for the local node (runtime %s)", flags.Runtime))
		if err := waitNodeReady(waitCtx, files.AdminConfig(url(flags.SecurePort))); err != nil {
			_ = child.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("the local node was not ready within %s: %w; see %s", flags.Wait, err, logPath)
		}
	}
	_ = child.Process.Release()
	if err := writeRootContext(g, files, url(flags.SecurePort)); err != nil {
		return err
	}
	st.End(true)
	printReady(g, streams, flags, logPath)
	return nil
}

// runForeground serves until ctx ends.
func runForeground(ctx context.Context, g *cli.Global, streams cli.Streams, flags *flagpole) error {
	if err := checkNotRunning(flags.DataDir); err != nil {
		return err
	}
	cfg := server.NewConfig()
	cfg.DataDir = flags.DataDir
	cfg.Kube.SecureServing.BindPort = flags.SecurePort
	if cfg.Kube.SecureServing.BindAddress = net.ParseIP(flags.BindAddress); cfg.Kube.SecureServing.BindAddress == nil {
		return fmt.Errorf("--bind-address %q: not an IP address", flags.BindAddress)
	}
	if flags.Advertise != "" {
		if cfg.Kube.GenericServerRunOptions.AdvertiseAddress = net.ParseIP(flags.Advertise); cfg.Kube.GenericServerRunOptions.AdvertiseAddress == nil {
			return fmt.Errorf("--advertise-address %q: not an IP address", flags.Advertise)
		}
	}
	etcd := &cfg.Kube.Etcd.StorageConfig.Transport
	etcd.ServerList = flags.EtcdServers
	etcd.TrustedCAFile, etcd.CertFile, etcd.KeyFile = flags.EtcdCAFile, flags.EtcdCertFile, flags.EtcdKeyFile
	cfg.MetricsResolution = flags.MetricsResolution
	s, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := daemon.WritePid(flags.DataDir); err != nil {
		return err
	}
	defer daemon.RemovePid(flags.DataDir)
	select {
	case <-s.Ready():
	case err := <-s.Err():
		return err
	case <-ctx.Done():
		return nil
	}
	// The controllers run in this process, without leader election: one
	// `kplex up` serves a data directory (its pid file sees to that).
	ca, err := os.ReadFile(cfg.PKI().CACert())
	if err != nil {
		return fmt.Errorf("reading the CA the controllers publish: %w", err)
	}
	saKey, err := cfg.PKI().ServiceAccountSigner()
	if err != nil {
		return err
	}
	autoscaler := autoscaling.DefaultOptions()
	autoscaler.SyncPeriod = flags.AutoscalerSyncPeriod
	controllers := make(chan error, 4)
	go func() {
		err := manager.Run(ctx, manager.Options{Loopback: s.AdminConfig(), RootCA: ca, QuietPeriod: flags.QuietPeriod, ServiceAccountKey: saKey, Autoscaling: autoscaler,
			// Node agents' client certificates are signed by the CA the
			// apiserver trusts for client certificates.
			Certificates: certificates.Options{SigningCertFile: cfg.PKI().CACert(), SigningKeyFile: cfg.PKI().CAKey()}})
		controllers <- fmt.Errorf("controller manager stopped: %v", err)
	}()
	if flags.Scheduler {
		// The scheduler reads its kubeconfig from a file, as
		// kube-scheduler does: root's admin credentials.
		schedulerKubeconfig := filepath.Join(flags.DataDir, "scheduler.kubeconfig")
		if err := kubeconfig.WriteFile(schedulerKubeconfig, s.AdminConfig()); err != nil {
			return fmt.Errorf("writing the scheduler's kubeconfig: %w", err)
		}
		go func() {
			err := schedulerserver.RunInProcess(ctx, schedulerKubeconfig)
			controllers <- fmt.Errorf("scheduler stopped: %v", err)
		}()
	}
	if flags.Runtime != runtimeNone {
		agent, err := flags.nodeAgentConfig(cfg.PKI().CACert())
		if err != nil {
			return err
		}
		if flags.Runtime == runtimeContainerd {
			if err := daemon.WriteLocalNode(flags.DataDir, daemon.LocalNode{Name: agent.NodeName, RuntimeEndpoint: agent.RuntimeEndpoint}); err != nil {
				return err
			}
		}
		go func() {
			// The local node is a node like any other: it joins with a
			// bootstrap token and runs as system:node:<name>, never with
			// the admin's credentials.
			creds, err := localNodeCredentials(ctx, s.AdminConfig(), agent)
			if err == nil {
				err = nodeagent.Run(ctx, agent, creds)
			}
			controllers <- fmt.Errorf("node agent stopped: %v", err)
		}()
		if flags.SimulateGPUs != "" {
			go func() {
				err := deviceserver.Run(ctx, deviceserver.Options{DevicePluginDir: agent.DevicePluginDir, Simulate: flags.SimulateGPUs, LabelsFile: filepath.Join(agent.NodeLabelsDir, "nvidia-gpu")})
				controllers <- fmt.Errorf("GPU device plugin stopped: %v", err)
			}()
		}
	}
	if flags.writeKubeconfig {
		if err := writeRootContext(g, cfg.PKI(), s.URL()); err != nil {
			return err
		}
		printReady(g, streams, flags, "stderr")
	}
	klog.InfoS("kplex is up", "url", s.URL(), "dataDir", flags.DataDir)
	select {
	case err := <-s.Err():
		return err
	case err := <-controllers:
		if ctx.Err() != nil {
			return nil
		}
		return err
	case <-ctx.Done():
		klog.InfoS("Shutting down")
		return nil
	}
}

// waitNodeReady waits until a node reports Ready.
func waitNodeReady(ctx context.Context, cfg *rest.Config) error {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return true, nil
				}
			}
		}
		return false, nil
	})
}

// The local node agent's runtimes.
const (
	runtimeSimulated  = "simulated"
	runtimeContainerd = "containerd"
	runtimeNone       = "none"
)

// nodeAgentConfig is the local node's: this host, reached on loopback by
// the apiserver, its data in the data directory.
func (flags *flagpole) nodeAgentConfig(caFile string) (*nodeagent.Config, error) {
	cfg := nodeagent.NewConfig()
	switch flags.Runtime {
	case runtimeNone:
		if flags.SimulateGPUs != "" {
			return nil, errors.New("--simulate-gpus needs a local node: --runtime simulated or containerd")
		}
		return nil, nil
	case runtimeSimulated:
		cfg.RuntimeEndpoint = nodeagent.RuntimeSimulated
	case runtimeContainerd:
		socket := strings.TrimPrefix(flags.RuntimeEndpoint, "unix://")
		if _, err := os.Stat(socket); err != nil {
			return nil, fmt.Errorf("--runtime containerd: no containerd socket at %s (start containerd, or give --container-runtime-endpoint): %w", socket, err)
		}
		cfg.RuntimeEndpoint = flags.RuntimeEndpoint
		cfg.Network, cfg.CNIConfDir = flags.PodNetwork, flags.CNIConfDir
	default:
		return nil, fmt.Errorf("--runtime %q: want simulated, containerd or none", flags.Runtime)
	}
	if flags.SimulateGPUs != "" {
		if _, _, err := gpu.NewSimulated(flags.SimulateGPUs); err != nil {
			return nil, fmt.Errorf("--simulate-gpus: %w", err)
		}
	}
	if caFile == "" {
		return cfg, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the local node agent: %w", err)
	}
	cfg.Listener = l
	cfg.NodeIP = "127.0.0.1"
	cfg.ClientCAFile = caFile
	cfg.RootDir = filepath.Join(flags.DataDir, "nodeagent")
	// Unix socket paths are short: keep the data directory's prefix small.
	cfg.DevicePluginDir = filepath.Join(flags.DataDir, "dp")
	cfg.NodeLabelsDir = filepath.Join(cfg.RootDir, "node-labels.d")
	return cfg, cfg.Validate()
}

// localNodeCredentials gets the local node agent its own client
// certificate: a bootstrap token (valid an hour, enough to join) is made
// only when the node has no credentials of its own yet.
func localNodeCredentials(ctx context.Context, admin *rest.Config, agent *nodeagent.Config) (*rest.Config, error) {
	own := filepath.Join(agent.RootDir, "kubeconfig")
	bootstrapPath := filepath.Join(agent.RootDir, "bootstrap.kubeconfig")
	if _, err := os.Stat(own); err != nil {
		client, err := kubernetes.NewForConfig(admin)
		if err != nil {
			return nil, err
		}
		token, err := nodetokens.Create(ctx, client, time.Hour, "kplex up's local node agent")
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(agent.RootDir, 0o700); err != nil {
			return nil, fmt.Errorf("creating the node agent's directory: %w", err)
		}
		if err := nodetokens.WriteKubeconfig(bootstrapPath, admin, token); err != nil {
			return nil, err
		}
	}
	return nodeagent.NodeCredentials(ctx, agent.NodeName, own, bootstrapPath, filepath.Join(agent.RootDir, "pki"))
}

func writeRootContext(g *cli.Global, files pki.Files, url string) error {
	var entry kubeconfig.Entry
	var err error
	entry.Tenant, entry.Server = tenant.Root, url
	if entry.CAData, err = kubeconfig.ReadFile(files.CACert()); err != nil {
		return err
	}
	if entry.CertData, err = kubeconfig.ReadFile(files.AdminCert()); err != nil {
		return err
	}
	if entry.KeyData, err = kubeconfig.ReadFile(files.AdminKey()); err != nil {
		return err
	}
	return kubeconfig.Merge(g.Kubeconfig, entry, false)
}

func printReady(g *cli.Global, streams cli.Streams, flags *flagpole, logPath string) {
	fmt.Fprintf(g.Chatter(streams), `kplex is up at %s (data in %s, log in %s).
The management plane is context %s; its nodes: kubectl --context %[4]s get nodes. Next:
  kplex create cluster demo
  kubectl --context kplex-demo get ns
`, url(flags.SecurePort), flags.DataDir, logPath, kubeconfig.ContextName(tenant.Root))
}
