package nodeagent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kplex/kplex/dataplane/cni"
	"github.com/kplex/kplex/tenant"
)

// Defaults, as the kubelet's where the kubelet has one.
const (
	DefaultPort                  = 10250
	DefaultMaxPods               = 110
	DefaultLeaseDuration         = 40 * time.Second
	DefaultRenewInterval         = 10 * time.Second
	DefaultNodeStatusReport      = 5 * time.Minute
	DefaultSyncFrequency         = time.Second
	DefaultRootDir               = "/var/lib/kplex-nodeagent"
	DefaultDevicePluginDir       = "/var/lib/kubelet/device-plugins"
	DefaultNodeLabelsDir         = "/etc/kplex/node-labels.d"
	DefaultContainerdEndpoint    = "unix:///run/containerd/containerd.sock"
	RuntimeSimulated             = "simulated"
	DefaultSimulatedCPU          = "32"
	DefaultSimulatedMemory       = "256Gi"
	DefaultMaxParallelImagePulls = 4
	NetworkCNI                   = "cni"
	NetworkHost                  = "host"
	DefaultClusterDNS            = "10.96.0.10"
	DefaultClusterDomain         = "cluster.local"
	DefaultClusterCIDR           = "10.244.0.0/16"
	DefaultServiceCIDR           = "10.96.0.0/12"
	DefaultSeccompProfileRoot    = "/var/lib/kubelet/seccomp"
)

// Config is everything one agent process needs. Flags bind onto it; New
// returns the defaults.
type Config struct {
	// NodeName names the Node; default: the host name.
	NodeName string
	// Pool labels the node kplex.io/pool=<Pool>.
	Pool string
	// Tenant fences the node to one tenant: it joins the dedicated pool
	// TenantPoolName(Tenant), which the agent creates if it is missing.
	Tenant string
	// Labels and Taints are set at registration, like the kubelet's
	// --node-labels and --register-with-taints.
	Labels map[string]string
	Taints []string
	// NodeIP is the address the node reports; default: the host's
	// outbound IPv4 address, or 127.0.0.1.
	NodeIP string
	// Port serves logs and exec to the apiserver.
	Port int
	// Address is the address the port binds to.
	Address string
	// Listener, when set, is where logs and exec are served instead of
	// Address:Port, and Port is its port (kplex up picks a free one).
	Listener net.Listener
	// ClientCAFile verifies the apiserver's client certificate; TLSCertFile
	// and TLSPrivateKeyFile are the agent's serving certificate (generated
	// self-signed when empty).
	ClientCAFile      string
	TLSCertFile       string
	TLSPrivateKeyFile string
	// RuntimeEndpoint is the CRI socket, or "simulated".
	RuntimeEndpoint string
	// RootDir holds pod volumes and container logs.
	RootDir string
	// DevicePluginDir is where the device-plugin registration socket
	// (kubelet.sock) is served.
	DevicePluginDir string
	// NodeLabelsDir holds files of key=value lines that become the node's
	// labels (GPU feature labels from kplex-deviceplugin); "" reads none.
	NodeLabelsDir string
	MaxPods       int
	// LeaseDuration and RenewInterval are the node Lease's; the node's
	// status is written on change and at least every NodeStatusReport.
	LeaseDuration    time.Duration
	RenewInterval    time.Duration
	NodeStatusReport time.Duration
	// SyncFrequency is how often a pod's containers are looked at.
	SyncFrequency time.Duration
	// SimulateNodes runs this many simulated nodes from one process,
	// named <NodeName>-<i>; it implies the simulated runtime.
	SimulateNodes int
	// SimulatedCPU and SimulatedMemory are a simulated node's capacity.
	SimulatedCPU    string
	SimulatedMemory string
	// SimulatedGPUs gives each simulated node this many nvidia.com/gpu.
	SimulatedGPUs int

	// Network is "cni" (pods get their own network namespace and an IP of
	// the node's pod CIDR; Services, DNS and tenant isolation run here) or
	// "host" (every pod on the node's network, as before CNI).
	Network string
	// CNIConfDir and CNIBinDir are the container runtime's CNI directories.
	CNIConfDir, CNIBinDir string
	// ClusterDNS is the DNS server address pods are given, served on the
	// node; ClusterDomain the cluster's DNS domain.
	ClusterDNS    string
	ClusterDomain string
	// ClusterCIDR is the range of every node's pod CIDR; ServiceCIDR the
	// Services' cluster IPs.
	ClusterCIDR, ServiceCIDR string

	// SeccompProfileRoot is where a pod's Localhost seccomp profiles are
	// read from (seccompProfile.localhostProfile is relative to it).
	SeccompProfileRoot string
	// AllowedUnsafeSysctls are sysctls (or prefixes ending in *), beyond
	// the kubelet's safe set, that pods may set; each must be namespaced.
	AllowedUnsafeSysctls []string
	// RuntimeHandlers are the CRI runtime handlers the node's runtime has
	// besides its default (e.g. runsc for gVisor), announced in
	// Node.status.runtimeHandlers: pools that require a sandbox run pods
	// only on nodes announcing its handler.
	RuntimeHandlers []string
}

