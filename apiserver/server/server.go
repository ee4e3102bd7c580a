package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	"k8s.io/apiserver/pkg/authentication/request/union"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/egressselector"
	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	api "k8s.io/kubernetes/pkg/apis/core"
	kubeletclient "k8s.io/kubernetes/pkg/kubelet/client"
	kubeserviceaccount "k8s.io/kubernetes/pkg/serviceaccount"

	"github.com/kplex/kplex/apiserver/admission/serviceaddresses"
	"github.com/kplex/kplex/apiserver/admission/tenantmux"
	"github.com/kplex/kplex/apiserver/etcd"
	"github.com/kplex/kplex/apiserver/fairness"
	"github.com/kplex/kplex/apiserver/lifecycle"
	"github.com/kplex/kplex/apiserver/nodeauth"
	"github.com/kplex/kplex/apiserver/partition"
	"github.com/kplex/kplex/apiserver/pki"
	"github.com/kplex/kplex/apiserver/resourcemetrics"
	"github.com/kplex/kplex/apiserver/routing"
	"github.com/kplex/kplex/apiserver/schedulingapi"
	"github.com/kplex/kplex/apiserver/tenantauth"
	"github.com/kplex/kplex/apiserver/tenantcrd"
	"github.com/kplex/kplex/apiserver/tenantmetrics"
	"github.com/kplex/kplex/apiserver/tenantrbac"
	"github.com/kplex/kplex/client/pools"
	"github.com/kplex/kplex/tenant"
	"github.com/kplex/kplex/tenant/nodeconn"
)

// Server is a running kplex apiserver.
type Server struct {
	cfg      *Config
	url      string
	tokens   *tenantauth.Tokens
	registry *lifecycle.Registry
	// nodes authorizes node agents across tenants.
	nodes    *nodeauth.Authorizer
	prefixes *partition.Prefixes
	rbac     *tenantrbac.Policy
	accounts *tenantauth.ServiceAccountGetter
	crds     *tenantcrd.Manager
	// pools decides which nodes a tenant sees: those its pods may use.
	pools atomic.Pointer[pools.Cache]
	// crdGetter is upstream's CRD storage getter before kplex confines it.
	crdGetter generic.RESTOptionsGetter

	cancel    context.CancelFunc
	ready     chan struct{}
	errc      chan error
	done      chan struct{}
	embedded  *etcd.Embedded
	etcd      *clientv3.Client
	closeOnce sync.Once
}

