// Package gpu reads a node's NVIDIA GPUs and their health through NVML
// (github.com/NVIDIA/go-nvml): from the driver's library on a real node,
// or from go-nvml's mock servers in the simulated backend, so that
// everything above a Backend runs the same code in tests.
package gpu

import "context"

// Device is one GPU (or a MIG-enabled GPU, whole) as NVML reports it.
type Device struct {
	// Index is NVML's index; Path the device node (/dev/nvidia<minor>),
	// which may not exist (simulated GPUs).
	Index int
	Minor int
	Path  string
	// UUID is NVML's, e.g. GPU-8f6b...; it names the device to the kubelet
	// and in NVIDIA_VISIBLE_DEVICES.
	UUID string
	// Name is the product name, e.g. "NVIDIA H100 80GB HBM3".
	Name string
	// MemoryMiB is the framebuffer size.
	MemoryMiB uint64
	// ComputeMajor and ComputeMinor are the CUDA compute capability.
	ComputeMajor, ComputeMinor int
	// MIGEnabled says MIG mode is on.
	MIGEnabled bool
	// MIGCapable says the device answers NVML's MIG mode query, i.e. it
	// supports MIG (A100, A30, H100 and later datacenter GPUs).
	MIGCapable bool
	// NUMANode is the device's NUMA node, -1 when unknown.
	NUMANode int
}

// Info is what the node's driver reports.
type Info struct {
	DriverVersion string // e.g. 550.54.15
	CUDAVersion   string // e.g. 12.4 (the driver's CUDA API version)
}

// HealthEvent says a device turned unhealthy (a critical Xid, an ECC
// error) or healthy again.
type HealthEvent struct {
	UUID    string
	Healthy bool
	Reason  string
}

// Backend reads a node's GPUs. Init must succeed before anything else;
// Shutdown ends it.
type Backend interface {
	// Init loads and initialises NVML; without a driver it fails with an
	// error saying so.
	Init() error
	Shutdown() error
	Info() (Info, error)
	Devices() ([]Device, error)
	// NVLinks returns how many NVLinks join two devices (by index); 0 when
	// none or unknown.
	NVLinks(a, b int) int
	// WatchHealth sends health changes of devices until ctx ends, or
	// returns an error when health cannot be watched.
	WatchHealth(ctx context.Context, devices []Device, events chan<- HealthEvent) error
}
