package plugin

import (
	"fmt"
	"strings"

	"github.com/kplex/kplex/deviceplugin/gpu"
)

// replicaSep separates a GPU's UUID from the replica number in the device
// IDs of a time-sliced resource, as in NVIDIA's plugin.
const replicaSep = "::"

// resource is one advertised resource: its device IDs and the GPU behind
// each. It does not change once built.
type resource struct {
	name     string
	replicas int    // per GPU; 1 when not shared
	socket   string // base name of the plugin's socket in Options.Dir
	gpus     []gpu.Device
	ids      []string           // advertised device IDs, GPU by GPU
	byID     map[string]replica // device ID -> GPU and replica
	links    [][]int            // NVLinks between gpus[i] and gpus[j]
}

// replica is a device ID's GPU (index into resource.gpus) and number.
type replica struct{ gpu, n int }

func newResource(name string, replicas int, gpus []gpu.Device, nvlinks func(a, b int) int) *resource {
	r := &resource{
		name:     name,
		replicas: replicas,
		socket:   socketName(name),
		gpus:     gpus,
		byID:     make(map[string]replica, len(gpus)*replicas),
		links:    make([][]int, len(gpus)),
	}
	for i, d := range gpus {
		for n := range replicas {
			id := deviceID(d.UUID, n, replicas)
			r.ids = append(r.ids, id)
			r.byID[id] = replica{gpu: i, n: n}
		}
		// Read once: NVML topology queries are slow and do not change.
		r.links[i] = make([]int, len(gpus))
		for j, e := range gpus {
			if i != j {
				r.links[i][j] = nvlinks(d.Index, e.Index)
			}
		}
	}
	return r
}

// deviceID is the UUID of an unshared GPU, <uuid>::<n> for a replica.
func deviceID(uuid string, n, replicas int) string {
	if replicas == 1 {
		return uuid
	}
	return fmt.Sprintf("%s%s%d", uuid, replicaSep, n)
}

// socketName turns nvidia.com/gpu.shared into kplex-nvidia-gpu.shared.sock.
func socketName(resource string) string {
	domain, name, _ := strings.Cut(resource, "/")
	vendor, _, _ := strings.Cut(domain, ".")
	return "kplex-" + vendor + "-" + strings.ReplaceAll(name, "/", "-") + ".sock"
}

// lookup maps device IDs to their GPUs (indexes into r.gpus), each once,
// in the order of ids.
func (r *resource) lookup(ids []string) ([]int, error) {
	var gpus []int
	seen := make(map[int]bool, len(ids))
	for _, id := range ids {
		rep, ok := r.byID[id]
		if !ok {
			return nil, fmt.Errorf("unknown device: %s", id)
		}
		if !seen[rep.gpu] {
			seen[rep.gpu] = true
			gpus = append(gpus, rep.gpu)
		}
	}
	return gpus, nil
}
