package routing

import (
	"crypto/x509"
	"encoding/base64"
	"maps"
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

// jwt returns an unsigned JWT with claims: routing reads, never verifies.
func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(claims)) + ".c2ln"
}

func TestWithTenantRoutesByTokenClaim(t *testing.T) {
	t.Parallel()
	acme := jwt(`{"sub":"system:serviceaccount:default:bot","kplex.io/tenant":"acme"}`)
	tests := []struct {
		name       string
		url        string
		header     http.Header
		cert       bool
		wantCode   int
		wantTenant string
	}{
		{"claim routes", "/api/v1/pods", http.Header{"Authorization": {"Bearer " + acme}}, false, http.StatusOK, "acme"},
		{"scheme as upstream reads it", "/api", http.Header{"Authorization": {"bearer " + acme}}, false, http.StatusOK, "acme"},
		{"websocket subprotocol", "/api", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Protocol": {"v5.channel.k8s.io, base64url.bearer.authorization.k8s.io." + base64.RawURLEncoding.EncodeToString([]byte(acme))}}, false, http.StatusOK, "acme"},
		{"no claim is root's", "/api", http.Header{"Authorization": {"Bearer " + jwt(`{"sub":"x"}`)}}, false, http.StatusOK, tenant.Root},
		{"empty claim is root's", "/api", http.Header{"Authorization": {"Bearer " + jwt(`{"kplex.io/tenant":""}`)}}, false, http.StatusOK, tenant.Root},
		{"tenant admin tokens are no JWT", "/api", http.Header{"Authorization": {"Bearer kplex-tenant.acme.uid.mac"}}, false, http.StatusOK, tenant.Root},
		{"no token", "/api", nil, false, http.StatusOK, tenant.Root},
		{"explicit prefix wins", "/clusters/other/api", http.Header{"Authorization": {"Bearer " + acme}}, false, http.StatusOK, "other"},
		{"client certificate stays in root", "/api", http.Header{"Authorization": {"Bearer " + acme}}, true, http.StatusOK, tenant.Root},
		{"claim root", "/api", http.Header{"Authorization": {"Bearer " + jwt(`{"kplex.io/tenant":"root"}`)}}, false, http.StatusUnauthorized, ""},
		{"claim wildcard", "/api", http.Header{"Authorization": {"Bearer " + jwt(`{"kplex.io/tenant":"*"}`)}}, false, http.StatusUnauthorized, ""},
		{"claim escaped wildcard", "/api", http.Header{"Authorization": {"Bearer " + jwt(`{"kplex.io/tenant":"%2A"}`)}}, false, http.StatusUnauthorized, ""},
		{"claim not a name", "/api", http.Header{"Authorization": {"Bearer " + jwt(`{"kplex.io/tenant":"../acme"}`)}}, false, http.StatusUnauthorized, ""},
	}
	for _, tc := range tests {
		var gotTenant string
		h := WithTenant(WithServingTenant(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gotTenant = tenant.FromContext(r.Context())
		}), serving{"acme": true, "other": true}))
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "https://kplex"+tc.url, nil)
		maps.Copy(req.Header, tc.header)
		if tc.cert {
			req.TLS.PeerCertificates = []*x509.Certificate{{}}
		}
		h.ServeHTTP(rec, req)
		if rec.Code != tc.wantCode || gotTenant != tc.wantTenant {
			t.Errorf("%s: code %d tenant %q; want %d %q (body %s)", tc.name, rec.Code, gotTenant, tc.wantCode, tc.wantTenant, rec.Body)
		}
	}
}
