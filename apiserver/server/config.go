package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	netutils "k8s.io/utils/net"

	"k8s.io/apiserver/pkg/admission"

	"github.com/kplex/kplex/apiserver/admission/crdconversion"
	"github.com/kplex/kplex/apiserver/admission/namespacelifecycle"
	"github.com/kplex/kplex/apiserver/admission/serviceaddresses"
	"github.com/kplex/kplex/apiserver/admission/tenantmux"
	"github.com/kplex/kplex/apiserver/admission/tenantpodsecurity"
	"github.com/kplex/kplex/apiserver/fairness"
	"github.com/kplex/kplex/apiserver/nodeauth"
	"github.com/kplex/kplex/apiserver/pki"
	"github.com/kplex/kplex/apiserver/schedulingapi"
	"github.com/kplex/kplex/apiserver/tenantmetrics"
	"github.com/kplex/kplex/controllers/nodeipam"
	"github.com/kplex/kplex/metrics/bounded"
)

const (
	// DefaultSecurePort is where kplex serves when nothing else is said.
	DefaultSecurePort = 6443
	// DefaultIdleTimeout frees an idle tenant's admission plugins and CRD
	// serving: a webhook plugin instance holds ~0.4 MiB, mostly its CEL
	// compiler; CRD serving ~0.5 MiB, mostly controllers and schemas.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultServiceClusterIPRange is large, because every tenant's
	// Services draw from it.
	DefaultServiceClusterIPRange = "10.96.0.0/12"
)

// Config configures a kplex apiserver. Kube holds every upstream
// kube-apiserver option; kplex sets its own defaults on them in NewConfig.
type Config struct {
	// DataDir holds the PKI and, unless EtcdServers are given, the embedded
	// etcd's data. Default: $KPLEX_DATA_DIR, else $HOME/.kplex.
	DataDir string
	// Listener, when set, is used instead of binding the secure port. Tests
	// use it to serve on a free port.
	Listener net.Listener
	// Kube are the upstream kube-apiserver options (flags and all).
	Kube *options.ServerRunOptions
	// Fairness shapes the priority level every tenant's requests share.
	Fairness fairness.Options
	// AdmissionIdleTimeout stops a tenant's admission plugin instance
	// (webhooks, policies, LimitRanger, PodSecurity) unused for that long.
	AdmissionIdleTimeout time.Duration
	// CRDIdleTimeout drops a tenant's custom resource serving (upstream's
	// CRD handler and controllers) unused for that long.
	CRDIdleTimeout time.Duration
	// MetricsTopTenants is how many tenants get request and storage
	// series of their own (kplex_apiserver_tenant_requests_total,
	// kplex_tenant_objects, kplex_tenant_storage_bytes); the others are
	// summed as tenant="_other".
	MetricsTopTenants int
	// TenantStorageMetricsPeriod is how often etcd is scanned for what
	// each tenant stores; 0 scans never (no storage series).
	TenantStorageMetricsPeriod time.Duration
	// MetricsResolution is how often node agents' resource metrics are
	// read for metrics.k8s.io (kubectl top, autoscalers); 0 serves no
	// resource metrics.
	MetricsResolution time.Duration
	// ClusterCIDR is the pods' address range (comma-separated for dual
	// stack), as the node IPAM controller's --cluster-cidr: tenants'
	// Services may not claim its addresses. Default
	// nodeipam.DefaultClusterCIDR.
	ClusterCIDR string

	namespaces *namespacelifecycle.Plugin
	fence      *schedulingapi.Fence
	admission  *tenantmux.Hub
	addresses  *serviceaddresses.Plugin
	// podSecurity is the management plane's Pod Security floor.
	podSecurity *tenantpodsecurity.Plugin
}

// DefaultDataDir is $KPLEX_DATA_DIR, else $HOME/.kplex.
func DefaultDataDir() string {
	if dir := os.Getenv("KPLEX_DATA_DIR"); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".kplex"
	}
	return filepath.Join(home, ".kplex")
}

