// Package app is kplex-controller-manager's command: flags in
// kube-controller-manager's style over controllers/manager.
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/keyutil"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/cli/globalflag"
	componentbaseconfig "k8s.io/component-base/config"
	componentbaseoptions "k8s.io/component-base/config/options"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/version/verflag"

	"github.com/kplex/kplex/controllers/activation"
	"github.com/kplex/kplex/controllers/autoscaling"
	"github.com/kplex/kplex/controllers/certificates"
	"github.com/kplex/kplex/controllers/manager"
	"github.com/kplex/kplex/controllers/nodeipam"
	"github.com/kplex/kplex/controllers/nodelifecycle"
	"github.com/kplex/kplex/metrics/bounded"
	"github.com/kplex/kplex/tenant"
)

// Options are the command's flags.
type Options struct {
	Kubeconfig string
	Context    string
	RootCAFile string
	// ServiceAccountKeyFile signs the tokens of service-account-token
	// Secrets; empty leaves them unfilled.
	ServiceAccountKeyFile string
	QuietPeriod           time.Duration
	// Serving serves /metrics (Prometheus) and /healthz on the secure
	// port, authenticated and authorized by the management plane.
	Serving *ServingOptions
	// MetricsBindAddress is the removed --metrics-bind-address (plain
	// HTTP, no authentication), kept to say what replaces it.
	MetricsBindAddress string
	// MetricsTopTenants is how many tenants get per-tenant capacity
	// series; the others are summed as tenant="_other".
	MetricsTopTenants int
	LeaderElection    componentbaseconfig.LeaderElectionConfiguration
	Logs              *logsapi.LoggingConfiguration
	// Nodes are the node lifecycle controller's periods.
	Nodes nodelifecycle.Options
	// Autoscaling are the horizontal pod autoscaler's settings.
	Autoscaling autoscaling.Options
	// NodeIPAM are the nodes' pod CIDRs.
	NodeIPAM nodeipam.Options
	// Certificates are node agents' client certificates (TLS bootstrap).
	Certificates certificates.Options
}

// NewOptions returns the defaults: leader election on, on the Lease
// kube-system/kplex-controller-manager of root.
func NewOptions() *Options {
	return &Options{
		QuietPeriod:       activation.DefaultQuietPeriod,
		Serving:           NewServingOptions(),
		MetricsTopTenants: bounded.DefaultTopTenants,
		Nodes: nodelifecycle.Options{
			MonitorPeriod:      nodelifecycle.DefaultMonitorPeriod,
			StartupGracePeriod: nodelifecycle.DefaultStartupGracePeriod,
			MonitorGracePeriod: nodelifecycle.DefaultMonitorGracePeriod,
		},
		Autoscaling: autoscaling.DefaultOptions(),
		NodeIPAM:    nodeipam.Options{}.WithDefaults(),
		LeaderElection: componentbaseconfig.LeaderElectionConfiguration{
			LeaderElect:       true,
			LeaseDuration:     metav1.Duration{Duration: manager.DefaultLeaseDuration},
			RenewDeadline:     metav1.Duration{Duration: manager.DefaultRenewDeadline},
			RetryPeriod:       metav1.Duration{Duration: manager.DefaultRetryPeriod},
			ResourceLock:      resourcelock.LeasesResourceLock,
			ResourceName:      manager.DefaultLeaseName,
			ResourceNamespace: manager.DefaultLeaseNamespace,
		},
		Logs: logsapi.NewLoggingConfiguration(),
	}
}

// AddFlags binds o to named flag sets.
func (o *Options) AddFlags(fss *cliflag.NamedFlagSets) {
	fs := fss.FlagSet("generic")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "path to a kubeconfig of the kplex management plane (root, e.g. context kplex-root) with system:masters rights; empty uses the in-cluster config")
	fs.StringVar(&o.Context, "context", o.Context, "kubeconfig context to use; empty uses the current context")
	fs.StringVar(&o.RootCAFile, "root-ca-file", o.RootCAFile, "CA bundle published as kube-root-ca.crt in every namespace of every tenant; empty uses the kubeconfig's CA")
	fs.StringVar(&o.ServiceAccountKeyFile, "service-account-private-key-file", o.ServiceAccountKeyFile, "PEM private key that signs the tokens of service-account-token Secrets (the apiserver's sa.key); empty runs no token controller")
	fs.DurationVar(&o.QuietPeriod, "quiet-period", o.QuietPeriod, "stop a tenant's controller after it saw no relevant event and made no API call for this long")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "removed: use --secure-port")
	_ = fs.MarkHidden("metrics-bind-address")
	fs.IntVar(&o.MetricsTopTenants, "metrics-top-tenants", o.MetricsTopTenants, "per-tenant capacity metrics (kplex_tenant_*) name this many tenants, those requesting the most GPUs (then CPU, then with the most pending pods); the others are summed as tenant=\"_other\", so that series stay bounded whatever the number of tenants")
	nodes := fss.FlagSet("node lifecycle")
	nodes.DurationVar(&o.Nodes.MonitorPeriod, "node-monitor-period", o.Nodes.MonitorPeriod, "how often the health of every node is checked")
	nodes.DurationVar(&o.Nodes.StartupGracePeriod, "node-startup-grace-period", o.Nodes.StartupGracePeriod, "how long a starting node may be unresponsive before it is marked unhealthy")
	nodes.DurationVar(&o.Nodes.MonitorGracePeriod, "node-monitor-grace-period", o.Nodes.MonitorGracePeriod, "how long a node may go without renewing its Lease before it is marked NotReady (its pods in every tenant then not ready, and evicted per their tolerations)")
	o.Serving.AddFlags(fss)
	o.Autoscaling.AddFlags(fss.FlagSet("horizontal pod autoscaler"))
	o.NodeIPAM.AddFlags(fss.FlagSet("node ipam"))
	o.Certificates.AddFlags(fss.FlagSet("certificates"))
	componentbaseoptions.BindLeaderElectionFlags(&o.LeaderElection, fss.FlagSet("leader election"))
	logsapi.AddFlags(o.Logs, fss.FlagSet("logs"))
}

