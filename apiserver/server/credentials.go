package server

import (
	"encoding/json"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	tenancyv1alpha1 "github.com/kplex/kplex/apis/tenancy/v1alpha1"
	"github.com/kplex/kplex/apiserver/routing"
	"github.com/kplex/kplex/tenant"
)

// CredentialsPath serves a tenant's admin credentials to management-plane
// identities allowed GET on it (system:masters by default).
const CredentialsPath = tenancyv1alpha1.CredentialsPath

func (s *Server) credentialsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name := strings.TrimPrefix(req.URL.Path, CredentialsPath)
		uid, ok := s.registry.UID(name)
		if tenant.FromContext(req.Context()) != tenant.Root || !ok {
			routing.WriteStatus(w, apierrors.NewNotFound(tenancyv1alpha1.TenantsResource.GroupResource(), name))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(tenancyv1alpha1.Credentials{Tenant: name, Path: tenant.Path(name), Token: s.tokens.Issue(name, uid)})
	})
}