// NewConfig returns the defaults.
func NewConfig() *Config {
	host, _ := os.Hostname()
	return &Config{
		NodeName:         strings.ToLower(host),
		Labels:           map[string]string{},
		Port:             DefaultPort,
		Address:          "0.0.0.0",
		RuntimeEndpoint:  DefaultContainerdEndpoint,
		RootDir:          DefaultRootDir,
		DevicePluginDir:  DefaultDevicePluginDir,
		NodeLabelsDir:    DefaultNodeLabelsDir,
		MaxPods:          DefaultMaxPods,
		LeaseDuration:    DefaultLeaseDuration,
		RenewInterval:    DefaultRenewInterval,
		NodeStatusReport: DefaultNodeStatusReport,
		SyncFrequency:    DefaultSyncFrequency,
		SimulatedCPU:     DefaultSimulatedCPU,
		SimulatedMemory:  DefaultSimulatedMemory,
		Network:          NetworkCNI,
		CNIConfDir:       cni.DefaultConfDir,
		CNIBinDir:        cni.DefaultBinDir,
		ClusterDNS:       DefaultClusterDNS,
		ClusterDomain:    DefaultClusterDomain,
		ClusterCIDR:      DefaultClusterCIDR,
		ServiceCIDR:      DefaultServiceCIDR,

		SeccompProfileRoot: DefaultSeccompProfileRoot,
	}
}

