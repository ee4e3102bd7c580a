// Package app is kplex-apiserver's command: flags in kube-apiserver's style,
// and the embedded server of apiserver/server.
package app

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	genericapiserver "k8s.io/apiserver/pkg/server"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/cli/globalflag"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/version/verflag"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/apiserver/server"
)

// Main runs the command and exits non-zero on failure.
func Main() {
	if err := Run(genericapiserver.SetupSignalContext(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kplex-apiserver:", err)
		os.Exit(1)
	}
}

// Run runs kplex-apiserver with args until ctx ends or the server fails.
func Run(ctx context.Context, args []string) error {
	cmd := NewCommand()
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// NewCommand returns the kplex-apiserver command.
func NewCommand() *cobra.Command {
	cfg := server.NewConfig()
	var fss cliflag.NamedFlagSets
	cmd := &cobra.Command{
		Use:          "kplex-apiserver",
		Short:        "Serve many isolated Kubernetes control planes from one process",
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			verflag.PrintAndExitIfRequested()
			if err := logsapi.ValidateAndApply(cfg.Kube.Logs, nil); err != nil {
				return err
			}
			return Serve(cmd.Context(), cfg)
		},
	}
	cfg.AddFlags(&fss)
	verflag.AddFlags(fss.FlagSet("global"))
	globalflag.AddGlobalFlags(fss.FlagSet("global"), cmd.Name(), logs.SkipLoggingConfigurationFlags())
	for _, name := range fss.Order {
		cmd.Flags().AddFlagSet(fss.FlagSets[name])
	}
	cliflag.SetUsageAndHelpFunc(cmd, fss, 100)
	return cmd
}

// Serve starts the server and blocks until ctx ends or it fails.
func Serve(ctx context.Context, cfg *server.Config) error {
	s, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	select {
	case <-s.Ready():
		klog.InfoS("Serving", "url", s.URL(), "dataDir", cfg.DataDir)
	case err := <-s.Err():
		return err
	case <-ctx.Done():
		return nil
	}
	select {
	case err := <-s.Err():
		return err
	case <-ctx.Done():
		return nil
	}
}