// NewConfig returns a Config with kplex's defaults.
func NewConfig() *Config {
	kube := options.NewServerRunOptions()
	kube.SecureServing.BindPort = DefaultSecurePort
	kube.SecureServing.BindAddress = net.ParseIP("127.0.0.1")
	kube.ServiceClusterIPRanges = DefaultServiceClusterIPRange
	kube.Authorization.Modes = []string{"RBAC"}
	// Privileged pods are the Pod Security floor's to refuse, per tenant
	// (TenantPodSecurity, default baseline), not a ban for every tenant
	// alike: a tenant on its own nodes may be trusted with them.
	kube.AllowPrivileged = true
	// Node agents join with bootstrap tokens (kube-system Secrets of root)
	// and ask for their client certificates, as kubelets do.
	kube.Authentication.BootstrapToken.Enable = true
	// Node agents report their IP and their name, which need not resolve:
	// reach them by IP first, as kubeadm does.
	kube.KubeletConfig.PreferredAddressTypes = []string{"InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS"}
	namespaces := namespacelifecycle.New()
	adm := kube.Admission.GenericAdmission
	namespaces.Register(adm.Plugins)
	adm.RecommendedPluginOrder = slices.Insert(adm.RecommendedPluginOrder, slices.Index(adm.RecommendedPluginOrder, "NamespaceLifecycle")+1, namespacelifecycle.PluginName)
	crdconversion.Register(adm.Plugins)
	schedulingapi.Register(adm.Plugins)
	fence := schedulingapi.NewFence()
	fence.Register(adm.Plugins)
	addresses := serviceaddresses.New()
	addresses.Register(adm.Plugins)
	podSecurity := tenantpodsecurity.New()
	podSecurity.Register(adm.Plugins)
	nodeauth.NewAdmission().Register(adm.Plugins)
	adm.RecommendedPluginOrder = append(adm.RecommendedPluginOrder, crdconversion.PluginName, schedulingapi.PluginName, schedulingapi.FencePluginName, serviceaddresses.PluginName, tenantpodsecurity.PluginName, nodeauth.PluginName)
	// Webhooks, policies, LimitRanger, PodSecurity and ServiceAccount keep their names and
	// places; the hub's decorator gives each tenant its own instance. It
	// goes first, so that upstream's metrics decorator wraps it.
	hub := tenantmux.New(tenantmux.Specs)
	adm.Decorators = append(admission.Decorators{hub.Decorator()}, adm.Decorators...)
	return &Config{DataDir: DefaultDataDir(), Kube: kube, Fairness: fairness.DefaultOptions, AdmissionIdleTimeout: DefaultIdleTimeout, CRDIdleTimeout: DefaultIdleTimeout,
		MetricsTopTenants: bounded.DefaultTopTenants, TenantStorageMetricsPeriod: tenantmetrics.DefaultStoragePeriod,
		MetricsResolution: 15 * time.Second, ClusterCIDR: nodeipam.DefaultClusterCIDR,
		namespaces: namespaces, fence: fence, admission: hub, addresses: addresses, podSecurity: podSecurity}
}

// rootOnlyAdmission are upstream plugins that look objects up in root
// whatever the request's tenant: they would judge every tenant's requests
// by root's namespaces. They stay off, whatever the flags say;
// TenantNamespaceLifecycle does NamespaceLifecycle's work.
var rootOnlyAdmission = []string{"NamespaceLifecycle"}

// disableRootOnlyAdmission turns rootOnlyAdmission off in c's flags.
func (c *Config) disableRootOnlyAdmission() {
	adm := c.Kube.Admission.GenericAdmission
	adm.EnablePlugins = slices.DeleteFunc(adm.EnablePlugins, func(name string) bool {
		if slices.Contains(rootOnlyAdmission, name) {
			klog.InfoS("Admission plugin stays off: it reads root's objects for every tenant", "plugin", name)
			return true
		}
		return false
	})
	for _, name := range rootOnlyAdmission {
		if !slices.Contains(adm.DisablePlugins, name) {
			adm.DisablePlugins = append(adm.DisablePlugins, name)
		}
	}
}