// AddFlags binds the config's fields, each flag's default being the
// field's current value.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.NodeName, "hostname-override", c.NodeName, "The name of the Node this agent registers.")
	fs.StringVar(&c.Pool, "pool", c.Pool, "The NodePool this node joins (label kplex.io/pool).")
	fs.StringVar(&c.Tenant, "tenant", c.Tenant, "Fence this node to one tenant: it joins the dedicated NodePool tenant-<name>, created if missing. Excludes --pool.")
	fs.StringToStringVar(&c.Labels, "node-labels", c.Labels, "Labels to add when registering the node, key=value pairs.")
	fs.StringSliceVar(&c.Taints, "register-with-taints", c.Taints, "Taints to register the node with, key=value:Effect.")
	fs.StringVar(&c.NodeIP, "node-ip", c.NodeIP, "The IP address the node reports. Default: the host's outbound IPv4 address.")
	fs.IntVar(&c.Port, "port", c.Port, "The port logs and exec are served on, to the apiserver only.")
	fs.StringVar(&c.Address, "address", c.Address, "The address --port binds to.")
	fs.StringVar(&c.ClientCAFile, "client-ca-file", c.ClientCAFile, "The CA that signs the apiserver's kubelet client certificate; requests without such a certificate are refused.")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "The serving certificate. Default: a self-signed one, generated at start.")
	fs.StringVar(&c.TLSPrivateKeyFile, "tls-private-key-file", c.TLSPrivateKeyFile, "The serving certificate's key.")
	fs.StringVar(&c.RuntimeEndpoint, "container-runtime-endpoint", c.RuntimeEndpoint, `The CRI endpoint (containerd's socket), or "simulated" for the built-in simulated runtime.`)
	fs.StringVar(&c.RootDir, "root-dir", c.RootDir, "Where pod volumes and container logs are kept.")
	fs.StringVar(&c.DevicePluginDir, "device-plugin-dir", c.DevicePluginDir, "Where the device-plugin registration socket kubelet.sock is served.")
	fs.StringVar(&c.NodeLabelsDir, "node-labels-dir", c.NodeLabelsDir, "Directory of files with key=value lines applied as the node's labels (kplex-deviceplugin writes GPU feature labels there); empty reads none.")
	fs.IntVar(&c.MaxPods, "max-pods", c.MaxPods, "The number of pods this node can run.")
	fs.DurationVar(&c.LeaseDuration, "node-lease-duration", c.LeaseDuration, "The node Lease's duration.")
	fs.DurationVar(&c.RenewInterval, "node-lease-renew-interval", c.RenewInterval, "How often the node Lease is renewed.")
	fs.DurationVar(&c.NodeStatusReport, "node-status-report-frequency", c.NodeStatusReport, "How often the node's status is written when nothing changed.")
	fs.DurationVar(&c.SyncFrequency, "sync-frequency", c.SyncFrequency, "How often each pod's containers are checked.")
	fs.IntVar(&c.SimulateNodes, "simulate-nodes", c.SimulateNodes, "Run this many simulated nodes from this process (names <hostname-override>-<i>), with the simulated runtime.")
	fs.StringVar(&c.SimulatedCPU, "simulated-cpu", c.SimulatedCPU, "A simulated node's CPU capacity.")
	fs.StringVar(&c.SimulatedMemory, "simulated-memory", c.SimulatedMemory, "A simulated node's memory capacity.")
	fs.IntVar(&c.SimulatedGPUs, "simulated-gpus", c.SimulatedGPUs, "nvidia.com/gpu devices of each simulated node.")
	fs.StringVar(&c.Network, "network", c.Network, `"cni": each pod gets its own network namespace and an IP of the node's pod CIDR, with Services, cluster DNS and tenant isolation on the node; "host": every pod on the node's network.`)
	fs.StringVar(&c.CNIConfDir, "cni-conf-dir", c.CNIConfDir, "The container runtime's CNI configuration directory; the agent writes the node's network there.")
	fs.StringVar(&c.CNIBinDir, "cni-bin-dir", c.CNIBinDir, "The directory of the CNI plugins (bridge, host-local, portmap, loopback).")
	fs.StringVar(&c.ClusterDNS, "cluster-dns", c.ClusterDNS, "The DNS server address pods are given; the node serves it.")
	fs.StringVar(&c.ClusterDomain, "cluster-domain", c.ClusterDomain, "The cluster's DNS domain.")
	fs.StringVar(&c.ClusterCIDR, "cluster-cidr", c.ClusterCIDR, "The pods' address range, of which each node's pod CIDR is a part.")
	fs.StringVar(&c.ServiceCIDR, "service-cluster-ip-range", c.ServiceCIDR, "The Services' cluster IP range.")
	fs.StringVar(&c.SeccompProfileRoot, "seccomp-profile-root", c.SeccompProfileRoot, "The directory of Localhost seccomp profiles: a pod's seccompProfile.localhostProfile is a path relative to it.")
	fs.StringSliceVar(&c.RuntimeHandlers, "runtime-handlers", c.RuntimeHandlers, "CRI runtime handlers the container runtime is configured with besides its default, announced in the Node's status.runtimeHandlers (runsc: gVisor; pools with sandbox gvisor run pods only on nodes announcing it, and shared pools sandbox tenants' pods where it is).")
	fs.StringSliceVar(&c.AllowedUnsafeSysctls, "allowed-unsafe-sysctls", c.AllowedUnsafeSysctls, "Unsafe sysctls or sysctl patterns (ending in *) pods may set, beyond the safe ones. Each must be namespaced (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.*).")
}

// Simulated reports whether pods run in the simulated runtime.
func (c *Config) Simulated() bool {
	return c.RuntimeEndpoint == RuntimeSimulated || c.SimulateNodes > 0
}

