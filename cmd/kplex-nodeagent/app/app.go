// Package app is kplex-nodeagent's command: flags in the kubelet's style
// over nodeagent.
package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	cliflag "k8s.io/component-base/cli/flag"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/version/verflag"

	"github.com/kplex/kplex/cmd/internal/component"
	"github.com/kplex/kplex/nodeagent"
	"github.com/kplex/kplex/tenant"
)

// Main runs the command and exits non-zero on failure.
func Main() { component.Main(NewCommand) }

// Run runs kplex-nodeagent with args until ctx ends or it fails.
func Run(ctx context.Context, args []string) error {
	return component.Run(ctx, NewCommand(), args)
}

// NewCommand returns the kplex-nodeagent command.
func NewCommand() *cobra.Command {
	cfg := nodeagent.NewConfig()
	logging := logsapi.NewLoggingConfiguration()
	var kubeconfig, kubeContext, bootstrapKubeconfig, certDir string
	var fss cliflag.NamedFlagSets
	cmd := &cobra.Command{
		Use:   "kplex-nodeagent",
		Short: "Run a node (or many simulated ones) for every tenant of a kplex apiserver",
		Long: `kplex-nodeagent registers a Node in the kplex management plane, in a NodePool
(--pool) or fenced to one tenant (--tenant), heartbeats its Lease, and runs the
pods of every tenant the scheduler binds to it through CRI (containerd), or in
its built-in simulated runtime. It serves logs and exec to the apiserver.`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			verflag.PrintAndExitIfRequested()
			if err := logsapi.ValidateAndApply(logging, nil); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			if bootstrapKubeconfig != "" {
				if kubeconfig == "" || cfg.SimulateNodes > 0 {
					return errors.New("--bootstrap-kubeconfig needs --kubeconfig (where the node's own credentials are written) and one node (no --simulate-nodes)")
				}
				if certDir == "" {
					certDir = filepath.Join(cfg.RootDir, "pki")
				}
				rc, err := nodeagent.NodeCredentials(cmd.Context(), cfg.NodeName, kubeconfig, bootstrapKubeconfig, certDir)
				if err != nil {
					return err
				}
				return nodeagent.Run(cmd.Context(), cfg, rc)
			}
			loading := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
			if kubeconfig == "" {
				loading = clientcmd.NewDefaultClientConfigLoadingRules()
			}
			rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
			if err != nil {
				return fmt.Errorf("--kubeconfig: %w", err)
			}
			if strings.Contains(rc.Host, tenant.PathPrefix) {
				return fmt.Errorf("--kubeconfig addresses %s, a tenant's path: give the management plane's (context kplex-root)", rc.Host)
			}
			return nodeagent.Run(cmd.Context(), cfg, rc)
		},
	}
	generic := fss.FlagSet("generic")
	generic.StringVar(&kubeconfig, "kubeconfig", kubeconfig, "path to a kubeconfig of the kplex management plane (context kplex-root); empty uses the in-cluster config")
	generic.StringVar(&kubeContext, "context", kubeContext, "kubeconfig context to use; empty uses the current context")
	generic.StringVar(&bootstrapKubeconfig, "bootstrap-kubeconfig", bootstrapKubeconfig, "path to a kubeconfig holding a bootstrap token of the management plane (kplex create node-token): the agent asks for a client certificate of its own (system:node:<name>), writes a kubeconfig using it to --kubeconfig and renews it; a valid --kubeconfig from an earlier start is used as it is")
	generic.StringVar(&certDir, "cert-dir", certDir, "directory of the node's client certificate; default <root-dir>/pki")
	cfg.AddFlags(fss.FlagSet("node"))
	logsapi.AddFlags(logging, fss.FlagSet("logs"))
	component.AddFlagSets(cmd, &fss)
	return cmd
}
