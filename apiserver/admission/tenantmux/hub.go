package tenantmux

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/initializer"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/resourcequota"
	webhookinit "k8s.io/apiserver/pkg/admission/plugin/webhook/initializer"
	mutatingwebhook "k8s.io/apiserver/pkg/admission/plugin/webhook/mutating"
	validatingwebhook "k8s.io/apiserver/pkg/admission/plugin/webhook/validating"
	apiserverinstall "k8s.io/apiserver/pkg/apis/apiserver/install"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	quota "k8s.io/apiserver/pkg/quota/v1"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/component-base/compatibility"
	"k8s.io/component-base/featuregate"
	"k8s.io/klog/v2"
	controlplaneadmission "k8s.io/kubernetes/pkg/controlplane/apiserver/admission"
	"k8s.io/kubernetes/pkg/kubeapiserver/admission/exclusion"
	quotainstall "k8s.io/kubernetes/pkg/quota/v1/install"
	"k8s.io/kubernetes/plugin/pkg/admission/limitranger"
	"k8s.io/kubernetes/plugin/pkg/admission/serviceaccount"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/crosstenant/tenantview"
	"github.com/kplex/kplex/tenant"
)

// readyWait is how long a tenant request waits for the caches, as upstream
// plugins wait for their informers.
const readyWait = 10 * time.Second

// minIdleTimeout is the longest admission webhook timeout.
const minIdleTimeout = 30 * time.Second

// Env is what tenant instances are built with, known once the upstream
// configuration is.
type Env struct {
	// Loopback is a privileged config of this apiserver; tenant clients
	// address the tenant's path with it.
	Loopback *rest.Config
	// Authorizer must be the tenant-aware one (tenantauth.Authorizer), not
	// the root authorizer upstream plugins were given.
	Authorizer       authorizer.Authorizer
	APIServerID      string
	EffectiveVersion compatibility.EffectiveVersion
	Features         featuregate.FeatureGate
	// ConfigFile is --admission-control-config-file: tenant instances are
	// configured as root's.
	ConfigFile string
	// IdleTimeout stops a tenant's instance that no request used for that
	// long; zero keeps instances while the tenant needs them. It must
	// exceed the longest admission webhook timeout (30 s): an instance is
	// never stopped under a request.
	IdleTimeout time.Duration
}

type env struct {
	Env
	http    *http.Client
	configs admission.ConfigProvider
}

// Hub holds the Muxes, the caches their tenant instances read, and what
// those instances are built with.
type Hub struct {
	upstream *admission.Plugins
	specs    map[string]Spec

	mu    sync.Mutex
	muxes []*Mux

	env        atomic.Pointer[env]
	caches     atomic.Pointer[tenantview.Caches]
	restMapper atomic.Pointer[restmapper.DeferredDiscoveryRESTMapper]
}

// New returns a Hub of specs.
func New(specs []Spec) *Hub {
	h := &Hub{upstream: admission.NewPlugins(), specs: map[string]Spec{}}
	for _, s := range specs {
		s.register(h.upstream)
		h.specs[s.Name] = s
	}
	return h
}

// Decorator wraps the plugins of the Hub's specs in their Mux. It must be
// the first decorator, so that metrics and the rest wrap the Mux.
func (h *Hub) Decorator() admission.Decorator {
	return admission.DecoratorFunc(func(p admission.Interface, name string) admission.Interface {
		spec, ok := h.specs[name]
		if !ok {
			return p
		}
		m := &Mux{spec: spec, hub: h, root: p}
		h.mu.Lock()
		h.muxes = append(h.muxes, m)
		h.mu.Unlock()
		return wrap(m)
	})
}

var configScheme = runtime.NewScheme()

func init() { apiserverinstall.Install(configScheme) }