// Start starts etcd (unless external servers are configured) and the
// apiserver, and returns once they are starting. Readiness comes later,
// through Ready; failures after Start returns arrive on Err. Start completes
// cfg in place (the embedded etcd's address, the PKI's files): use a fresh
// Config for every Start.
func Start(ctx context.Context, cfg *Config) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := validateEtcdTLS(cfg); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Server{
		cfg:      cfg,
		cancel:   cancel,
		ready:    make(chan struct{}),
		errc:     make(chan error, 1),
		done:     make(chan struct{}),
		registry: lifecycle.NewRegistry(),
		prefixes: &partition.Prefixes{},
		crds:     tenantcrd.New(builtinGroups()),
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	files := cfg.PKI()
	hosts, err := servingHosts(cfg)
	if err != nil {
		return nil, err
	}
	if err := pki.Ensure(files, hosts); err != nil {
		return nil, fmt.Errorf("preparing the PKI in %s: %w", files.Dir, err)
	}
	secret, err := os.ReadFile(files.TenantTokenKey())
	if err != nil {
		return nil, fmt.Errorf("reading the tenant token key: %w", err)
	}
	s.tokens = tenantauth.NewTokens(secret)

	if cfg.EmbeddedEtcd() {
		s.embedded, err = etcd.Start(ctx, filepath.Join(cfg.DataDir, "etcd"), files)
		if err != nil {
			return nil, err
		}
		useEmbeddedEtcd(&cfg.Kube.Etcd.StorageConfig.Transport, s.embedded.ClientURL(), files)
	}
	if s.etcd, err = etcdClient(cfg); err != nil {
		return nil, err
	}

	tenantmetrics.Register()
	tenantmetrics.SetTopTenants(cfg.MetricsTopTenants)
	cfg.applyDataDirDefaults()
	cfg.disableRootOnlyAdmission()
	cfg.Kube.Authentication.ServiceAccounts.OptionalTokenGetter = func(root informers.SharedInformerFactory) kubeserviceaccount.ServiceAccountTokenGetter {
		s.accounts = tenantauth.NewServiceAccountGetter(root)
		return s.accounts
	}
	if err := cfg.Kube.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, fmt.Errorf("setting component globals: %w", err)
	}
	completed, err := cfg.Kube.Complete(ctx)
	if err != nil {
		return nil, fmt.Errorf("completing apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return nil, fmt.Errorf("invalid apiserver options: %w", errors.Join(errs...))
	}
	clusterCIDRs, err := cfg.clusterCIDRs()
	if err != nil {
		return nil, err
	}
	cfg.addresses.SetNetworks(serviceaddresses.Networks{
		Pods:     serviceaddresses.Prefixes(clusterCIDRs...),
		Services: serviceaddresses.Prefixes(&completed.PrimaryServiceClusterIPRange, &completed.SecondaryServiceClusterIPRange),
	})
	cfg.podSecurity.SetLevels(s.registry)
	kubeConfig, err := app.NewConfig(completed)
	if err != nil {
		return nil, fmt.Errorf("building apiserver config: %w", err)
	}
	if err := s.partition(kubeConfig); err != nil {
		return nil, err
	}
	completedConfig, err := kubeConfig.Complete()
	if err != nil {
		return nil, fmt.Errorf("completing apiserver config: %w", err)
	}
	chain, err := app.CreateServerChain(completedConfig)
	if err != nil {
		return nil, fmt.Errorf("creating apiserver: %w", err)
	}
	generic := chain.GenericAPIServer
	if err := s.resourceMetrics(generic, completedConfig); err != nil {
		return nil, err
	}
	if err := generic.AddPostStartHook("kplex-node-authorizer", func(hook genericapiserver.PostStartHookContext) error {
		go s.nodes.Run(hook)
		client, err := kubernetes.NewForConfig(hook.LoopbackClientConfig)
		if err != nil {
			return err
		}
		// The server answers once post-start hooks are running: retry
		// until the bindings are written.
		return wait.PollUntilContextCancel(hook, time.Second, true, func(ctx context.Context) (bool, error) {
			if err := nodeauth.EnsureBootstrapBindings(ctx, client); err != nil {
				klog.FromContext(ctx).V(2).Info("Writing the node bootstrap bindings; will retry", "err", err)
				return false, nil
			}
			return true, nil
		})
	}); err != nil {
		return nil, err
	}
	if err := s.nodePortRepair(generic, completedConfig); err != nil {
		return nil, err
	}
	crdOptions := s.crdOptions(completedConfig)
	if err := generic.AddPostStartHook("kplex-tenant-crds", func(hook genericapiserver.PostStartHookContext) error {
		crdOptions.Loopback = rest.CopyConfig(hook.LoopbackClientConfig)
		return s.crds.Start(hook, crdOptions)
	}); err != nil {
		return nil, err
	}
	var controller atomic.Pointer[lifecycle.Controller]
	if err := generic.AddPostStartHook("kplex-tenant-lifecycle", func(hook genericapiserver.PostStartHookContext) error {
		return s.startLifecycle(hook, completed.Etcd.StorageConfig.Prefix, &controller)
	}); err != nil {
		return nil, err
	}
	if err := generic.AddReadyzChecks(healthz.NamedCheck("kplex-tenants", func(*http.Request) error {
		if c := controller.Load(); c == nil || !c.HasSynced() {
			return errors.New("tenant registry not synced")
		}
		if !s.rbac.HasSynced() {
			return errors.New("tenant RBAC policy not synced")
		}
		if !s.cfg.namespaces.HasSynced() {
			return errors.New("tenant namespaces not synced")
		}
		if !s.cfg.admission.HasSynced() {
			return errors.New("tenant admission caches not synced")
		}
		if !s.crds.HasSynced() {
			return errors.New("tenant CRDs not synced")
		}
		return nil
	})); err != nil {
		return nil, err
	}
	generic.Handler.NonGoRestfulMux.HandlePrefix(CredentialsPath, s.credentialsHandler())
	prepared, err := chain.PrepareRun()
	if err != nil {
		return nil, fmt.Errorf("preparing apiserver: %w", err)
	}
	s.url = "https://" + net.JoinHostPort(servingHost(cfg), strconv.Itoa(cfg.Kube.SecureServing.BindPort))

	go func() {
		defer close(s.done)
		if err := prepared.Run(ctx); err != nil {
			s.errc <- err
		}
	}()
	if s.embedded != nil {
		go func() {
			select {
			case err := <-s.embedded.Err():
				s.errc <- fmt.Errorf("embedded etcd: %w", err)
			case <-ctx.Done():
			}
		}()
	}
	go s.waitReady(ctx)
	return s, nil
}

