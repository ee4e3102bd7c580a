// Package tenantcrd gives every tenant its own CustomResourceDefinitions:
// the custom resources, discovery and OpenAPI a tenant sees come from its
// CRDs alone, never from root's or another tenant's.
//
// One cross-tenant watch feeds every tenant's view of the CRDs. A tenant
// whose CRDs are in use gets a unit: upstream's CRD handler and its naming,
// establishing and finalizer controllers, built over that view and over
// storage confined to the tenant. A unit is made when a CRD needs its
// controllers or a request its custom resources, and dropped once idle;
// discovery and OpenAPI are served from the shared cache, without one.
package tenantcrd

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	apiextensionshelpers "k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	openapiutil "k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/kplex/kplex/apiserver/partition"
	"github.com/kplex/kplex/apiserver/routing"
	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

// Options are what the tenants' CRD handlers share with root's.
type Options struct {
	// Loopback reaches the server as system:masters.
	Loopback *rest.Config
	// RESTOptionsGetter is upstream's CRD storage getter, not yet
	// partitioned: each tenant confines it to itself.
	RESTOptionsGetter generic.RESTOptionsGetter
	// Etcd is the client every tenant's custom resources share.
	Etcd       *clientv3.Client
	Prefixes   *partition.Prefixes
	Admission  admission.Interface
	Authorizer authorizer.Authorizer
	// OpenAPIV3Config builds the CRD type's definitions, which server-side
	// apply of custom resources resolves object metadata against.
	OpenAPIV3Config     *common.OpenAPIV3Config
	RequestTimeout      time.Duration
	MinRequestTimeout   time.Duration
	MaxRequestBodyBytes int64
	// IdleTimeout drops a unit no request used for that long, once its
	// tenant's CRDs are settled; zero keeps units while tenants have CRDs.
	IdleTimeout time.Duration
}

// Manager keeps a unit per tenant with CRDs and routes tenants' requests
// for custom resources and discovery to them.
type Manager struct {
	builtin           sets.Set[string]
	opts              Options
	ctx               context.Context
	httpClient        *http.Client
	staticOpenAPISpec map[string]*spec.Schema
	storage           generic.StorageDecorator
	crds              *crosstenant.Cache
	started           atomic.Bool

	mu    sync.RWMutex
	units map[string]*unit

	discovery discoveryCache
	openAPI   openAPIDocs
	openAPIV2 openAPIV2
}

// New returns a Manager that serves no custom resources until Start.
// builtin are the API groups the server itself serves: requests to them
// never reach a tenant's CRDs, even before Start.
func New(builtin sets.Set[string]) *Manager {
	return &Manager{builtin: builtin, units: map[string]*unit{}}
}

// Start watches every tenant's CRDs and serves them until ctx ends.
func (m *Manager) Start(ctx context.Context, opts Options) error {
	m.opts = opts
	m.ctx = ctx
	m.storage = partition.SharedClientStorage(opts.Etcd)
	var err error
	if m.httpClient, err = rest.HTTPClientFor(opts.Loopback); err != nil {
		return fmt.Errorf("building the loopback client of tenants' CRDs: %w", err)
	}
	if opts.OpenAPIV3Config != nil {
		name := openapiutil.GetCanonicalTypeName(&apiextensionsv1.CustomResourceDefinition{})
		if m.staticOpenAPISpec, err = builder3.BuildOpenAPIDefinitionsForResources(opts.OpenAPIV3Config, name); err != nil {
			return fmt.Errorf("building the OpenAPI definitions of CRDs: %w", err)
		}
	}
	cross, err := apiextensionsclient.NewForConfigAndClient(crosstenant.Config(opts.Loopback), m.httpClient)
	if err != nil {
		return fmt.Errorf("building the cross-tenant CRD client: %w", err)
	}
	lw := crosstenant.ListWatch(cross.ApiextensionsV1().RESTClient(), "customresourcedefinitions")
	m.crds = crosstenant.NewCache(lw, &apiextensionsv1.CustomResourceDefinition{})
	// Units hear of their tenant's changes as the cache's tenant handlers;
	// the Manager hears after them, to make and drop units.
	m.crds.Watch(m.tenantChanged)
	m.started.Store(true)
	go m.crds.Run(ctx)
	if idle := opts.IdleTimeout; idle > 0 {
		go wait.Until(func() { m.dropIdle(time.Now().Add(-idle)) }, idle/4, ctx.Done())
	}
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		defer m.mu.Unlock()
		for name, u := range m.units {
			u.stop()
			delete(m.units, name)
		}
	}()
	return nil
}

// HasSynced reports whether every tenant's CRDs are known.
func (m *Manager) HasSynced() bool { return m.started.Load() && m.crds.HasSynced() }

// tenantChanged makes a unit, with its naming and finalizer controllers,
// for a tenant whose CRDs need them (names to accept, Established to set,
// a deletion to finish), stops those controllers once every CRD is
// settled, and drops the unit of a tenant whose last CRD is gone. It runs in the cross-tenant
// cache's goroutine, after the units' handlers.
func (m *Manager) tenantChanged(t string) {
	if t == tenant.Root {
		return
	}
	crds := m.crds.InTenant(t)
	if len(crds) == 0 {
		m.drop(t, func(*unit) bool { return true })
		return
	}
	if !slices.ContainsFunc(crds, func(obj any) bool { return !settled(obj.(*apiextensionsv1.CustomResourceDefinition)) }) {
		m.mu.RLock()
		u := m.units[t]
		m.mu.RUnlock()
		if u != nil {
			u.stopControllers()
		}
		return
	}
	u, err := m.unitFor(t)
	if err != nil {
		klog.ErrorS(err, "Cannot serve a tenant's custom resources", "tenant", t)
		return
	}
	if u != nil {
		u.runControllers(m.crds)
	}
}

