// Package app is kplex-scheduler's command: kube-scheduler's own flags
// and config file, over scheduler/server.
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	genericapiserver "k8s.io/apiserver/pkg/server"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/cli/globalflag"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/version/verflag"
	"k8s.io/klog/v2"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/kplex/kplex/metrics/bounded"
	"github.com/kplex/kplex/scheduler/server"
	"github.com/kplex/kplex/scheduler/tenancy"
	"github.com/kplex/kplex/tenant"
)

var applyLogs sync.Once

// Main runs the command and exits non-zero on failure.
func Main() {
	if err := Run(genericapiserver.SetupSignalContext(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kplex-scheduler:", err)
		os.Exit(1)
	}
}

// Run runs kplex-scheduler with args until ctx ends or it fails.
func Run(ctx context.Context, args []string) error {
	cmd := NewCommand()
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// NewCommand returns the kplex-scheduler command. Its flags are
// kube-scheduler's; --kubeconfig must address the management plane
// (context kplex-root) as system:masters.
func NewCommand() *cobra.Command {
	opts := options.NewOptions()
	topTenants := bounded.DefaultTopTenants
	if err := server.KeepBackoffQueueOutOfFairShare(); err != nil {
		klog.ErrorS(err, "Keeping the back-off queue out of fair share")
	}
	cmd := &cobra.Command{
		Use:   "kplex-scheduler",
		Short: "Schedule the pods of every tenant of a kplex apiserver onto the shared node pools",
		Long: `kplex-scheduler is kube-scheduler with the kplex plugin in every profile: it
reads the pods of all tenants through one cross-tenant informer and places
them on the management plane's nodes. Nodes in a dedicated NodePool take
only their tenant's pods, whatever tolerations others write; TenantQuotas
bound each tenant's requests per pool; the queue serves tenants by fair
share; preemption stays within a tenant.`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return opts.ComponentGlobalsRegistry.Set()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			verflag.PrintAndExitIfRequested()
			fg := opts.ComponentGlobalsRegistry.FeatureGateFor(basecompatibility.DefaultKubeComponent)
			// Logging is the process's, set up once even if the
			// scheduler is started again in it (tests restart it).
			var err error
			applyLogs.Do(func() { err = logsapi.ValidateAndApply(opts.Logs, fg) })
			if err != nil {
				return err
			}
			cliflag.PrintFlags(cmd.Flags())
			if topTenants <= 0 {
				return errors.New("--metrics-top-tenants must be positive")
			}
			tenancy.SetMetricsTopTenants(topTenants)
			if strings.Contains(opts.Master, tenant.PathPrefix) {
				return fmt.Errorf("--master addresses %s, a tenant's path: give the management plane's", opts.Master)
			}
			cc, sched, err := server.Setup(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if strings.Contains(cc.KubeConfig.Host, tenant.PathPrefix) {
				return fmt.Errorf("--kubeconfig addresses %s, a tenant's path: give the management plane's (context kplex-root)", cc.KubeConfig.Host)
			}
			return schedulerapp.Run(cmd.Context(), cc, sched)
		},
	}
	nfs := opts.Flags
	nfs.FlagSet("kplex").IntVar(&topTenants, "metrics-top-tenants", topTenants,
		"kplex_scheduler_pod_scheduling_duration_seconds names this many tenants, those with the most pods bound; the others are summed as tenant=\"_other\", so that series stay bounded whatever the number of tenants")
	verflag.AddFlags(nfs.FlagSet("global"))
	globalflag.AddGlobalFlags(nfs.FlagSet("global"), cmd.Name(), logs.SkipLoggingConfigurationFlags())
	for _, name := range nfs.Order {
		cmd.Flags().AddFlagSet(nfs.FlagSets[name])
	}
	cliflag.SetUsageAndHelpFunc(cmd, *nfs, 100)
	return cmd
}
