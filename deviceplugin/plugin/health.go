package plugin

import (
	"context"
	"errors"
	"sync"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/kplex/kplex/deviceplugin/gpu"
)

// health is the GPUs' health, shared by every resource, with a broadcast
// of its changes to the ListAndWatch streams.
type health struct {
	mu        sync.Mutex
	unhealthy map[string]string // UUID -> reason
	changed   chan struct{}     // closed (and replaced) on every change
}

func newHealth() *health {
	return &health{unhealthy: map[string]string{}, changed: make(chan struct{})}
}

// set records ev and reports whether it changed anything.
func (h *health) set(ev gpu.HealthEvent) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, wasUnhealthy := h.unhealthy[ev.UUID]
	if ev.Healthy == !wasUnhealthy {
		return false
	}
	if ev.Healthy {
		delete(h.unhealthy, ev.UUID)
	} else {
		h.unhealthy[ev.UUID] = ev.Reason
	}
	close(h.changed)
	h.changed = make(chan struct{})
	return true
}

// list returns r's devices with their health, and a channel closed at the
// next change.
func (h *health) list(r *resource) ([]*pluginapi.Device, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	devs := make([]*pluginapi.Device, 0, len(r.ids))
	for _, id := range r.ids {
		g := r.gpus[r.byID[id].gpu]
		d := &pluginapi.Device{ID: id, Health: pluginapi.Healthy}
		if _, bad := h.unhealthy[g.UUID]; bad {
			d.Health = pluginapi.Unhealthy
		}
		if g.NUMANode >= 0 {
			// Lets the kubelet's topology manager align GPUs with CPUs.
			d.Topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(g.NUMANode)}}}
		}
		devs = append(devs, d)
	}
	return devs, h.changed
}

// watchHealth follows the backend's health events until ctx ends, and
// watches again after HealthRetryInterval when the backend stops.
func (p *Plugin) watchHealth(ctx context.Context, devs []gpu.Device) {
	logger := p.logger.WithName("health")
	known := make(map[string]bool, len(devs))
	for _, d := range devs {
		known[d.UUID] = true
	}
	events := make(chan gpu.HealthEvent)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				if !known[ev.UUID] {
					logger.V(2).Info("Ignoring health event of an unknown GPU", "uuid", ev.UUID)
					continue
				}
				if p.health.set(ev) {
					logger.Info("GPU health changed", "uuid", ev.UUID, "healthy", ev.Healthy, "reason", ev.Reason)
				}
			}
		}
	})
	for {
		err := p.backend.WatchHealth(ctx, devs, events)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("health watch ended")
		}
		logger.Error(err, "Watching GPU health failed; devices keep their last known health", "retryIn", p.opts.HealthRetryInterval)
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.opts.HealthRetryInterval):
		}
	}
}
