package nodeagent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kplex/kplex/nodeagent/devices"
)

// startDevices serves the device-plugin registration socket.
func startDevices(ctx context.Context, cfg *Config) (Devices, error) {
	m := devices.New(devices.Options{Dir: cfg.DevicePluginDir})
	if err := m.Start(ctx); err != nil {
		return nil, fmt.Errorf("serving the device-plugin registration socket in %s: %w", cfg.DevicePluginDir, err)
	}
	return pluginDevices{m}, nil
}

// pluginDevices hands the device plugins' answers to CRI.
type pluginDevices struct{ *devices.Manager }

func (p pluginDevices) Allocate(ctx context.Context, podUID, containerName string, requests v1.ResourceList) (*Allocation, error) {
	a, err := p.Manager.Allocate(ctx, podUID, containerName, requests)
	if err != nil {
		return nil, err
	}
	out := &Allocation{Envs: a.Envs, Annotations: a.Annotations}
	for _, m := range a.Mounts {
		out.Mounts = append(out.Mounts, &runtimeapi.Mount{ContainerPath: m.ContainerPath, HostPath: m.HostPath, Readonly: m.ReadOnly})
	}
	for _, d := range a.Devices {
		out.Devices = append(out.Devices, &runtimeapi.Device{ContainerPath: d.ContainerPath, HostPath: d.HostPath, Permissions: d.Permissions})
	}
	for _, d := range a.CDIDevices {
		out.CDIDevices = append(out.CDIDevices, &runtimeapi.CDIDevice{Name: d.Name})
	}
	return out, nil
}

// GPUResource is the resource name simulated GPUs are advertised under.
const GPUResource = "nvidia.com/gpu"

// simulatedGPUs gives a simulated node GPUs without a device plugin: the
// scheduler and quotas see them; containers get their IDs in
// NVIDIA_VISIBLE_DEVICES, as from NVIDIA's plugin.
type simulatedGPUs struct {
	mu       sync.Mutex
	ids      []string
	assigned map[string]string // device id -> pod uid
	changes  chan struct{}
}

func newSimulatedGPUs(node string, n int) *simulatedGPUs {
	g := &simulatedGPUs{assigned: map[string]string{}, changes: make(chan struct{}, 1)}
	for i := range n {
		g.ids = append(g.ids, fmt.Sprintf("GPU-%s-%d", node, i))
	}
	return g
}

func (g *simulatedGPUs) Resources() (v1.ResourceList, v1.ResourceList) {
	l := v1.ResourceList{GPUResource: *resource.NewQuantity(int64(len(g.ids)), resource.DecimalSI)}
	return l, l.DeepCopy()
}

func (g *simulatedGPUs) Changes() <-chan struct{} { return g.changes }

func (g *simulatedGPUs) Allocate(_ context.Context, podUID, _ string, requests v1.ResourceList) (*Allocation, error) {
	q, ok := requests[GPUResource]
	if !ok {
		return &Allocation{}, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var mine, free []string
	for _, id := range g.ids {
		switch g.assigned[id] {
		case podUID:
			mine = append(mine, id)
		case "":
			free = append(free, id)
		}
	}
	want := int(q.Value())
	for len(mine) < want && len(free) > 0 {
		g.assigned[free[0]] = podUID
		mine, free = append(mine, free[0]), free[1:]
	}
	if len(mine) < want {
		return nil, fmt.Errorf("%s: requested %d, %d free", GPUResource, want, len(mine))
	}
	sort.Strings(mine)
	return &Allocation{Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(mine[:want], ",")}}, nil
}

func (g *simulatedGPUs) Release(podUID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id, uid := range g.assigned {
		if uid == podUID {
			delete(g.assigned, id)
		}
	}
}

func (g *simulatedGPUs) Retain(live func(string) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id, uid := range g.assigned {
		if !live(uid) {
			delete(g.assigned, id)
		}
	}
}
