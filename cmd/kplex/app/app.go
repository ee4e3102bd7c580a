// Package app assembles the kplex command. Main keeps os.Exit; Run is what
// tests call.
package app

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/cli"
	createcluster "github.com/kplex/kplex/cli/create/cluster"
	"github.com/kplex/kplex/cli/create/nodetoken"
	"github.com/kplex/kplex/cli/dashboard"
	deletecluster "github.com/kplex/kplex/cli/delete/cluster"
	"github.com/kplex/kplex/cli/down"
	getclusters "github.com/kplex/kplex/cli/get/clusters"
	"github.com/kplex/kplex/cli/getcredentials"
	toppools "github.com/kplex/kplex/cli/top/pools"
	toptenants "github.com/kplex/kplex/cli/top/tenants"
	"github.com/kplex/kplex/cli/up"
)

// Main runs kplex with the process's arguments and exits non-zero on error.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, cli.StandardStreams(), os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		os.Exit(1)
	}
}

// Run runs kplex with args.
func Run(ctx context.Context, streams cli.Streams, args []string) error {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// NewCommand returns the root command.
func NewCommand(streams cli.Streams) *cobra.Command {
	g := &cli.Global{}
	cmd := &cobra.Command{
		Use:           "kplex",
		Short:         "Thousands of isolated Kubernetes control planes from one apiserver",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	g.AddFlags(cmd.PersistentFlags())
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	cmd.PersistentFlags().AddGoFlag(klogFlags.Lookup("v"))

	create := &cobra.Command{Use: "create", Short: "Create a cluster", Args: cobra.NoArgs}
	create.AddCommand(createcluster.NewCommand(g, streams))
	create.AddCommand(nodetoken.NewCommand(g, streams))
	del := &cobra.Command{Use: "delete", Short: "Delete a cluster", Args: cobra.NoArgs}
	del.AddCommand(deletecluster.NewCommand(g, streams))
	get := &cobra.Command{Use: "get", Short: "List clusters", Args: cobra.NoArgs}
	get.AddCommand(getclusters.NewCommand(g, streams))
	top := &cobra.Command{Use: "top", Short: "Show GPUs, CPU and memory requested, allocatable and within quota, per pool or tenant", Args: cobra.NoArgs}
	top.AddCommand(toppools.NewCommand(g, streams), toptenants.NewCommand(g, streams))
	cmd.AddCommand(
		up.NewCommand(g, streams),
		down.NewCommand(g, streams),
		create, del, get,
		getcredentials.NewCommand(g, streams),
		top, dashboard.NewCommand(g, streams),
		&cobra.Command{
			Use: "version", Short: "Print the Kubernetes version kplex serves", Args: cobra.NoArgs,
			Run: func(*cobra.Command, []string) { fmt.Fprintln(streams.Out, version.Get().GitVersion) },
		},
	)
	return cmd
}
