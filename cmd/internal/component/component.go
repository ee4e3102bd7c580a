// Package component is what kplex's daemons share as commands, in the
// style of the Kubernetes components: a Main that runs until a signal and
// exits non-zero with the error said once, and named flag sets with
// --version and the global (klog, --help) flags, shown in sections by
// --help.
package component

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	genericapiserver "k8s.io/apiserver/pkg/server"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/cli/globalflag"
	"k8s.io/component-base/logs"
	"k8s.io/component-base/version/verflag"
)

// Main runs the command newCommand makes with the process's arguments
// until SIGTERM or SIGINT, and exits 1 on failure.
func Main(newCommand func() *cobra.Command) {
	cmd := newCommand()
	if err := Run(genericapiserver.SetupSignalContext(), cmd, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.Name(), err)
		os.Exit(1)
	}
}

// Run runs cmd with args until ctx ends or it fails; cobra prints neither
// the error nor the usage (Main says the error, once).
func Run(ctx context.Context, cmd *cobra.Command, args []string) error {
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// AddFlagSets adds fss, with --version and the global flags in its
// "global" set, to cmd and to its sectioned usage.
func AddFlagSets(cmd *cobra.Command, fss *cliflag.NamedFlagSets) {
	verflag.AddFlags(fss.FlagSet("global"))
	globalflag.AddGlobalFlags(fss.FlagSet("global"), cmd.Name(), logs.SkipLoggingConfigurationFlags())
	for _, name := range fss.Order {
		cmd.Flags().AddFlagSet(fss.FlagSets[name])
	}
	cliflag.SetUsageAndHelpFunc(cmd, *fss, 100)
}
