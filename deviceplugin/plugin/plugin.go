package plugin

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/kplex/kplex/deviceplugin/config"
	"github.com/kplex/kplex/deviceplugin/gpu"
)

// Sharing strategies, as NVIDIA's nvidia.com/gpu.sharing-strategy label
// spells them.
const (
	SharingNone        = "none"
	SharingTimeSlicing = "time-slicing"
)

// Options configure a Plugin.
type Options struct {
	// Dir holds the kubelet's registration socket kubelet.sock and the
	// plugin's own sockets; pluginapi.DevicePluginPath when empty.
	Dir string
	// Config is the device plugin config; config.Default() when nil.
	Config *config.Config
	// Backend reads the GPUs and their health. Required.
	Backend gpu.Backend
	// InitRetryInterval is how often a failed Init is retried when the
	// config's failOnInitError is false; 30s when zero.
	InitRetryInterval time.Duration
	// HealthRetryInterval is how long to wait before watching health again
	// after Backend.WatchHealth failed; 30s when zero. Devices keep their
	// last known health meanwhile.
	HealthRetryInterval time.Duration
	// WatchInterval is how often kubelet.sock is checked for being created
	// or recreated; 1s when zero.
	WatchInterval time.Duration
}

// Plugin is the NVIDIA GPU device plugin. Create it with New, then Run it.
type Plugin struct {
	opts     Options
	cfg      *config.Config
	backend  gpu.Backend
	resource string // advertised name of nvidia.com/gpu
	replicas int    // per GPU; 1 when not shared
	health   *health
	running  atomic.Bool
	logger   klog.Logger // set by Run, for the gRPC handlers

	mu      sync.Mutex
	devices []gpu.Device
}

// New checks opts and fills in defaults; it touches neither the backend
// nor the filesystem.
func New(opts Options) (*Plugin, error) {
	if opts.Backend == nil {
		return nil, errors.New("device plugin: no GPU backend")
	}
	if opts.Dir == "" {
		opts.Dir = pluginapi.DevicePluginPath
	}
	if opts.Config == nil {
		opts.Config = config.Default()
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	defaultDuration(&opts.InitRetryInterval, 30*time.Second)
	defaultDuration(&opts.HealthRetryInterval, 30*time.Second)
	defaultDuration(&opts.WatchInterval, time.Second)
	replicas, name := opts.Config.TimeSliced(config.GPUResource)
	return &Plugin{
		opts:     opts,
		cfg:      opts.Config,
		backend:  opts.Backend,
		resource: name,
		replicas: replicas,
		health:   newHealth(),
		logger:   klog.Background(),
	}, nil
}

func defaultDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Devices returns the GPUs found by Run; nil before, or while Init fails.
func (p *Plugin) Devices() []gpu.Device {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.devices)
}

// Sharing says how GPUs are shared, for the node labels: the strategy
// (SharingNone or SharingTimeSlicing), the replicas per GPU (1 when not
// shared) and whether the resource is advertised under another name than
// nvidia.com/gpu.
func (p *Plugin) Sharing() (strategy string, replicas int, renamed bool) {
	strategy = SharingNone
	if p.replicas > 1 {
		strategy = SharingTimeSlicing
	}
	return strategy, p.replicas, p.resource != config.GPUResource
}

// Run initialises the backend, then advertises the GPUs to the kubelet
// until ctx ends, and returns nil then. It returns an error when the
// backend cannot be initialised and the config's failOnInitError is set
// (otherwise it advertises nothing and retries), or when it cannot serve
// its socket. Run may be called once.
func (p *Plugin) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("device plugin: Run called twice")
	}
	logger := klog.FromContext(ctx)
	p.logger = logger
	devs, err := p.start(ctx, logger)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer func() {
		if err := p.backend.Shutdown(); err != nil {
			logger.Error(err, "Shutting down the GPU backend failed")
		}
	}()
	p.mu.Lock()
	p.devices = devs
	p.mu.Unlock()
	if len(devs) == 0 {
		// Like NVIDIA's plugin: a node without GPUs registers nothing.
		logger.Info("No GPUs found; advertising nothing")
		<-ctx.Done()
		return nil
	}

	res := newResource(p.resource, p.replicas, devs, p.backend.NVLinks)
	logger.Info("Advertising GPUs", "resource", res.name, "gpus", len(devs), "replicas", res.replicas, "devices", len(res.ids))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { p.watchHealth(ctx, devs) })
	errc := make(chan error, 1)
	wg.Go(func() { errc <- p.serve(ctx, res) })
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	return err
}
