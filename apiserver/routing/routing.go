package routing

import (
	"encoding/json"
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
// name gets 400 and does not reach next. Whether the tenant exists is not
// answered here, before authentication, but by WithServingTenant.
func WithTenant(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name, rest, addressed, err := split(req.URL.EscapedPath())
		if err != nil {
			WriteStatus(w, apierrors.NewBadRequest(err.Error()))
			return
		}
		if !addressed {
			next.ServeHTTP(w, req.WithContext(tenant.WithTenant(req.Context(), tenant.Root)))
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