// Validate names the flag at fault.
func (o *Options) Validate() error {
	if o.QuietPeriod <= 0 {
		return errors.New("--quiet-period must be positive")
	}
	if o.MetricsTopTenants <= 0 {
		return errors.New("--metrics-top-tenants must be positive")
	}
	if o.MetricsBindAddress != "" {
		return errors.New("--metrics-bind-address was removed: it served /metrics over plain HTTP to anyone who could reach it; " +
			"use --secure-port (and --bind-address): HTTPS, each request authenticated and authorized by the management plane")
	}
	if err := o.Serving.Validate(); err != nil {
		return err
	}
	if err := o.Autoscaling.Validate(); err != nil {
		return err
	}
	if err := o.Certificates.Validate(); err != nil {
		return err
	}
	for flag, d := range map[string]time.Duration{"--node-monitor-period": o.Nodes.MonitorPeriod, "--node-startup-grace-period": o.Nodes.StartupGracePeriod, "--node-monitor-grace-period": o.Nodes.MonitorGracePeriod} {
		if d <= 0 {
			return fmt.Errorf("%s must be positive", flag)
		}
	}
	return nil
}

// Main runs the command and exits non-zero on failure.
func Main() {
	if err := Run(genericapiserver.SetupSignalContext(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kplex-controller-manager:", err)
		os.Exit(1)
	}
}

// Run runs kplex-controller-manager with args until ctx ends or it fails.
func Run(ctx context.Context, args []string) error {
	cmd := NewCommand()
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// NewCommand returns the kplex-controller-manager command.
func NewCommand() *cobra.Command {
	o := NewOptions()
	var fss cliflag.NamedFlagSets
	cmd := &cobra.Command{
		Use:          "kplex-controller-manager",
		Short:        "Run Kubernetes controllers for every tenant of a kplex apiserver",
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			verflag.PrintAndExitIfRequested()
			if err := logsapi.ValidateAndApply(o.Logs, nil); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			opts, err := o.managerOptions()
			if err != nil {
				return err
			}
			if err := o.Serving.Serve(cmd.Context(), opts.Loopback); err != nil {
				return err
			}
			return manager.Run(cmd.Context(), opts)
		},
	}
	o.AddFlags(&fss)
	verflag.AddFlags(fss.FlagSet("global"))
	globalflag.AddGlobalFlags(fss.FlagSet("global"), cmd.Name(), logs.SkipLoggingConfigurationFlags())
	for _, name := range fss.Order {
		cmd.Flags().AddFlagSet(fss.FlagSets[name])
	}
	cliflag.SetUsageAndHelpFunc(cmd, fss, 100)
	return cmd
}

func (o *Options) managerOptions() (manager.Options, error) {
	loading := &clientcmd.ClientConfigLoadingRules{ExplicitPath: o.Kubeconfig}
	if o.Kubeconfig == "" {
		loading = clientcmd.NewDefaultClientConfigLoadingRules()
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{CurrentContext: o.Context}).ClientConfig()
	if err != nil {
		return manager.Options{}, fmt.Errorf("--kubeconfig: %w", err)
	}
	if strings.Contains(cfg.Host, tenant.PathPrefix) {
		return manager.Options{}, fmt.Errorf("--kubeconfig addresses %s, a tenant's path: give the management plane's (context kplex-root)", cfg.Host)
	}
	ca := cfg.CAData
	file := o.RootCAFile
	if file == "" {
		file = cfg.CAFile
	}
	if file != "" {
		if ca, err = os.ReadFile(file); err != nil {
			return manager.Options{}, fmt.Errorf("--root-ca-file: %w", err)
		}
	}
	if len(ca) == 0 {
		return manager.Options{}, errors.New("no CA to publish: give --root-ca-file (the apiserver's ca.crt)")
	}
	var saKey any
	if o.ServiceAccountKeyFile != "" {
		if saKey, err = keyutil.PrivateKeyFromFile(o.ServiceAccountKeyFile); err != nil {
			return manager.Options{}, fmt.Errorf("--service-account-private-key-file: %w", err)
		}
	}
	return manager.Options{Loopback: cfg, RootCA: ca, QuietPeriod: o.QuietPeriod, LeaderElection: o.LeaderElection, Nodes: o.Nodes, ServiceAccountKey: saKey, MetricsTopTenants: o.MetricsTopTenants, Autoscaling: o.Autoscaling, NodeIPAM: o.NodeIPAM, Certificates: o.Certificates}, nil
}
