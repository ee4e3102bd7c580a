package tenantmetrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/kplex/kplex/metrics/bounded"
	"github.com/kplex/kplex/tenant"
)

var resolver = &request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}

// serve runs one request for tenantName through WithRequests in front of
// a handler that answers code.
func serve(h http.Handler, tenantName, method, path string) {
	req := httptest.NewRequest(method, "https://kplex"+path, nil)
	req = req.WithContext(tenant.WithTenant(req.Context(), tenantName))
	h.ServeHTTP(httptest.NewRecorder(), req)
}

func TestRequestsByTenantVerbCode(t *testing.T) {
	saved := requests
	t.Cleanup(func() { requests = saved })
	requests = bounded.NewCounterVec("kplex_apiserver_tenant_requests_total", "help", "verb", "code")
	requests.SetTopTenants(2)

	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "forbidden"):
			w.WriteHeader(http.StatusForbidden)
		case strings.Contains(r.URL.Path, "silent"):
		case strings.Contains(r.URL.Path, "panic"):
			panic(http.ErrAbortHandler)
		default:
			_, _ = w.Write([]byte("{}"))
		}
	})
	tenants := map[string]bool{"acme": true, "beta": true, "gamma": true}
	h := WithRequests(answer, resolver, func(name string) bool { return tenants[name] })
	for range 3 {
		serve(h, "acme", http.MethodGet, "/api/v1/namespaces/default/pods")
	}
	serve(h, "acme", http.MethodGet, "/api/v1/namespaces/default/pods/web")
	serve(h, "acme", http.MethodPost, "/api/v1/namespaces/default/pods")
	serve(h, "acme", http.MethodGet, "/api/v1/pods?watch=true")
	serve(h, "acme", http.MethodDelete, "/api/v1/namespaces/forbidden")
	serve(h, "acme", http.MethodGet, "/silent")
	serve(h, "acme", "BREW", "/coffee")
	func() {
		defer func() { _ = recover() }()
		serve(h, "acme", http.MethodGet, "/panic")
	}()
	serve(h, "beta", http.MethodGet, "/api/v1/namespaces")
	serve(h, "beta", http.MethodGet, "/api/v1/namespaces")
	serve(h, "gamma", http.MethodPut, "/api/v1/namespaces/x")
	serve(h, "no-such-tenant", http.MethodGet, "/api")
	serve(h, tenant.Root, http.MethodGet, "/healthz")

	// Top 2 by requests: acme (10) and beta (2); gamma, root and
	// the unknown name go to _other.
	want := `
# HELP kplex_apiserver_tenant_requests_total help
# TYPE kplex_apiserver_tenant_requests_total counter
kplex_apiserver_tenant_requests_total{code="200",tenant="acme",verb="list"} 3
kplex_apiserver_tenant_requests_total{code="200",tenant="acme",verb="get"} 2
kplex_apiserver_tenant_requests_total{code="200",tenant="acme",verb="create"} 1
kplex_apiserver_tenant_requests_total{code="200",tenant="acme",verb="watch"} 1
kplex_apiserver_tenant_requests_total{code="403",tenant="acme",verb="delete"} 1
kplex_apiserver_tenant_requests_total{code="200",tenant="acme",verb="other"} 1
kplex_apiserver_tenant_requests_total{code="500",tenant="acme",verb="get"} 1
kplex_apiserver_tenant_requests_total{code="200",tenant="beta",verb="list"} 2
kplex_apiserver_tenant_requests_total{code="200",tenant="_other",verb="update"} 1
kplex_apiserver_tenant_requests_total{code="200",tenant="_other",verb="get"} 2
`
	if err := testutil.CollectAndCompare(requests, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	// With room for all, the unknown name shows as _unknown, never as itself.
	requests.SetTopTenants(10)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(requests)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tenant" {
					seen[l.GetValue()] = true
				}
			}
		}
	}
	for _, name := range []string{"acme", "beta", "gamma", tenant.Root, bounded.Unknown, bounded.Other} {
		if !seen[name] {
			t.Errorf("no series for tenant %q (have %v)", name, seen)
		}
	}
	if seen["no-such-tenant"] {
		t.Error("a name that is not a tenant made a series")
	}
}

