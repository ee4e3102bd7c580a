// Package server runs a node's GPU device plugin: the backend (NVML, or a
// simulated node), the kubelet device-plugin server registered with the
// node agent, and the node's GPU feature labels, written where the agent
// reads label files.
package server

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"log/slog"

	"github.com/kplex/kplex/deviceplugin/config"
	"github.com/kplex/kplex/deviceplugin/gpu"
	"github.com/kplex/kplex/deviceplugin/labels"
	"github.com/kplex/kplex/deviceplugin/plugin"
)

// Defaults.
const (
	DefaultLabelsFile = "/etc/kplex/node-labels.d/nvidia-gpu"
)

// Options configure a node's device plugin.
type Options struct {
	// DevicePluginDir holds the agent's kubelet.sock and the plugin's
	// socket; default the kubelet's.
	DevicePluginDir string
	// ConfigFile is NVIDIA's device-plugin config (version: v1); empty
	// uses the defaults: no sharing, fail on init error.
	ConfigFile string
	// FailOnInitError, when set, overrides the config file's flag.
	FailOnInitError *bool
	// Simulate names a simulated node ("h100x8"); empty uses NVML.
	Simulate string
	// LabelsFile receives the node's GPU feature labels; empty writes none.
	LabelsFile string
	// Simulator, when set, receives the simulated backend's fault injector.
	Simulator func(*gpu.Simulator)
	// RecoveryCheck is how long a faulted GPU must answer cleanly before it
	// is healthy again; zero is the backend's default (30 s).
	RecoveryCheck time.Duration
}

// Run serves the plugin until ctx ends.
func Run(ctx context.Context, opts Options) error {
	logger := klog.FromContext(ctx)
	cfg := config.Default()
	if opts.ConfigFile != "" {
		var err error
		if cfg, err = config.Load(opts.ConfigFile); err != nil {
			return fmt.Errorf("--config-file %s: %w", opts.ConfigFile, err)
		}
	}
	if opts.FailOnInitError != nil {
		cfg.Flags.FailOnInitError = *opts.FailOnInitError
	}
	backendOpts := []gpu.Option{gpu.WithLogger(slog.New(logr.ToSlogHandler(logger)))}
	if opts.RecoveryCheck != 0 {
		backendOpts = append(backendOpts, gpu.WithRecheckInterval(opts.RecoveryCheck))
	}
	var backend gpu.Backend
	if opts.Simulate != "" {
		b, sim, err := gpu.NewSimulated(opts.Simulate, backendOpts...)
		if err != nil {
			return fmt.Errorf("--simulate %s: %w", opts.Simulate, err)
		}
		if opts.Simulator != nil {
			opts.Simulator(sim)
		}
		backend = b
	} else {
		backend = gpu.NewNVML(nvml.New(), backendOpts...)
	}
	p, err := plugin.New(plugin.Options{Dir: opts.DevicePluginDir, Config: cfg, Backend: backend})
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	if opts.LabelsFile == "" {
		return <-errc
	}
	// Publish labels once the GPUs are known (and the sharing settled).
	var written map[string]string
	published := false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-tick.C:
		}
		devs := p.Devices()
		if devs == nil {
			continue
		}
		info, err := backend.Info()
		if err != nil {
			continue
		}
		strategy, replicas, renamed := p.Sharing()
		l := labels.Labels(devs, info, labels.Sharing{Strategy: strategy, Replicas: replicas, RenameByDefault: renamed})
		// Written once at least: a node whose GPUs are gone must not keep
		// the labels (and the pool) of a previous run.
		if published && maps.Equal(l, written) {
			continue
		}
		if err := labels.WriteFile(opts.LabelsFile, l); err != nil {
			logger.Error(err, "Writing GPU labels", "file", opts.LabelsFile)
			continue
		}
		written, published = l, true
		logger.Info("Published GPU labels", "file", opts.LabelsFile, "gpus", len(devs), "product", l["nvidia.com/gpu.product"])
	}
}
