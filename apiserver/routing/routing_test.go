package routing

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kplex/kplex/tenant"
)

type serving map[string]bool

func (s serving) Serving(name string) bool { return s[name] }

func (s serving) BeginWrite(name string) (func(), bool) { return func() {}, s[name] }

func TestWithTenant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url        string
		wantCode   int
		wantTenant string
		wantPath   string
	}{
		{"/api/v1/namespaces", http.StatusOK, tenant.Root, "/api/v1/namespaces"},
		{"/clusters/acme/api/v1/namespaces", http.StatusOK, "acme", "/api/v1/namespaces"},
		{"/clusters/acme", http.StatusOK, "acme", "/"},
		{"/clusters/acme/", http.StatusOK, "acme", "/"},
		{"/clusters/root/api", http.StatusOK, tenant.Root, "/api"},
		{"/clusters/*/api/v1/pods", http.StatusOK, tenant.Wildcard, "/api/v1/pods"},
		{"/clusters/%2A/api/v1/pods", http.StatusOK, tenant.Wildcard, "/api/v1/pods"},
		{"/clusters/acme/api/v1/namespaces/a%2Fb", http.StatusOK, "acme", "/api/v1/namespaces/a/b"},
		{"/clustersfoo/api", http.StatusOK, tenant.Root, "/clustersfoo/api"},
		{"/clusters/gone/api", http.StatusNotFound, "", ""},
		{"/clusters/*/api", http.StatusOK, tenant.Wildcard, "/api"},
		{"/clusters/Acme/api", http.StatusBadRequest, "", ""},
		{"/clusters/a%2Fb/api", http.StatusBadRequest, "", ""},
		{"/clusters/../api", http.StatusBadRequest, "", ""},
		{"/clusters//api", http.StatusBadRequest, "", ""},
		{"/clusters", http.StatusBadRequest, "", ""},
		{"/clusters/" + strings.Repeat("a", 64) + "/api", http.StatusBadRequest, "", ""},
	}
	for _, tc := range tests {
		var gotTenant, gotPath string
		h := WithTenant(WithServingTenant(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gotTenant, gotPath = tenant.FromContext(r.Context()), r.URL.Path
		}), serving{"acme": true}))
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://kplex"+tc.url, nil)
		h.ServeHTTP(rec, req)
		if rec.Code != tc.wantCode || gotTenant != tc.wantTenant || gotPath != tc.wantPath {
			t.Errorf("%s: code %d tenant %q path %q; want %d %q %q (body %s)",
				tc.url, rec.Code, gotTenant, gotPath, tc.wantCode, tc.wantTenant, tc.wantPath, rec.Body)
		}
	}
}