// AddFlags adds kplex's flags and every kube-apiserver flag, grouped as
// kube-apiserver groups them.
func (c *Config) AddFlags(fss *cliflag.NamedFlagSets) {
	fs := fss.FlagSet("kplex")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir,
		"Directory for the PKI and, unless --etcd-servers is set, the embedded etcd's data.")
	fs.Int32Var(&c.Fairness.ConcurrencyShares, "tenant-concurrency-shares", c.Fairness.ConcurrencyShares,
		"API Priority and Fairness: the tenants' priority level's share of the server's concurrency, against the suggested levels' (workload-low has 100). Small keeps a flooding tenant queued rather than executing beside the others.")
	fs.Int32Var(&c.Fairness.Queues, "tenant-queues", c.Fairness.Queues,
		"API Priority and Fairness: queues of the tenants' priority level; each tenant is one flow, shuffle-sharded onto --tenant-hand-size of them.")
	fs.Int32Var(&c.Fairness.HandSize, "tenant-hand-size", c.Fairness.HandSize,
		"API Priority and Fairness: queues each tenant's flow is dealt.")
	fs.Int32Var(&c.Fairness.QueueLengthLimit, "tenant-queue-length-limit", c.Fairness.QueueLengthLimit,
		"API Priority and Fairness: requests a queue of the tenants' level holds before it rejects with 429.")
	fs.IntVar(&c.Fairness.MaxInflight, "max-requests-inflight-per-tenant", c.Fairness.MaxInflight,
		"Requests one tenant executes at once, whatever API Priority and Fairness would allow; up to --tenant-queue-length-limit more wait, beyond that 429. Default half the CPUs (at least 1), so one tenant cannot take the CPU from the others. 0 bounds nothing.")
	fs.DurationVar(&c.AdmissionIdleTimeout, "tenant-admission-idle-timeout", c.AdmissionIdleTimeout,
		"A tenant's own instance of an admission plugin (webhooks, admission policies, LimitRanger, PodSecurity) that no request used for this long is stopped, and built again on the tenant's next request. Must exceed 30s; 0 keeps instances while the tenant has such objects.")
	fs.DurationVar(&c.CRDIdleTimeout, "tenant-crd-idle-timeout", c.CRDIdleTimeout,
		"A tenant's custom resource serving (upstream's CRD handler, with its naming, establishing and finalizer controllers) that served no request for this long, with every CRD of the tenant settled, is dropped, and made again on the tenant's next custom resource request. 0 keeps it while the tenant has CRDs.")
	fs.IntVar(&c.MetricsTopTenants, "metrics-top-tenants", c.MetricsTopTenants,
		"Per-tenant metrics of requests (by count) and storage (by bytes) name this many tenants; the others are summed as tenant=\"_other\", so that /metrics stays bounded whatever the number of tenants.")
	fs.DurationVar(&c.TenantStorageMetricsPeriod, "tenant-storage-metrics-period", c.TenantStorageMetricsPeriod,
		"How often etcd is read through (a page at a time, from the local member) to export each tenant's objects and bytes (kplex_tenant_objects, kplex_tenant_storage_bytes). 0 never reads it.")
	fs.DurationVar(&c.MetricsResolution, "metrics-resolution", c.MetricsResolution,
		"How often the node agents' resource metrics are read to serve metrics.k8s.io (kubectl top, horizontal pod autoscalers) in every tenant; CPU is the rate over this window. 0 serves no resource metrics.")
	fs.StringVar(&c.ClusterCIDR, "cluster-cidr", c.ClusterCIDR,
		"The pods' address range (comma-separated for dual stack), as the controller manager's --cluster-cidr. Tenants' Services may not name its addresses, the service CIDRs' or the nodes' as external or load balancer IPs.")
	named := c.Kube.Flags()
	for _, name := range named.Order {
		fss.FlagSet(name).AddFlagSet(named.FlagSets[name])
	}
}

