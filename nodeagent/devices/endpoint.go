package devices

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// endpoint is the manager's client connection to one registered plugin.
type endpoint struct {
	resource string
	socket   string
	conn     *grpc.ClientConn
	client   pluginapi.DevicePluginClient
	opts     *pluginapi.DevicePluginOptions
	cancel   context.CancelFunc
}

// runEndpoint connects to a plugin that has just registered, installs it as
// the resource's endpoint (replacing an older one) and follows its
// ListAndWatch stream until the stream ends or the manager stops.
// The caller has done m.wg.Add(1).
func (m *Manager) runEndpoint(req *pluginapi.RegisterRequest) {
	defer m.wg.Done()
	name := req.GetResourceName()
	socket := filepath.Join(m.opts.Dir, req.GetEndpoint())
	logger := m.logger.WithValues("resource", name, "socket", socket)

	ep, err := m.dial(m.ctx, name, socket, req.GetOptions())
	if err != nil {
		logger.Error(err, "Connecting to device plugin failed; the plugin must register again")
		return
	}
	defer ep.conn.Close()
	ctx, cancel := context.WithCancel(m.ctx)
	defer cancel()
	ep.cancel = cancel

	if !m.installEndpoint(ep) {
		return
	}
	err = m.listAndWatch(ctx, ep, logger)
	if ctx.Err() != nil {
		// Replaced by a newer registration or manager stopping.
		logger.V(2).Info("Device plugin stream closed", "reason", context.Cause(ctx))
		return
	}
	logger.Info("Device plugin stream ended; marking its devices unavailable", "err", err)
	m.endpointGone(ep)
}

func (m *Manager) dial(ctx context.Context, name, socket string, regOpts *pluginapi.DevicePluginOptions) (*endpoint, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("creating client for device plugin %s at %s: %w", name, socket, err)
	}
	client := pluginapi.NewDevicePluginClient(conn)
	octx, cancel := context.WithTimeout(ctx, optionsTimeout)
	defer cancel()
	// WaitForReady: a plugin may start serving only after Register returns.
	opts, err := client.GetDevicePluginOptions(octx, &pluginapi.Empty{}, grpc.WaitForReady(true))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("GetDevicePluginOptions of device plugin %s at %s: %w", name, socket, err)
	}
	if opts == nil {
		opts = regOpts
	}
	if opts == nil {
		opts = &pluginapi.DevicePluginOptions{}
	}
	return &endpoint{resource: name, socket: socket, conn: conn, client: client, opts: opts}, nil
}

// installEndpoint makes ep the resource's endpoint, stopping the previous
// one. Devices stay as they are until the plugin's first ListAndWatch answer.
func (m *Manager) installEndpoint(ep *endpoint) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return false
	}
	r := m.resources[ep.resource]
	if r == nil {
		r = &resourceState{devices: map[string]bool{}}
		m.resources[ep.resource] = r
	}
	if r.ep != nil {
		m.logger.Info("Device plugin re-registered; replacing previous connection", "resource", ep.resource, "old", r.ep.socket, "new", ep.socket)
		r.ep.cancel()
	}
	if r.stopTimer != nil {
		r.stopTimer.Stop()
		r.stopTimer = nil
	}
	r.ep = ep
	r.gen++
	m.logger.Info("Connected to device plugin", "resource", ep.resource, "socket", ep.socket,
		"preStartRequired", ep.opts.GetPreStartRequired(), "preferredAllocation", ep.opts.GetGetPreferredAllocationAvailable())
	m.signal() // allocatable may come back (healthy devices known already)
	return true
}

func (m *Manager) listAndWatch(ctx context.Context, ep *endpoint, logger klog.Logger) error {
	stream, err := ep.client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		return fmt.Errorf("ListAndWatch: %w", err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("ListAndWatch stream closed by plugin")
			}
			return fmt.Errorf("ListAndWatch: %w", err)
		}
		m.updateDevices(ep, resp.GetDevices(), logger)
	}
}

// updateDevices replaces the resource's device list with the plugin's.
func (m *Manager) updateDevices(ep *endpoint, devs []*pluginapi.Device, logger klog.Logger) {
	m.mu.Lock()
	r := m.resources[ep.resource]
	if r == nil || r.ep != ep {
		m.mu.Unlock()
		return
	}
	next := make(map[string]bool, len(devs))
	healthy := 0
	for _, d := range devs {
		if d.GetID() == "" {
			continue
		}
		h := d.GetHealth() == pluginapi.Healthy
		next[d.GetID()] = h
		if h {
			healthy++
		}
	}
	idsChanged := len(next) != len(r.devices)
	changed := idsChanged
	for id, h := range next {
		old, ok := r.devices[id]
		if !ok {
			idsChanged, changed = true, true
		} else if old != h {
			changed = true
		}
	}
	r.devices = next
	m.mu.Unlock()

	logger.V(2).Info("Device plugin reported devices", "devices", len(next), "healthy", healthy)
	if changed {
		m.signal()
	}
	if idsChanged {
		if err := m.writeCheckpoint(); err != nil {
			logger.Error(err, "Writing device checkpoint")
		}
	}
}

// endpointGone marks the resource's devices unhealthy when its plugin's
// stream ended and starts the grace period after which its capacity drops.
func (m *Manager) endpointGone(ep *endpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.resources[ep.resource]
	if r == nil || r.ep != ep || m.stopped {
		return
	}
	r.ep = nil
	m.markStoppedLocked(ep.resource, r)
	m.signal()
}

// markStoppedLocked marks all devices unhealthy and arms the grace timer.
func (m *Manager) markStoppedLocked(name string, r *resourceState) {
	for id := range r.devices {
		r.devices[id] = false
	}
	r.gen++
	gen := r.gen
	if r.stopTimer != nil {
		r.stopTimer.Stop()
	}
	r.stopTimer = time.AfterFunc(m.gracePeriod, func() { m.expire(name, gen) })
}

// expire drops the devices of a resource whose plugin did not come back
// within the grace period; the resource stays with capacity 0.
func (m *Manager) expire(name string, gen uint64) {
	m.mu.Lock()
	r := m.resources[name]
	if m.stopped || r == nil || r.ep != nil || r.gen != gen {
		m.mu.Unlock()
		return
	}
	m.logger.Info("Device plugin did not re-register within the grace period; dropping its capacity", "resource", name, "gracePeriod", m.gracePeriod)
	r.devices = map[string]bool{}
	r.stopTimer = nil
	m.mu.Unlock()
	m.signal()
	if err := m.writeCheckpoint(); err != nil {
		m.logger.Error(err, "Writing device checkpoint")
	}
}

// endpointLocked returns the live endpoint of a resource, nil if none.
// Call with mu held.
func (m *Manager) endpointLocked(name string) *endpoint {
	if r := m.resources[name]; r != nil {
		return r.ep
	}
	return nil
}

func cloneResp(r *pluginapi.ContainerAllocateResponse) *pluginapi.ContainerAllocateResponse {
	if r == nil {
		return &pluginapi.ContainerAllocateResponse{}
	}
	return proto.Clone(r).(*pluginapi.ContainerAllocateResponse)
}