// Validate names the flag at fault.
func (c *Config) Validate() error {
	var errs []error
	if msgs := validation.IsDNS1123Subdomain(c.NodeName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--hostname-override %q: %s", c.NodeName, strings.Join(msgs, "; ")))
	}
	for _, h := range c.RuntimeHandlers {
		if msgs := validation.IsDNS1123Label(h); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--runtime-handlers %q: %s", h, strings.Join(msgs, "; ")))
		}
	}
	if c.Pool != "" && c.Tenant != "" {
		errs = append(errs, errors.New("--pool and --tenant exclude each other: a node fenced to a tenant is in that tenant's dedicated pool"))
	}
	if c.Pool != "" {
		if msgs := validation.IsDNS1123Subdomain(c.Pool); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--pool %q: %s", c.Pool, strings.Join(msgs, "; ")))
		}
	}
	if c.Tenant != "" {
		if err := tenant.ValidateName(c.Tenant); err != nil {
			errs = append(errs, fmt.Errorf("--tenant: %w", err))
		}
	}
	if _, err := c.ParsedTaints(); err != nil {
		errs = append(errs, err)
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d: must be 0-65535", c.Port))
	}
	if c.MaxPods < 1 {
		errs = append(errs, fmt.Errorf("--max-pods %d: must be at least 1", c.MaxPods))
	}
	if c.RenewInterval <= 0 || c.LeaseDuration <= c.RenewInterval {
		errs = append(errs, fmt.Errorf("--node-lease-duration (%s) must be longer than --node-lease-renew-interval (%s)", c.LeaseDuration, c.RenewInterval))
	}
	if c.Network != NetworkCNI && c.Network != NetworkHost {
		errs = append(errs, fmt.Errorf("--network %q: must be %q or %q", c.Network, NetworkCNI, NetworkHost))
	}
	for flag, v := range map[string]string{"--cluster-cidr": c.ClusterCIDR, "--service-cluster-ip-range": c.ServiceCIDR} {
		if _, _, err := net.ParseCIDR(v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", flag, v, err))
		}
	}
	if net.ParseIP(c.ClusterDNS) == nil {
		errs = append(errs, fmt.Errorf("--cluster-dns %q: not an IP address", c.ClusterDNS))
	}
	if c.SyncFrequency <= 0 {
		errs = append(errs, errors.New("--sync-frequency must be positive"))
	}
	if c.SimulateNodes < 0 {
		errs = append(errs, errors.New("--simulate-nodes must not be negative"))
	}
	for flag, v := range map[string]string{"--simulated-cpu": c.SimulatedCPU, "--simulated-memory": c.SimulatedMemory} {
		if _, err := resource.ParseQuantity(v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", flag, v, err))
		}
	}
	for _, p := range c.AllowedUnsafeSysctls {
		if _, _, _, err := parseSysctlPattern(p); err != nil {
			errs = append(errs, fmt.Errorf("--allowed-unsafe-sysctls: %w", err))
		}
	}
	if !filepath.IsAbs(c.SeccompProfileRoot) {
		errs = append(errs, fmt.Errorf("--seccomp-profile-root %q: must be an absolute path", c.SeccompProfileRoot))
	}
	if (c.TLSCertFile == "") != (c.TLSPrivateKeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-private-key-file go together"))
	}
	return errors.Join(errs...)
}

// ParsedTaints parses --register-with-taints.
func (c *Config) ParsedTaints() ([]v1.Taint, error) {
	var out []v1.Taint
	for _, s := range c.Taints {
		keyValue, effect, ok := strings.Cut(s, ":")
		key, value, _ := strings.Cut(keyValue, "=")
		e := v1.TaintEffect(effect)
		if !ok || key == "" || (e != v1.TaintEffectNoSchedule && e != v1.TaintEffectPreferNoSchedule && e != v1.TaintEffectNoExecute) {
			return nil, fmt.Errorf("--register-with-taints %q: want key[=value]:NoSchedule|PreferNoSchedule|NoExecute", s)
		}
		out = append(out, v1.Taint{Key: key, Value: value, Effect: e})
	}
	return out, nil
}

// TenantPoolName is the dedicated pool a node fenced to tenantName joins.
func TenantPoolName(tenantName string) string { return "tenant-" + tenantName }
