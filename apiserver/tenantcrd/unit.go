package tenantcrd

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	apiextensionsapiserver "k8s.io/apiextensions-apiserver/pkg/apiserver"
	apiextensionsv1client "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/typed/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/controller/establish"
	"k8s.io/apiextensions-apiserver/pkg/controller/finalizer"
	"k8s.io/apiextensions-apiserver/pkg/controller/status"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/apiserver/partition"
	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

// unit serves one tenant's custom resources: upstream's CRD handler over
// the tenant's view of the CRDs and the establishing controller it needs,
// and, while a CRD is not settled, the controllers that give a CRD its
// names and its cleanup on deletion. A tenant has a unit only while its
// CRDs need those controllers or its custom resources are being used.
type unit struct {
	tenant  string
	view    *view
	handler crHandler
	client  apiextensionsv1client.ApiextensionsV1Interface
	ctx     context.Context // the unit's: carries the tenant
	cancel  context.CancelFunc

	mu          sync.Mutex
	controllers *controllers // nil while every CRD is settled

	// active counts requests in flight, watches included; used is when
	// the last one began, in Unix nanoseconds.
	active atomic.Int64
	used   atomic.Int64
}

// serve serves a request for the tenant's custom resources.
func (u *unit) serve(w http.ResponseWriter, req *http.Request) {
	u.active.Add(1)
	u.used.Store(time.Now().UnixNano())
	defer u.active.Add(-1)
	u.handler.ServeHTTP(w, req)
}

// idleSince reports whether the unit serves nothing and served nothing
// since before.
func (u *unit) idleSince(before time.Time) bool {
	return u.active.Load() == 0 && u.used.Load() < before.UnixNano()
}

// crHandler is what kplex uses of upstream's (unexported) crdHandler.
type crHandler interface {
	http.Handler
	finalizer.CRClientGetter
}

func (m *Manager) newUnit(tenantName string) (*unit, error) {
	cfg := rest.CopyConfig(m.opts.Loopback)
	cfg.Host += tenant.Path(tenantName)
	client, err := apiextensionsv1client.NewForConfigAndClient(cfg, m.httpClient)
	if err != nil {
		return nil, fmt.Errorf("building the CRD client of tenant %s: %w", tenantName, err)
	}
	v := newView(m.crds, tenantName)
	establishing := establish.NewEstablishingController(v, client)
	o := m.opts
	h, err := apiextensionsapiserver.NewCustomResourceDefinitionHandler(
		nil, nil, // discovery is served by the Manager, never by the unit
		v,
		http.HandlerFunc(notFound),
		partition.FixedTenantRESTOptionsGetter(o.RESTOptionsGetter, o.Prefixes, tenantName, m.storage),
		o.Admission,
		establishing,
		refuseServices{},
		noCredentials,
		1, // each replica establishes its own view: no HA hold-back
		o.Authorizer,
		o.RequestTimeout,
		o.MinRequestTimeout,
		m.staticOpenAPISpec,
		o.MaxRequestBodyBytes,
	)
	if err != nil {
		return nil, fmt.Errorf("building the CRD handler of tenant %s: %w", tenantName, err)
	}
	logger := klog.FromContext(m.ctx).WithValues("tenant", tenantName)
	// The controllers' context carries the tenant: the finalizer deletes
	// custom resources through the tenant's storage with it.
	ctx, cancel := context.WithCancel(tenant.WithTenant(klog.NewContext(m.ctx, logger), tenantName))
	u := &unit{tenant: tenantName, view: v, handler: h, client: client, ctx: ctx, cancel: cancel}
	u.used.Store(time.Now().UnixNano())
	v.start()
	go establishing.RunWithContext(ctx)
	return u, nil
}

// controllers are upstream's naming and finalizer controllers of a unit,
// over a view of their own so that they can stop before the unit does.
type controllers struct {
	view   *view
	cancel context.CancelFunc
}

// runControllers starts the naming and finalizer controllers unless they
// run: a CRD needs its names accepted or its deletion finished.
func (u *unit) runControllers(crds *crosstenant.Cache) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.controllers != nil || u.ctx.Err() != nil {
		return
	}
	v := newView(crds, u.tenant)
	naming := status.NewNamingConditionController(klog.FromContext(u.ctx), v, u.client)
	cleanup := finalizer.NewCRDFinalizer(v, u.client, u.handler)
	ctx, cancel := context.WithCancel(u.ctx)
	u.controllers = &controllers{view: v, cancel: cancel}
	v.start()
	go naming.RunWithContext(ctx)
	go cleanup.RunWithContext(1, ctx)
}

// stopControllers stops the naming and finalizer controllers: every CRD
// of the tenant is settled.
func (u *unit) stopControllers() {
	u.mu.Lock()
	c := u.controllers
	u.controllers = nil
	u.mu.Unlock()
	if c != nil {
		c.cancel()
		c.view.stop()
	}
}

// stop ends the unit's controllers and its handlers' registrations. The
// storage needs no teardown: it holds no watch and shares the etcd client.
func (u *unit) stop() {
	u.stopControllers()
	u.cancel()
	u.view.stop()
}