// FlagSet returns all flags in one set, for callers without groups.
func (c *Config) FlagSet() *pflag.FlagSet {
	var fss cliflag.NamedFlagSets
	c.AddFlags(&fss)
	fs := pflag.NewFlagSet("kplex-apiserver", pflag.ContinueOnError)
	for _, name := range fss.Order {
		fs.AddFlagSet(fss.FlagSets[name])
	}
	return fs
}

// ErrNoDataDir is returned by Validate when --data-dir is empty.
var ErrNoDataDir = errors.New("--data-dir is required: it holds the PKI and the embedded etcd's data")

// Validate checks the kplex options; upstream options are validated in Start.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return ErrNoDataDir
	}
	if c.namespaces == nil {
		return errors.New("the Config was not made by NewConfig")
	}
	if c.MetricsTopTenants <= 0 {
		return fmt.Errorf("--metrics-top-tenants must be positive, got %d", c.MetricsTopTenants)
	}
	if c.TenantStorageMetricsPeriod < 0 {
		return fmt.Errorf("--tenant-storage-metrics-period must not be negative, got %s", c.TenantStorageMetricsPeriod)
	}
	if c.MetricsResolution != 0 && c.MetricsResolution < time.Second {
		return fmt.Errorf("--metrics-resolution must be 0 or at least 1s, got %s", c.MetricsResolution)
	}
	if _, err := c.clusterCIDRs(); err != nil {
		return err
	}
	if c.Fairness.MaxInflight < 0 {
		return fmt.Errorf("--max-requests-inflight-per-tenant must not be negative, got %d", c.Fairness.MaxInflight)
	}
	return nil
}

// clusterCIDRs parses ClusterCIDR.
func (c *Config) clusterCIDRs() ([]*net.IPNet, error) {
	cidrs, err := netutils.ParseCIDRs(strings.Split(c.ClusterCIDR, ","))
	if err != nil {
		return nil, fmt.Errorf("--cluster-cidr %q: %w", c.ClusterCIDR, err)
	}
	return cidrs, nil
}

// EmbeddedEtcd reports whether Start will run etcd in-process.
func (c *Config) EmbeddedEtcd() bool {
	return len(c.Kube.Etcd.StorageConfig.Transport.ServerList) == 0
}

// PKI returns the files of the data directory's PKI.
func (c *Config) PKI() pki.Files { return PKIFiles(c.DataDir) }

// PKIFiles are the PKI files of a server with data in dataDir.
func PKIFiles(dataDir string) pki.Files {
	return pki.Files{Dir: filepath.Join(dataDir, "pki")}
}

// applyDataDirDefaults fills the file options that depend on DataDir unless
// the user set them.
func (c *Config) applyDataDirDefaults() {
	files := c.PKI()
	s := c.Kube
	if s.SecureServing.ServerCert.CertKey.CertFile == "" {
		s.SecureServing.ServerCert.CertKey.CertFile = files.ServingCert()
		s.SecureServing.ServerCert.CertKey.KeyFile = files.ServingKey()
	}
	if s.Authentication.ClientCert.ClientCA == "" {
		s.Authentication.ClientCert.ClientCA = files.CACert()
	}
	if s.ServiceAccountSigningKeyFile == "" {
		s.ServiceAccountSigningKeyFile = files.ServiceAccountKey()
	}
	if len(s.Authentication.ServiceAccounts.KeyFiles) == 0 {
		s.Authentication.ServiceAccounts.KeyFiles = []string{files.ServiceAccountKey()}
	}
	if len(s.Authentication.ServiceAccounts.Issuers) == 0 {
		s.Authentication.ServiceAccounts.Issuers = []string{"https://kubernetes.default.svc.cluster.local"}
	}
	if s.KubeletConfig.TLSClientConfig.CertFile == "" {
		// The identity node agents serve logs and exec to.
		s.KubeletConfig.TLSClientConfig.CertFile = files.KubeletClientCert()
		s.KubeletConfig.TLSClientConfig.KeyFile = files.KubeletClientKey()
	}
	if c.Listener != nil {
		s.SecureServing.Listener = c.Listener
		s.SecureServing.BindPort = c.Listener.Addr().(*net.TCPAddr).Port
	}
}