// partition hooks kplex into the upstream configuration before it is completed.
func (s *Server) partition(c *app.Config) error {
	var err error
	if s.rbac, err = tenantrbac.NewPolicy(c.KubeAPIs.ControlPlane.Generic.LoopbackClientConfig); err != nil {
		return fmt.Errorf("preparing per-tenant RBAC: %w", err)
	}
	perTenant := s.rbac.Authorizer()
	kube := c.KubeAPIs.ControlPlane.Generic
	if s.nodes, err = nodeauth.New(kube.LoopbackClientConfig); err != nil {
		return err
	}
	kube.RuleResolver = tenantauth.RuleResolver(kube.RuleResolver, perTenant)
	if s.accounts == nil {
		return errors.New("the apiserver config did not ask for a service account token getter")
	}
	if err := s.accounts.SetLoopback(kube.LoopbackClientConfig); err != nil {
		return fmt.Errorf("preparing the service account getter: %w", err)
	}
	if issuer := c.KubeAPIs.ControlPlane.Extra.ServiceAccountIssuer; issuer != nil {
		c.KubeAPIs.ControlPlane.Extra.ServiceAccountIssuer = tenantauth.TokenGenerator(issuer)
	}
	// Every connection to a node agent names the tenant it is for.
	kubelet := &c.KubeAPIs.Extra.KubeletClientConfig
	lookup := kubelet.Lookup
	kubelet.Lookup = func(nc egressselector.NetworkContext) (utilnet.DialFunc, error) {
		var base nodeconn.DialFunc
		if lookup != nil {
			d, err := lookup(nc)
			if err != nil {
				return nil, err
			}
			if d != nil {
				base = nodeconn.DialFunc(d)
			}
		}
		return utilnet.DialFunc(nodeconn.Dialer(base)), nil
	}
	generics := []*genericapiserver.Config{c.KubeAPIs.ControlPlane.Generic, &c.ApiExtensions.GenericConfig.Config, &c.Aggregator.GenericConfig.Config}
	inflight := fairness.NewInflight(s.cfg.Fairness.MaxInflight, int(s.cfg.Fairness.QueueLengthLimit))
	for _, g := range generics {
		g.RESTOptionsGetter = partition.RESTOptionsGetter(g.RESTOptionsGetter, s.prefixes, s.rootViews())
		tokens := bearertoken.New(s.tokens.Authenticator(s.registry))
		if g.Authentication.Authenticator != nil {
			g.Authentication.Authenticator = tenantauth.BindServiceAccounts(union.New(tokens, g.Authentication.Authenticator))
		} else {
			g.Authentication.Authenticator = union.New(tokens)
		}
		g.Authorization.Authorizer = nodeauth.Wrap(s.nodes, tenantauth.Authorizer(g.Authorization.Authorizer, perTenant), g.Authorization.Authorizer)
		if g.FlowControl != nil {
			g.FlowControl = fairness.PerTenant(g.FlowControl, inflight)
		}
	}
	// Custom resources are one tenant's each: root's CRD handler serves
	// root's objects only, and every tenant's its own (tenantcrd).
	s.crdGetter = c.ApiExtensions.ExtraConfig.CRDRESTOptionsGetter
	c.ApiExtensions.ExtraConfig.CRDRESTOptionsGetter = partition.FixedTenantRESTOptionsGetter(s.crdGetter, s.prefixes, tenant.Root, nil)

	// The aggregator's chain is the outermost: route there, before
	// authentication, so every later filter sees the plain Kubernetes path;
	// tell unknown tenants apart only after authorization. Requests are
	// counted per tenant right after routing, refusals included.
	agg := c.Aggregator.GenericConfig
	build := agg.BuildHandlerChainFunc
	agg.BuildHandlerChainFunc = func(h http.Handler, gc *genericapiserver.Config) http.Handler {
		h = tenantauth.WithTokenReviews(h, kube.Authentication.Authenticator, kube.Authentication.APIAudiences)
		h = build(routing.WithServingTenant(s.crds.Filter(nodeauth.WithPodProjection(h)), s.registry), gc)
		return routing.WithTenant(tenantmetrics.WithRequests(h, gc.RequestInfoResolver, s.registry.Serving))
	}
	// The IP repair loop sees only root's Services and would free the
	// cluster IPs of every tenant's; tenants release theirs on deletion.
	c.KubeAPIs.ControlPlane.Generic.DisabledPostStartHooks.Insert("start-service-ip-repair-controllers")
	return s.tenantAdmission(kube)
}

