package serviceaccount

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/klog/v2"
	sacontroller "k8s.io/kubernetes/pkg/controller/serviceaccount"
	kubeserviceaccount "k8s.io/kubernetes/pkg/serviceaccount"

	"github.com/kplex/kplex/apiserver/tenantauth"
	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
	"github.com/kplex/kplex/tenant"
)

// TokensName names the legacy token controller.
const TokensName = "serviceaccount-token"

// TokenSecretSelector selects the only Secrets the token controller reads.
var TokenSecretSelector = fields.OneTermEqualSelector("type", string(corev1.SecretTypeServiceAccountToken))

// TokenCaches are what the token controller reads.
type TokenCaches struct {
	// ServiceAccounts holds every ServiceAccount.
	ServiceAccounts *crosstenant.Cache
	// Secrets may hold only service-account-token Secrets
	// (TokenSecretSelector).
	Secrets *crosstenant.Cache
}

// needsFilling reports whether a token Secret lacks what the controller
// writes into it.
func needsFilling(s *corev1.Secret) bool {
	return len(s.Data[corev1.ServiceAccountTokenKey]) == 0 || len(s.Data[corev1.ServiceAccountRootCAKey]) == 0 || len(s.Data[corev1.ServiceAccountNamespaceKey]) == 0
}

// Tokens is upstream's TokensController per tenant: it fills the Secrets of
// type kubernetes.io/service-account-token that name a ServiceAccount
// (annotation kubernetes.io/service-account.name) with a token, ca.crt and
// the namespace, and deletes them with their ServiceAccount. The token is
// signed with key and bound to the tenant (tenantauth.ClaimTenant): it
// authenticates on that tenant's path only.
func Tokens(c TokenCaches, key any, rootCA []byte) (activation.Spec, error) {
	signer, err := kubeserviceaccount.JWTTokenGenerator(kubeserviceaccount.LegacyIssuer, key)
	if err != nil {
		return activation.Spec{}, fmt.Errorf("service account signing key: %w", err)
	}
	generator := tenantauth.TokenGenerator(signer)
	referenced := func(t string, sa *corev1.ServiceAccount) bool {
		for _, obj := range c.Secrets.InNamespace(t, sa.Namespace) {
			if obj.(*corev1.Secret).Annotations[corev1.ServiceAccountNameKey] == sa.Name {
				return true
			}
		}
		return false
	}
	return activation.Spec{
		Name:  TokensName,
		Watch: []*crosstenant.Cache{c.ServiceAccounts, c.Secrets},
		Relevant: func(t string, oldObj, newObj any) bool {
			switch obj := newObj.(type) {
			case *corev1.Secret:
				return needsFilling(obj)
			case nil:
				// A deleted ServiceAccount takes its token Secrets along.
				if sa, ok := crosstenant.Unwrap(oldObj).(*corev1.ServiceAccount); ok {
					return referenced(t, sa)
				}
			}
			return false
		},
		Pending: func(t string) bool {
			for _, obj := range c.Secrets.InTenant(t) {
				if needsFilling(obj.(*corev1.Secret)) {
					return true
				}
			}
			return false
		},
		Build: func(_ context.Context, env activation.Env) (func(context.Context), error) {
			core := env.Informers.Core().V1()
			ctrl, err := sacontroller.NewTokensController(klog.Background(), core.ServiceAccounts(), core.Secrets(), env.Client, sacontroller.TokensControllerOptions{TokenGenerator: generator, RootCA: rootCA})
			if err != nil {
				return nil, err
			}
			// The generator reads the tenant to bind the token to from
			// the context, as it does in the apiserver's requests.
			return func(ctx context.Context) { ctrl.Run(tenant.WithTenant(ctx, env.Tenant), 1) }, nil
		},
	}, nil
}