// SetEnv gives the Hub what tenant instances are built with.
func (h *Hub) SetEnv(e Env) error {
	if e.Features == nil {
		e.Features = utilfeature.DefaultFeatureGate
	}
	if e.EffectiveVersion == nil {
		return errors.New("the apiserver config has no effective version")
	}
	if e.IdleTimeout != 0 && e.IdleTimeout <= minIdleTimeout {
		return fmt.Errorf("the idle timeout of tenant admission plugins must exceed %s, the longest webhook timeout", minIdleTimeout)
	}
	client, err := rest.HTTPClientFor(e.Loopback)
	if err != nil {
		return fmt.Errorf("building the tenant admission client: %w", err)
	}
	configs, err := admission.ReadAdmissionConfiguration(h.names(), e.ConfigFile, configScheme)
	if err != nil {
		return fmt.Errorf("reading the admission configuration: %w", err)
	}
	h.env.Store(&env{Env: e, http: client, configs: configs})
	return nil
}

func (h *Hub) names() []string {
	names := make([]string, 0, len(h.specs))
	for name := range h.specs {
		names = append(names, name)
	}
	return names
}

// enabled reports whether the named plugin was wrapped: it is enabled.
func (h *Hub) enabled(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.muxes {
		if m.spec.Name == name {
			return true
		}
	}
	return false
}

// Start fills the caches of the enabled plugins through loopback until ctx
// ends; namespaces is the running cross-tenant namespace cache.
func (h *Hub) Start(ctx context.Context, loopback *rest.Config, namespaces *crosstenant.Cache) error {
	cross, err := kubernetes.NewForConfig(crosstenant.Config(loopback))
	if err != nil {
		return fmt.Errorf("building the cross-tenant admission client: %w", err)
	}
	root, err := kubernetes.NewForConfig(loopback)
	if err != nil {
		return fmt.Errorf("building the admission discovery client: %w", err)
	}
	core, reg := cross.CoreV1().RESTClient(), cross.AdmissionregistrationV1().RESTClient()
	c := &tenantview.Caches{Namespaces: namespaces}
	start := func(name string, client rest.Interface, resource string, example runtime.Object) *crosstenant.Cache {
		if !h.enabled(name) {
			return nil
		}
		cache := crosstenant.NewCache(crosstenant.ListWatch(client, resource), example)
		go cache.Run(ctx)
		return cache
	}
	c.MutatingWebhooks = start(mutatingwebhook.PluginName, reg, "mutatingwebhookconfigurations", &admissionregistrationv1.MutatingWebhookConfiguration{})
	c.ValidatingWebhooks = start(validatingwebhook.PluginName, reg, "validatingwebhookconfigurations", &admissionregistrationv1.ValidatingWebhookConfiguration{})
	c.Policies = start(validating.PluginName, reg, "validatingadmissionpolicies", &admissionregistrationv1.ValidatingAdmissionPolicy{})
	c.PolicyBindings = start(validating.PluginName, reg, "validatingadmissionpolicybindings", &admissionregistrationv1.ValidatingAdmissionPolicyBinding{})
	c.MutatingPolicies = start(mutating.PluginName, reg, "mutatingadmissionpolicies", &admissionregistrationv1.MutatingAdmissionPolicy{})
	c.MutatingPolicyBindings = start(mutating.PluginName, reg, "mutatingadmissionpolicybindings", &admissionregistrationv1.MutatingAdmissionPolicyBinding{})
	c.LimitRanges = start(limitranger.PluginName, core, "limitranges", &corev1.LimitRange{})
	c.ServiceAccounts = start(serviceaccount.PluginName, core, "serviceaccounts", &corev1.ServiceAccount{})
	c.ResourceQuotas = start(resourcequota.PluginName, core, "resourcequotas", &corev1.ResourceQuota{})

	// Policy params of built-in kinds resolve through root's discovery, as
	// upstream's; a tenant's own kinds do not (yet).
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(root.Discovery()))
	go wait.Until(mapper.Reset, 30*time.Second, ctx.Done())
	h.restMapper.Store(mapper)

	h.mu.Lock()
	muxes := h.muxes
	h.mu.Unlock()
	for _, m := range muxes {
		for _, cache := range m.spec.watched(c) {
			if cache != nil {
				cache.Watch(func(t string) { m.sweep(c, t) })
			}
		}
	}
	h.caches.Store(c)
	if e := h.env.Load(); e != nil && e.IdleTimeout > 0 {
		idle := e.IdleTimeout
		go wait.Until(func() {
			for _, m := range muxes {
				m.evictIdle(time.Now().Add(-idle))
			}
		}, idle/4, ctx.Done())
	}
	klog.InfoS("Per-tenant admission started", "plugins", len(muxes))
	return nil
}