// Serving returns the tenants that have a unit now.
func (m *Manager) Serving() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Sorted(maps.Keys(m.units))
}

// settled reports whether a CRD needs none of the unit's controllers: its
// names are accepted, it is Established, and it is not being deleted.
func settled(crd *apiextensionsv1.CustomResourceDefinition) bool {
	return crd.DeletionTimestamp == nil &&
		apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.NamesAccepted) &&
		apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) &&
		apiequality.Semantic.DeepEqual(crd.Spec.Names, crd.Status.AcceptedNames)
}

// unitFor returns tenant t's unit, making it if t has CRDs; nil if not.
func (m *Manager) unitFor(t string) (*unit, error) {
	m.mu.RLock()
	u := m.units[t]
	m.mu.RUnlock()
	if u != nil {
		return u, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.units[t]; u != nil {
		return u, nil
	}
	if len(m.crds.InTenant(t)) == 0 {
		return nil, nil
	}
	u, err := m.newUnit(t)
	if err != nil {
		return nil, err
	}
	m.units[t] = u
	klog.V(2).InfoS("Serving a tenant's custom resources", "tenant", t)
	return u, nil
}

// drop stops tenant t's unit if it has one and cond holds for it.
func (m *Manager) drop(t string, cond func(*unit) bool) {
	m.mu.Lock()
	u := m.units[t]
	if u == nil || !cond(u) {
		m.mu.Unlock()
		return
	}
	delete(m.units, t)
	m.mu.Unlock()
	u.stop()
	klog.V(2).InfoS("Dropped a tenant's custom resource unit", "tenant", t)
}

// dropIdle drops the units that serve no request, were not used since
// before, and whose tenant's CRDs are settled: the next request makes the
// unit again, in milliseconds.
func (m *Manager) dropIdle(before time.Time) {
	m.mu.RLock()
	var idle []string
	for t, u := range m.units {
		if u.idleSince(before) {
			idle = append(idle, t)
		}
	}
	m.mu.RUnlock()
	for _, t := range idle {
		m.drop(t, func(u *unit) bool {
			if !u.idleSince(before) {
				return false
			}
			for _, obj := range m.crds.InTenant(t) {
				if !settled(obj.(*apiextensionsv1.CustomResourceDefinition)) {
					return false
				}
			}
			return true
		})
	}
}

// Filter routes a tenant's requests for its custom resources and for
// discovery, and hides root's CRDs from tenants. Everything else goes to
// next. It belongs where the request's tenant, user and RequestInfo are
// known: after authorization.
func (m *Manager) Filter(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx := req.Context()
		t := tenant.FromContext(ctx)
		info, ok := genericapirequest.RequestInfoFrom(ctx)
		if t == tenant.Root || !ok {
			next.ServeHTTP(w, req)
			return
		}
		if !info.IsResourceRequest {
			if t == tenant.Wildcard || !m.serveDiscovery(w, req, t, next) && !m.serveOpenAPI(w, req, t, next) && !m.serveOpenAPIV2(w, req, t, next) {
				next.ServeHTTP(w, req)
			}
			return
		}
		if info.APIGroup == "" || m.builtin.Has(info.APIGroup) {
			next.ServeHTTP(w, req)
			return
		}
		switch {
		case t == tenant.Wildcard:
			routing.WriteStatus(w, apierrors.NewBadRequest("custom resources are served per tenant, not across tenants"))
		case !m.HasSynced():
			routing.WriteStatus(w, apierrors.NewServiceUnavailable("the tenants' CustomResourceDefinitions are not synced yet"))
		default:
			if m.servesGroup(t, info.APIGroup) {
				u, err := m.unitFor(t)
				if err != nil || u == nil {
					routing.WriteStatus(w, apierrors.NewServiceUnavailable(fmt.Sprintf("the tenant's custom resources cannot be served: %v", err)))
					return
				}
				u.serve(w, req)
				return
			}
			if m.rootGroups().Has(info.APIGroup) {
				notFound(w, req)
				return
			}
			next.ServeHTTP(w, req)
		}
	})
}

// servesGroup reports whether tenant t has a CRD in group.
func (m *Manager) servesGroup(t, group string) bool {
	for _, obj := range m.crds.InTenant(t) {
		if obj.(*apiextensionsv1.CustomResourceDefinition).Spec.Group == group {
			return true
		}
	}
	return false
}

// rootGroups are the groups of root's CRDs: never a tenant's unless it
// defines them itself.
func (m *Manager) rootGroups() sets.Set[string] {
	groups := sets.New[string]()
	if !m.started.Load() {
		return groups
	}
	for _, obj := range m.crds.InTenant(tenant.Root) {
		groups.Insert(obj.(*apiextensionsv1.CustomResourceDefinition).Spec.Group)
	}
	return groups.Difference(m.builtin)
}

// notFound answers as the apiserver does for a path it does not serve.
func notFound(w http.ResponseWriter, _ *http.Request) {
	routing.WriteStatus(w, &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusNotFound,
		Reason:  metav1.StatusReasonNotFound,
		Message: "the server could not find the requested resource",
	}})
}
