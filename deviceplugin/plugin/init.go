package plugin

import (
	"context"
	"fmt"
	"time"

	"k8s.io/klog/v2"

	"github.com/kplex/kplex/deviceplugin/gpu"
)

// start initialises the backend and lists the GPUs. Unless the config
// says failOnInitError, a failure is logged and retried every
// InitRetryInterval, so that a node whose driver is installed later (by
// the GPU operator, say) starts advertising without a restart.
func (p *Plugin) start(ctx context.Context, logger klog.Logger) ([]gpu.Device, error) {
	for {
		devs, err := p.initBackend()
		if err == nil {
			return devs, nil
		}
		if p.cfg.Flags.FailOnInitError {
			return nil, fmt.Errorf("%w (set flags.failOnInitError: false to keep running on nodes without GPUs)", err)
		}
		logger.Error(err, "GPU initialisation failed; advertising no GPUs", "retryIn", p.opts.InitRetryInterval)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(p.opts.InitRetryInterval):
		}
	}
}

func (p *Plugin) initBackend() ([]gpu.Device, error) {
	if err := p.backend.Init(); err != nil {
		return nil, fmt.Errorf("initialising NVML: %w", err)
	}
	devs, err := p.backend.Devices()
	if err != nil {
		_ = p.backend.Shutdown() // Init is retried from scratch
		return nil, fmt.Errorf("listing GPUs: %w", err)
	}
	return devs, nil
}