// HasSynced reports whether the caches are filled.
func (h *Hub) HasSynced() bool {
	c := h.caches.Load()
	return c != nil && c.HasSynced()
}

// synced returns the caches once filled, waiting a while as upstream
// plugins wait for their informers.
func (h *Hub) synced(ctx context.Context) (*tenantview.Caches, error) {
	deadline := time.Now().Add(readyWait)
	for {
		if c := h.caches.Load(); c != nil && c.HasSynced() {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, apierrors.NewServiceUnavailable("tenant admission is not yet ready to handle requests")
		}
		select {
		case <-ctx.Done():
			return nil, apierrors.NewServiceUnavailable("tenant admission is not yet ready to handle requests")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Running returns the number of tenant instances of each plugin.
func (h *Hub) Running() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, m := range h.muxes {
		out[m.spec.Name] += m.running()
	}
	return out
}

// build makes spec's upstream plugin for tenant t, as upstream makes it for
// root but from t's view, client and authorizer.
func (h *Hub) build(caches *tenantview.Caches, spec Spec, t string) (*instance, error) {
	e := h.env.Load()
	if e == nil {
		return nil, apierrors.NewServiceUnavailable("tenant admission is not configured yet")
	}
	cfg := rest.CopyConfig(e.Loopback)
	cfg.Host += tenant.Path(t)
	client, err := newCoreClient(cfg, e.http)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("building tenant %q's admission client: %w", t, err))
	}
	var dyn dynamic.Interface
	if spec.dynamic {
		if dyn, err = dynamic.NewForConfigAndClient(cfg, e.http); err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("building tenant %q's dynamic admission client: %w", t, err))
		}
		if client.discovery, err = discovery.NewDiscoveryClientForConfigAndClient(cfg, e.http); err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("building tenant %q's admission discovery client: %w", t, err))
		}
	}
	var mapper meta.RESTMapper
	if m := h.restMapper.Load(); m != nil {
		mapper = m
	}
	views := tenantview.NewFactory(caches, t)
	var quotas quota.Configuration
	if spec.quota {
		// Evaluators over the tenant's view: its pods' claims, never
		// another tenant's.
		if quotas, err = quotainstall.NewQuotaConfigurationForAdmission(views, nil); err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("building tenant %q's quota configuration: %w", t, err))
		}
	}
	stop := make(chan struct{})
	chain := admission.PluginInitializers{
		initializer.NewAPIServerIDInitializer(e.APIServerID),
		initializer.New(client, dyn, views, e.Authorizer, e.Features, e.EffectiveVersion, stop, mapper),
		webhookinit.NewPluginInitializer(tenantAuthentication, serviceResolver{client.core}),
		controlplaneadmission.NewPluginInitializer(quotas, exclusion.Excluded()),
	}
	config, err := e.configs.ConfigFor(spec.Name)
	if err != nil {
		close(stop)
		return nil, apierrors.NewInternalError(fmt.Errorf("configuring %s for tenant %q: %w", spec.Name, t, err))
	}
	p, err := h.upstream.InitPlugin(spec.Name, config, chain)
	if err == nil && p == nil {
		err = errors.New("the plugin is disabled by its configuration")
	}
	if err != nil {
		close(stop)
		return nil, apierrors.NewInternalError(fmt.Errorf("building %s for tenant %q: %w", spec.Name, t, err))
	}
	return &instance{plugin: p, stop: stop}, nil
}