// 1,000 tenants each making requests: the series are those of the top K
// and _other.
func TestRequestSeriesBoundedAtManyTenants(t *testing.T) {
	saved := requests
	t.Cleanup(func() { requests = saved })
	requests = bounded.NewCounterVec("kplex_apiserver_tenant_requests_total", "help", "verb", "code")
	requests.SetTopTenants(100)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	h := WithRequests(ok, resolver, func(string) bool { return true })
	for i := range 1000 {
		name := fmt.Sprintf("t%04d", i)
		for range i%5 + 1 {
			serve(h, name, http.MethodGet, "/api/v1/namespaces/default/pods")
		}
		serve(h, name, http.MethodPost, "/api/v1/namespaces/default/pods")
	}
	// Each tenant uses two (verb, code) pairs: (100 + 1) × 2.
	if n := testutil.CollectAndCount(requests); n > (100+1)*2 {
		t.Errorf("%d series, want at most %d", n, (100+1)*2)
	}
}

func TestTenantOfKey(t *testing.T) {
	known := map[string]bool{"/registry/pods": true, "/registry/services/specs": true, "/registry/namespaces": true}
	for key, want := range map[string]string{
		"/registry/pods/acme/default/web":                          "acme",
		"/registry/services/specs/beta/default/kubernetes":         "beta",
		"/registry/namespaces/root/kube-system":                    "root",
		"/registry/example.com/widgets/gamma/default/w1":           "gamma", // a tenant's custom resource
		"/registry/ranges/serviceips":                              "",
		"/registry/pods/acme":                                      "",
		"/other/pods/acme/default/web":                             "",
		"/registry/apiextensions.k8s.io/customresourcedefinitions": "",
	} {
		if got := tenantOfKey("/registry", key, known); got != want {
			t.Errorf("%s: tenant %q, want %q", key, got, want)
		}
	}
}

func TestTenantsAndStorageGauges(t *testing.T) {
	t.Cleanup(func() {
		SetPhases("a", nil)
		SetPhases("b", nil)
		SetStorage("a", nil)
		SetTopTenants(0)
	})
	SetPhases("a", func() map[string]int { return map[string]int{"Ready": 2, "": 1, "Terminating": 1} })
	SetPhases("b", func() map[string]int { return map[string]int{"Ready": 1, "Bogus": 4} })
	SetStorage("a", map[string]Usage{"x": {Objects: 10, Bytes: 1000}, "y": {Objects: 5, Bytes: 3000}, "z": {Objects: 1, Bytes: 10}})
	SetTopTenants(1)
	want := `
# HELP kplex_tenants Tenant objects, by status.phase (Pending: no phase written yet).
# TYPE kplex_tenants gauge
kplex_tenants{phase="Pending"} 1
kplex_tenants{phase="Provisioning"} 0
kplex_tenants{phase="Ready"} 3
kplex_tenants{phase="Terminating"} 1
# HELP kplex_tenant_objects Keys a tenant has in etcd (every resource), at the last scan; the top tenants by bytes, the others as tenant="_other".
# TYPE kplex_tenant_objects gauge
kplex_tenant_objects{tenant="y"} 5
kplex_tenant_objects{tenant="_other"} 11
# HELP kplex_tenant_storage_bytes Bytes of a tenant's keys and values in etcd at the last scan (not etcd's history or overhead); the top tenants, the others as tenant="_other".
# TYPE kplex_tenant_storage_bytes gauge
kplex_tenant_storage_bytes{tenant="y"} 3000
kplex_tenant_storage_bytes{tenant="_other"} 1010
`
	if err := testutil.CollectAndCompare(&collector{}, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