// resourceMetrics serves metrics.k8s.io in every tenant from the node
// agents' figures, read through the same connections as logs.
func (s *Server) resourceMetrics(generic *genericapiserver.GenericAPIServer, c app.CompletedConfig) error {
	if s.cfg.MetricsResolution == 0 {
		return nil
	}
	loopback := c.KubeAPIs.ControlPlane.Generic.LoopbackClientConfig
	client, err := kubernetes.NewForConfig(loopback)
	if err != nil {
		return fmt.Errorf("preparing the resource metrics scraper: %w", err)
	}
	transport, err := kubeletclient.MakeTransport(&c.KubeAPIs.Extra.KubeletClientConfig)
	if err != nil {
		return fmt.Errorf("preparing the resource metrics scraper: %w", err)
	}
	nodes := informers.NewSharedInformerFactory(client, 0)
	scraper := resourcemetrics.NewScraper(nodes.Core().V1().Nodes().Lister(), &http.Client{Transport: transport, Timeout: s.cfg.MetricsResolution}, s.cfg.MetricsResolution)
	if err := resourcemetrics.Install(generic, scraper, loopback); err != nil {
		return err
	}
	return generic.AddPostStartHook("kplex-resource-metrics", func(hook genericapiserver.PostStartHookContext) error {
		nodes.Start(hook.Done())
		go scraper.Run(hook)
		// The server answers once post-start hooks are running: retry
		// until the role is written.
		return wait.PollUntilContextCancel(hook, time.Second, true, func(ctx context.Context) (bool, error) {
			if err := resourcemetrics.EnsureReaderRole(ctx, client); err != nil {
				klog.FromContext(ctx).V(2).Info("Writing the metrics reader role; will retry", "err", err)
				return false, nil
			}
			return true, nil
		})
	})
}

// tenantAdmission gives tenants' admission plugins the tenant-aware
// authorizer: upstream's plugins got the root one before partition wrapped it.
func (s *Server) tenantAdmission(kube *genericapiserver.Config) error {
	if err := s.cfg.admission.SetEnv(tenantmux.Env{
		Loopback:         kube.LoopbackClientConfig,
		Authorizer:       kube.Authorization.Authorizer,
		APIServerID:      kube.APIServerID,
		EffectiveVersion: kube.EffectiveVersion,
		Features:         kube.FeatureGate,
		ConfigFile:       s.cfg.Kube.Admission.GenericAdmission.ConfigFile,
		IdleTimeout:      s.cfg.AdmissionIdleTimeout,
	}); err != nil {
		return fmt.Errorf("preparing per-tenant admission: %w", err)
	}
	return nil
}

// builtinGroups are the API groups the apiserver itself serves.
func builtinGroups() sets.Set[string] {
	builtin := sets.New[string](apiextensionsv1.GroupName, apiregistrationv1.GroupName)
	for _, gv := range legacyscheme.Scheme.PrioritizedVersionsAllGroups() {
		builtin.Insert(gv.Group)
	}
	return builtin
}

// crdOptions are what tenants' CRD handlers take from the completed
// apiextensions server, as upstream's own CRD handler does.
func (s *Server) crdOptions(c app.CompletedConfig) tenantcrd.Options {
	ext := c.ApiExtensions.GenericConfig
	return tenantcrd.Options{
		RESTOptionsGetter:   s.crdGetter,
		Etcd:                s.etcd,
		Prefixes:            s.prefixes,
		Admission:           ext.AdmissionControl,
		Authorizer:          ext.Authorization.Authorizer,
		OpenAPIV3Config:     ext.OpenAPIV3Config,
		RequestTimeout:      ext.RequestTimeout,
		MinRequestTimeout:   time.Duration(ext.MinRequestTimeout) * time.Second,
		MaxRequestBodyBytes: ext.MaxRequestBodyBytes,
		IdleTimeout:         s.cfg.CRDIdleTimeout,
	}
}

