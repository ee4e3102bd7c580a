// Package config reads kplex-deviceplugin's config file, which has the
// format of NVIDIA's k8s-device-plugin (api/config/v1), so that files
// written for NVIDIA's plugin work unchanged:
//
//	version: v1
//	flags:
//	  migStrategy: none
//	  failOnInitError: true
//	  plugin:
//	    passDeviceSpecs: true
//	    deviceListStrategy: envvar
//	    deviceIDStrategy: uuid
//	sharing:
//	  timeSlicing:
//	    renameByDefault: false
//	    failRequestsGreaterThanOne: false
//	    resources:
//	    - name: nvidia.com/gpu
//	      replicas: 4
//
// Settings kplex does not implement (MIG strategies other than none, MPS,
// CDI device lists, index device IDs, GDS, MOFED) are rejected with an
// error naming the field rather than ignored.
package config

import "strings"

const (
	// Version is the only config version.
	Version = "v1"
	// GPUResource is the resource whole GPUs are advertised as.
	GPUResource = "nvidia.com/gpu"
	// ResourcePrefix is the domain of every resource the plugin advertises;
	// resource names without a domain get it, as in NVIDIA's plugin.
	ResourcePrefix = "nvidia.com/"
	// SharedSuffix is appended to the name of a time-sliced resource when
	// renameByDefault is set.
	SharedSuffix = ".shared"

	MigStrategyNone          = "none"
	DeviceListStrategyEnvvar = "envvar"
	DeviceIDStrategyUUID     = "uuid"
	DevicesAll               = "all"
)

// Config is the whole file.
type Config struct {
	Version string  `json:"version"`
	Flags   Flags   `json:"flags"`
	Sharing Sharing `json:"sharing"`
}

// Flags are the settings NVIDIA's plugin also takes on its command line.
type Flags struct {
	// MigStrategy must be "none": MIG-enabled GPUs are advertised whole.
	MigStrategy string `json:"migStrategy"`
	// FailOnInitError makes the plugin exit when NVML cannot be
	// initialised; otherwise it keeps running and advertises nothing.
	FailOnInitError bool `json:"failOnInitError"`
	// NvidiaDriverRoot is where the driver is installed on the host.
	NvidiaDriverRoot string `json:"nvidiaDriverRoot,omitempty"`
	// NvidiaDevRoot is where the device nodes are on the host (/dev under
	// it); NvidiaDriverRoot when empty.
	NvidiaDevRoot string `json:"nvidiaDevRoot,omitempty"`
	// GDSEnabled and MOFEDEnabled must be false: kplex does not pass
	// GPUDirect Storage or Mellanox devices.
	GDSEnabled   bool `json:"gdsEnabled,omitempty"`
	MOFEDEnabled bool `json:"mofedEnabled,omitempty"`
	// DeviceDiscoveryStrategy is "auto" or "nvml".
	DeviceDiscoveryStrategy string `json:"deviceDiscoveryStrategy,omitempty"`
	// UseNodeFeatureAPI is kept for the labeller (GFD).
	UseNodeFeatureAPI bool        `json:"useNodeFeatureAPI,omitempty"`
	Plugin            PluginFlags `json:"plugin"`
	GFD               GFDFlags    `json:"gfd"`
}

// PluginFlags are the device plugin's own settings.
type PluginFlags struct {
	// PassDeviceSpecs makes Allocate return the GPUs' device nodes.
	// kplex defaults it to true (NVIDIA: false): without NVIDIA's container
	// runtime hook the device nodes are what gives a container its GPUs.
	PassDeviceSpecs bool `json:"passDeviceSpecs"`
	// DeviceListStrategy must be envvar (NVIDIA_VISIBLE_DEVICES); it may be
	// written as a string or a list, as NVIDIA accepts both.
	DeviceListStrategy StringList `json:"deviceListStrategy"`
	// DeviceIDStrategy must be uuid.
	DeviceIDStrategy    string `json:"deviceIDStrategy"`
	CDIAnnotationPrefix string `json:"cdiAnnotationPrefix,omitempty"`
	NvidiaCTKPath       string `json:"nvidiaCTKPath,omitempty"`
	ContainerDriverRoot string `json:"containerDriverRoot,omitempty"`
}

// GFDFlags are GPU feature discovery's settings, kept for the labeller.
type GFDFlags struct {
	Oneshot         bool      `json:"oneshot,omitempty"`
	NoTimestamp     bool      `json:"noTimestamp,omitempty"`
	SleepInterval   *Duration `json:"sleepInterval,omitempty"`
	OutputFile      string    `json:"outputFile,omitempty"`
	MachineTypeFile string    `json:"machineTypeFile,omitempty"`
}

// Sharing says how GPUs are shared between containers.
type Sharing struct {
	TimeSlicing ReplicatedResources `json:"timeSlicing"`
	// MPS is rejected when set: kplex does not run an MPS control daemon.
	MPS *ReplicatedResources `json:"mps,omitempty"`
}

// ReplicatedResources lists the resources to advertise several times.
type ReplicatedResources struct {
	// RenameByDefault advertises each shared resource as <name>.shared.
	RenameByDefault bool `json:"renameByDefault,omitempty"`
	// FailRequestsGreaterThanOne refuses containers asking for more than one
	// replica, which would not give them more GPU time.
	FailRequestsGreaterThanOne bool                 `json:"failRequestsGreaterThanOne,omitempty"`
	Resources                  []ReplicatedResource `json:"resources,omitempty"`
}

// ReplicatedResource is one shared resource.
type ReplicatedResource struct {
	// Name is the resource shared; only nvidia.com/gpu (or "gpu").
	Name string `json:"name"`
	// Rename is the name to advertise it under instead.
	Rename string `json:"rename,omitempty"`
	// Devices must be "all" (or empty): every GPU is shared.
	Devices string `json:"devices,omitempty"`
	// Replicas is how many containers may share each GPU. kplex accepts 1
	// (not shared), NVIDIA requires at least 2.
	Replicas int `json:"replicas"`
}

// Default is the config used without a file: no sharing, fail on init error.
func Default() *Config {
	return &Config{
		Version: Version,
		Flags: Flags{
			MigStrategy:     MigStrategyNone,
			FailOnInitError: true,
			Plugin: PluginFlags{
				PassDeviceSpecs:    true,
				DeviceListStrategy: StringList{DeviceListStrategyEnvvar},
				DeviceIDStrategy:   DeviceIDStrategyUUID,
			},
		},
	}
}

// TimeSliced says how resource (e.g. nvidia.com/gpu) is advertised: the
// replicas of each GPU (1 when not shared) and the advertised name.
func (c *Config) TimeSliced(resource string) (replicas int, name string) {
	ts := c.Sharing.TimeSlicing
	for _, r := range ts.Resources {
		if r.Name != resource || r.Replicas <= 1 {
			continue
		}
		switch {
		case r.Rename != "":
			return r.Replicas, r.Rename
		case ts.RenameByDefault:
			return r.Replicas, resource + SharedSuffix
		}
		return r.Replicas, resource
	}
	return 1, resource
}

// DevRoot is the host directory holding dev/nvidia*: nvidiaDevRoot, else
// nvidiaDriverRoot, else /.
func (c *Config) DevRoot() string {
	for _, root := range []string{c.Flags.NvidiaDevRoot, c.Flags.NvidiaDriverRoot} {
		if root != "" {
			return root
		}
	}
	return "/"
}

// qualify gives a resource name without a domain NVIDIA's domain.
func qualify(name string) string {
	if name == "" || strings.Contains(name, "/") {
		return name
	}
	return ResourcePrefix + name
}
