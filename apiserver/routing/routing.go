package routing

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	tenancyv1alpha1 "github.com/kplex/kplex/apis/tenancy/v1alpha1"
	"github.com/kplex/kplex/apiserver/tenantauth"
	"github.com/kplex/kplex/tenant"
)

// Tenants tells whether a tenant exists and is ready to serve requests.
type Tenants interface {
	// Serving reports whether name is a tenant whose requests may be served.
	Serving(name string) bool
	// BeginWrite is Serving for a write, which it records until done is
	// called: deletion waits for a tenant's writes in flight.
	BeginWrite(name string) (done func(), ok bool)
}

// WithTenant returns a handler that strips /clusters/<tenant> from the
// request, puts the tenant into its context and calls next. An invalid tenant
// name gets 400 and does not reach next. A request without the prefix is
// served in the tenant its bearer token claims (see claimedTenant), else in
// root. Whether the tenant exists is not answered here, before
// authentication, but by WithServingTenant.
func WithTenant(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name, rest, addressed, err := split(req.URL.EscapedPath())
		if err != nil {
			WriteStatus(w, apierrors.NewBadRequest(err.Error()))
			return
		}
		if !addressed {
			name, err := claimedTenant(req)
			if err != nil {
				WriteStatus(w, apierrors.NewUnauthorized(err.Error()))
				return
			}
			next.ServeHTTP(w, req.WithContext(tenant.WithTenant(req.Context(), name)))
			return
		}
		r := req.Clone(tenant.WithTenant(req.Context(), name))
		r.URL.Path = strings.TrimPrefix(r.URL.Path, tenant.PathPrefix+name)
		if r.URL.Path == "" {
			r.URL.Path = "/"
		}
		r.URL.RawPath = ""
		if rest != r.URL.Path {
			// Keep the escaped form when the rest of the path needs it.
			r.URL.RawPath = rest
		}
		r.RequestURI = r.URL.RequestURI()
		next.ServeHTTP(w, r)
	})
}

// claimedTenant is the tenant of a request without the prefix: the one
// its service account token was issued in (tenantauth.ClaimTenant), so
// that a pod's in-cluster client, which knows no prefix, reaches its own
// tenant; root for any other request. The claim is read unverified: like a
// prefix, it only chooses where the token is judged, and authentication
// there verifies it (docs/notes/in-cluster-api.md). No token is ever issued
// for root or for every tenant, so a claim that is no tenant's name is an
// error: it must not reach root's or the wildcard's authenticator.
func claimedTenant(req *http.Request) (string, error) {
	if req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
		// Upstream tries a client certificate before any token: a token
		// must not move a certificate's identity out of root.
		return tenant.Root, nil
	}
	name := tenantauth.ClaimedTenant(tenantauth.BearerToken(req))
	if name == "" {
		return tenant.Root, nil
	}
	if err := tenant.ValidateName(name); err != nil {
		return "", fmt.Errorf("the bearer token's %s claim names no tenant: %w", tenantauth.ClaimTenant, err)
	}
	return name, nil
}

// WithServingTenant answers 404, naming the tenant, for a request to a
// tenant that does not exist or is being deleted. It belongs behind
// authentication and authorization, so that only identities allowed on a
// tenant's path learn whether it exists.
func WithServingTenant(next http.Handler, tenants Tenants) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name := tenant.FromContext(req.Context())
		u, _ := genericapirequest.UserFrom(req.Context())
		if name == tenant.Root || name == tenant.Wildcard {
			next.ServeHTTP(w, req)
			return
		}
		serving := !tenantauth.Deleted(u)
		if serving && isWrite(req.Method) {
			var done func()
			if done, serving = tenants.BeginWrite(name); serving {
				defer done()
			}
		} else if serving {
			serving = tenants.Serving(name)
		}
		if !serving {
			WriteStatus(w, apierrors.NewNotFound(tenancyv1alpha1.TenantsResource.GroupResource(), name))
			return
		}
		next.ServeHTTP(w, req)
	})
}

// isWrite tells the methods that may change stored objects.
func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// split parses an escaped URL path. It returns addressed=false for paths
// outside /clusters/, and the tenant and the escaped remainder otherwise.
func split(escapedPath string) (name, rest string, addressed bool, err error) {
	if escapedPath != "/clusters" && !strings.HasPrefix(escapedPath, tenant.PathPrefix) {
		return "", "", false, nil
	}
	tail := strings.TrimPrefix(strings.TrimPrefix(escapedPath, "/clusters"), "/")
	name, rest, _ = strings.Cut(tail, "/")
	rest = "/" + rest
	if name == "%2A" || name == "%2a" {
		// Clients escape the wildcard.
		name = tenant.Wildcard
	}
	if name == tenant.Wildcard || name == tenant.Root {
		return name, rest, true, nil
	}
	if err := tenant.ValidateName(name); err != nil {
		return "", "", true, err
	}
	return name, rest, true, nil
}

// WriteStatus answers with err as a Kubernetes Status object.
func WriteStatus(w http.ResponseWriter, err *apierrors.StatusError) {
	status := err.Status()
	status.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(status.Code))
	_ = json.NewEncoder(w).Encode(status)
}