// rootViews are the resources tenants read from root: the nodes their
// pods may use. Until the pools are known, a tenant sees the nodes in no
// pool only.
func (s *Server) rootViews() partition.RootViews {
	return partition.RootViews{"/minions": {
		Admits: func(tenantName string, m metav1.Object) bool {
			c := s.pools.Load()
			return c != nil && c.MayUse(tenantName, m.GetLabels())
		},
		Adjust: tenantNodeAddress,
	}}
}

// streamingSubresources reach a pod's node agent.
var streamingSubresources = map[string]bool{"log": true, "exec": true, "attach": true, "portforward": true}

// tenantNodeAddress gives the node, as the apiserver reads it to reach the
// node agent for a tenant's pod (logs, exec), the per-tenant host name
// under which the kubelet client's dialer names the tenant to the agent
// (tenant/nodeconn). Nothing else reads this address.
func tenantNodeAddress(ctx context.Context, tenantName string, obj runtime.Object) {
	info, ok := genericapirequest.RequestInfoFrom(ctx)
	node, isNode := obj.(*api.Node)
	if !ok || !isNode || info.Resource != "pods" || !streamingSubresources[info.Subresource] {
		return
	}
	for _, t := range []api.NodeAddressType{api.NodeInternalIP, api.NodeExternalIP, api.NodeHostName, api.NodeInternalDNS, api.NodeExternalDNS} {
		for _, a := range node.Status.Addresses {
			if a.Type == t {
				node.Status.Addresses = []api.NodeAddress{{Type: api.NodeHostName, Address: nodeconn.Hostname(tenantName, a.Address)}}
				return
			}
		}
	}
}

func (s *Server) startLifecycle(hook genericapiserver.PostStartHookContext, etcdPrefix string, started *atomic.Pointer[lifecycle.Controller]) error {
	loopback := rest.CopyConfig(hook.LoopbackClientConfig)
	crds, err := apiextensionsclient.NewForConfig(loopback)
	if err != nil {
		return err
	}
	for _, crd := range append([]*apiextensionsv1.CustomResourceDefinition{lifecycle.TenantCRD()}, schedulingapi.CRDs()...) {
		if err := lifecycle.InstallCRD(hook, crds, crd); err != nil {
			return err
		}
	}
	dyn, err := dynamic.NewForConfig(loopback)
	if err != nil {
		return err
	}
	nodePools := pools.New(dyn)
	nodePools.Run(hook)
	s.pools.Store(nodePools)
	s.cfg.fence.SetPools(nodePools)
	go s.rbac.Run(hook)
	if err := s.cfg.namespaces.Start(hook, loopback); err != nil {
		return err
	}
	if err := s.cfg.admission.Start(hook, loopback, s.cfg.namespaces.Namespaces()); err != nil {
		return err
	}
	root, err := kubernetes.NewForConfig(loopback)
	if err != nil {
		return err
	}
	if err := fairness.Ensure(hook, root, s.cfg.Fairness); err != nil {
		return err
	}
	controller, err := lifecycle.NewController(lifecycle.Options{
		Loopback:   loopback,
		Etcd:       s.etcd,
		EtcdPrefix: etcdPrefix,
		Prefixes:   s.prefixes,
		Registry:   s.registry,
		PolicyHas:  s.rbac.HasClusterRoleBinding,
	})
	if err != nil {
		return err
	}
	started.Store(controller)
	go controller.Run(hook)
	tenantmetrics.SetPhases(s, controller.TenantPhases)
	if period := s.cfg.TenantStorageMetricsPeriod; period > 0 {
		go tenantmetrics.RunStorageScan(hook, s, tenantmetrics.StorageOptions{
			Etcd: s.etcd, EtcdPrefix: etcdPrefix, Prefixes: s.prefixes.List, Serving: s.registry.Serving, Period: period,
		})
	}
	return nil
}

// waitReady closes s.ready once the server reports ready.
func (s *Server) waitReady(ctx context.Context) {
	if err := WaitReady(ctx, s.AdminConfig()); err != nil {
		if ctx.Err() == nil {
			s.errc <- err
		}
		return
	}
	close(s.ready)
	klog.InfoS("kplex apiserver ready", "url", s.url)
}

