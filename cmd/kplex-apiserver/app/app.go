// Package app is kplex-apiserver's command: flags in kube-apiserver's style,
// and the embedded server of apiserver/server.
package app

import (
	"context"

	"github.com/spf13/cobra"
	cliflag "k8s.io/component-base/cli/flag"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/version/verflag"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/cmd/internal/component"
)

// Main runs the command and exits non-zero on failure.
func Main() { component.Main(NewCommand) }

// Run runs kplex-apiserver with args until ctx ends or the server fails.
func Run(ctx context.Context, args []string) error {
	return component.Run(ctx, NewCommand(), args)
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
	component.AddFlagSets(cmd, &fss)
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
