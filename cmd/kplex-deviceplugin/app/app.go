// Package app is kplex-deviceplugin's command: flags in the style of
// NVIDIA's device plugin over deviceplugin/server.
package app

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
	cliflag "k8s.io/component-base/cli/flag"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/version/verflag"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/kplex/kplex/cmd/internal/component"
	"github.com/kplex/kplex/deviceplugin/gpu"
	"github.com/kplex/kplex/deviceplugin/server"
)

// Main runs the command and exits non-zero on failure.
func Main() { component.Main(NewCommand) }

// Run runs kplex-deviceplugin with args until ctx ends or it fails.
func Run(ctx context.Context, args []string) error {
	return component.Run(ctx, NewCommand(), args)
}

// NewCommand returns the kplex-deviceplugin command.
func NewCommand() *cobra.Command {
	opts := server.Options{DevicePluginDir: pluginapi.DevicePluginPath, LabelsFile: server.DefaultLabelsFile}
	logging := logsapi.NewLoggingConfiguration()
	failOnInitError := true
	var fss cliflag.NamedFlagSets
	cmd := &cobra.Command{
		Use:   "kplex-deviceplugin",
		Short: "Advertise a node's NVIDIA GPUs to its kplex-nodeagent",
		Long: `kplex-deviceplugin finds the node's NVIDIA GPUs through NVML (or simulates a
node with --simulate), registers nvidia.com/gpu with the node agent's
device-plugin socket, reports their health (critical Xid and ECC errors;
DP_DISABLE_HEALTHCHECKS=all turns it off), hands GPUs to containers in
NVIDIA_VISIBLE_DEVICES, shares them by time-slicing per NVIDIA's config file
format, and writes the node's GPU feature labels (nvidia.com/gpu.product, ...)
for the agent to apply.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			verflag.PrintAndExitIfRequested()
			if err := logsapi.ValidateAndApply(logging, nil); err != nil {
				return err
			}
			if cmd.Flags().Changed("fail-on-init-error") {
				opts.FailOnInitError = &failOnInitError
			}
			return server.Run(cmd.Context(), opts)
		},
	}
	fs := fss.FlagSet("device plugin")
	fs.StringVar(&opts.DevicePluginDir, "device-plugin-dir", opts.DevicePluginDir, "directory of the node agent's registration socket (kubelet.sock), where this plugin's socket goes too")
	fs.StringVar(&opts.ConfigFile, "config-file", opts.ConfigFile, "NVIDIA device-plugin config file (version: v1; sharing.timeSlicing); empty: no sharing")
	fs.BoolVar(&failOnInitError, "fail-on-init-error", failOnInitError, "exit when NVML cannot be initialised (no driver); false waits with no GPUs advertised. Overrides the config file's flags.failOnInitError")
	fs.StringVar(&opts.Simulate, "simulate", opts.Simulate, "simulate a node's GPUs instead of reading NVML: one of "+strings.Join(gpu.SimulatedSpecs(), ", "))
	fs.StringVar(&opts.LabelsFile, "node-labels-file", opts.LabelsFile, "file the node's GPU feature labels are written to, in the node agent's --node-labels-dir; empty writes none")
	logsapi.AddFlags(logging, fss.FlagSet("logs"))
	component.AddFlagSets(cmd, &fss)
	return cmd
}