// WaitReady polls the /readyz of the server cfg addresses until it answers
// ok or ctx ends. Certificate files cfg names may appear while it waits: a
// server that is starting writes its PKI first.
func WaitReady(ctx context.Context, cfg *rest.Config) error {
	var client *http.Client
	var last error
	for {
		if client == nil {
			client, last = rest.HTTPClientFor(cfg)
		}
		if client != nil {
			last = checkReady(ctx, client, cfg.Host)
			if last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func checkReady(ctx context.Context, client *http.Client, host string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz answered %s", resp.Status)
	}
	return nil
}

// URL is the server's base URL; tenant name is served at URL()+"/clusters/"+name.
func (s *Server) URL() string { return s.url }

// Ready is closed once the server serves and its tenant registry is synced.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Err delivers failures after Start returned.
func (s *Server) Err() <-chan error { return s.errc }

// CRDs is the server's manager of tenants' custom resources.
func (s *Server) CRDs() *tenantcrd.Manager { return s.crds }

// Registry is the server's registry of serving tenants.
func (s *Server) Registry() *lifecycle.Registry { return s.registry }

// Etcd is a client of the server's etcd.
func (s *Server) Etcd() *clientv3.Client { return s.etcd }

// AdminConfig returns a client config for root with the admin certificate.
func (s *Server) AdminConfig() *rest.Config {
	return s.cfg.PKI().AdminConfig(s.url)
}

// Close stops the apiserver, then etcd. It may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		tenantmetrics.SetPhases(s, nil)
		s.cancel()
		if s.url != "" {
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				klog.InfoS("apiserver did not stop within 30s")
			}
		}
		if s.etcd != nil {
			s.etcd.Close()
		}
		if s.embedded != nil {
			s.embedded.Close()
		}
	})
}

func servingHost(cfg *Config) string {
	if cfg.Listener != nil {
		if addr, ok := cfg.Listener.Addr().(*net.TCPAddr); ok && !addr.IP.IsUnspecified() {
			return addr.IP.String()
		}
	}
	if ip := cfg.Kube.SecureServing.BindAddress; ip != nil && !ip.IsUnspecified() {
		return ip.String()
	}
	return "127.0.0.1"
}

// validateEtcdTLS refuses etcd certificate flags without --etcd-servers:
// the embedded etcd trusts only its own CA, and silently replacing the
// user's files would hide that they are unused.
func validateEtcdTLS(cfg *Config) error {
	t := cfg.Kube.Etcd.StorageConfig.Transport
	if cfg.EmbeddedEtcd() && (t.CertFile != "" || t.KeyFile != "" || t.TrustedCAFile != "") {
		return errors.New("--etcd-certfile, --etcd-keyfile and --etcd-cafile need --etcd-servers: the embedded etcd uses the certificates of its own CA, in the data directory's PKI")
	}
	return nil
}

// useEmbeddedEtcd points the apiserver's storage at the embedded etcd,
// with the client certificate of the etcd CA it alone accepts.
func useEmbeddedEtcd(t *storagebackend.TransportConfig, url string, files pki.Files) {
	t.ServerList = []string{url}
	t.CertFile = files.EtcdClientCert()
	t.KeyFile = files.EtcdClientKey()
	t.TrustedCAFile = files.EtcdCACert()
}

// etcdClient is kplex's own client of the apiserver's etcd (tenant purge,
// storage metrics, CRD storage), on the storage's transport: the same
// servers, certificates and CA as upstream's storage.
func etcdClient(cfg *Config) (*clientv3.Client, error) {
	t := cfg.Kube.Etcd.StorageConfig.Transport
	tlsConfig, err := etcdTLS(t)
	if err != nil {
		return nil, err
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: t.ServerList, DialTimeout: 10 * time.Second, TLS: tlsConfig})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd %v: %w", t.ServerList, err)
	}
	return client, nil
}

// etcdTLS is the TLS configuration upstream's storage dials etcd with
// (storagebackend/factory's newETCD3Client): none unless a certificate, key
// or CA is given.
func etcdTLS(t storagebackend.TransportConfig) (*tls.Config, error) {
	if t.CertFile == "" && t.KeyFile == "" && t.TrustedCAFile == "" {
		return nil, nil
	}
	c, err := (transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.TrustedCAFile}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client TLS: %w", err)
	}
	return c, nil
}
