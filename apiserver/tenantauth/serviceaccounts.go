package tenantauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"gopkg.in/go-jose/go-jose.v2/jwt"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	kubeserviceaccount "k8s.io/kubernetes/pkg/serviceaccount"

	"github.com/kplex/kplex/tenant"
)

// ClaimTenant is the private claim that binds a service account token to
// the tenant it was issued in. Tokens without it are root's.
const ClaimTenant = "kplex.io/tenant"

// TokenGenerator adds ClaimTenant, from the request context, to every token
// inner signs.
func TokenGenerator(inner kubeserviceaccount.TokenGenerator) kubeserviceaccount.TokenGenerator {
	return tokenGenerator{inner}
}

type tokenGenerator struct {
	inner kubeserviceaccount.TokenGenerator
}

func (g tokenGenerator) GenerateToken(ctx context.Context, claims *jwt.Claims, privateClaims any) (string, error) {
	t := tenant.FromContext(ctx)
	if t == tenant.Root {
		return g.inner.GenerateToken(ctx, claims, privateClaims)
	}
	raw, err := json.Marshal(privateClaims)
	if err != nil {
		return "", fmt.Errorf("binding a token to tenant %q: %w", t, err)
	}
	bound := map[string]any{}
	if err := json.Unmarshal(raw, &bound); err != nil {
		return "", fmt.Errorf("binding a token to tenant %q: %w", t, err)
	}
	bound[ClaimTenant] = t
	return g.inner.GenerateToken(ctx, claims, bound)
}

// BindServiceAccounts accepts a service account token only on the path of
// the tenant it was issued in, and marks its identity with that tenant, so
// that the authorizer confines it there.
func BindServiceAccounts(inner authenticator.Request) authenticator.Request {
	return authenticator.RequestFunc(func(req *http.Request) (*authenticator.Response, bool, error) {
		// Read before inner: a successful bearer authenticator removes the header.
		token := BearerToken(req)
		resp, ok, err := inner.AuthenticateRequest(withTenantAudience(req))
		if !ok || err != nil || !strings.HasPrefix(resp.User.GetName(), serviceaccount.ServiceAccountUsernamePrefix) {
			return resp, ok, err
		}
		issued := tokenTenant(token)
		if issued != tenant.FromContext(req.Context()) && (issued != tenant.Root || tenant.FromContext(req.Context()) != tenant.Wildcard) {
			return nil, false, nil
		}
		if issued != tenant.Root {
			resp.User = withTenant(resp.User, issued)
		}
		return resp, true, nil
	})
}

// tenantAudience prefixes the audience that carries the request's tenant
// to ServiceAccountGetter. Upstream's token cache runs the service account
// authenticator in a context of its own, to which it carries only the
// audiences; those it also keys its cache by, so one tenant's lookup is
// never another's. A token is accepted when its audiences meet the
// request's; this one is never a token's, and never in a response.
const tenantAudience = "kplex.io/tenant="

func withTenantAudience(req *http.Request) *http.Request {
	auds, ok := authenticator.AudiencesFrom(req.Context())
	if !ok || len(auds) == 0 {
		return req
	}
	marked := append(slices.Clip(auds), tenantAudience+tenant.FromContext(req.Context()))
	return req.WithContext(authenticator.WithAudiences(req.Context(), marked))
}

// audienceTenant reads the tenant withTenantAudience put in ctx; root when
// none is there.
func audienceTenant(ctx context.Context) string {
	auds, _ := authenticator.AudiencesFrom(ctx)
	for _, aud := range auds {
		if t, ok := strings.CutPrefix(aud, tenantAudience); ok {
			return t
		}
	}
	return tenant.Root
}

// websocketProtocolPrefix carries a bearer token in a WebSocket
// subprotocol, for clients (browsers) that cannot set headers.
const websocketProtocolPrefix = "base64url.bearer.authorization.k8s.io."

// BearerToken returns the bearer token of req as upstream's authenticators
// read it (an Authorization header, else a WebSocket subprotocol), or "".
// Whoever reads a token's claims must read the token that was verified.
func BearerToken(req *http.Request) string {
	parts := strings.SplitN(strings.TrimSpace(req.Header.Get("Authorization")), " ", 3)
	if len(parts) >= 2 && strings.EqualFold(parts[0], "bearer") && parts[1] != "" {
		return parts[1]
	}
	if !wsstream.IsWebSocketRequest(req) {
		return ""
	}
	for _, protocol := range strings.Split(strings.Join(req.Header.Values("Sec-Websocket-Protocol"), ","), ",") {
		if encoded, ok := strings.CutPrefix(strings.TrimSpace(protocol), websocketProtocolPrefix); ok {
			token, _ := base64.RawURLEncoding.DecodeString(encoded)
			return string(token)
		}
	}
	return ""
}

// ClaimedTenant returns the ClaimTenant of a JWT without verifying it, or
// "" when token is no JWT or has no such claim.
func ClaimedTenant(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Tenant string `json:"kplex.io/tenant"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Tenant
}

// tokenTenant reads ClaimTenant from a JWT the inner authenticator has
// verified already; root when it has none.
func tokenTenant(token string) string {
	if t := ClaimedTenant(token); t != "" {
		return t
	}
	return tenant.Root
}

func withTenant(u user.Info, t string) user.Info {
	extra := maps.Clone(u.GetExtra())
	if extra == nil {
		extra = map[string][]string{}
	}
	extra[ExtraTenant] = []string{t}
	return &user.DefaultInfo{Name: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups(), Extra: extra}
}

// ServiceAccountGetter looks up what a service account token names (its
// service account, pod or secret) in the tenant of the request, which it
// reads from the audiences (see tenantAudience): root's through upstream's
// informers, a tenant's through the loopback client.
// Nodes are root's. SetLoopback must be called before the server serves.
type ServiceAccountGetter struct {
	serviceAccounts corev1listers.ServiceAccountLister
	pods            corev1listers.PodLister
	secrets         corev1listers.SecretLister
	nodes           corev1listers.NodeLister
	loopback        atomic.Pointer[rest.RESTClient]
}

// NewServiceAccountGetter is the OptionalTokenGetter of the apiserver's
// service account options: root's informer factory, before it starts.
func NewServiceAccountGetter(root informers.SharedInformerFactory) *ServiceAccountGetter {
	core := root.Core().V1()
	return &ServiceAccountGetter{
		serviceAccounts: core.ServiceAccounts().Lister(),
		pods:            core.Pods().Lister(),
		secrets:         core.Secrets().Lister(),
		nodes:           core.Nodes().Lister(),
	}
}

// SetLoopback gives the getter its way to the tenants: a privileged config
// of this apiserver.
func (g *ServiceAccountGetter) SetLoopback(cfg *rest.Config) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	g.loopback.Store(client.CoreV1().RESTClient().(*rest.RESTClient))
	return nil
}

// get reads one object of the request's tenant (root included) through the
// loopback client. group is "api/v1" or "apis/<group>/<version>".
func (g *ServiceAccountGetter) get(ctx context.Context, into runtime.Object, group string, path ...string) error {
	c := g.loopback.Load()
	if c == nil {
		return errors.New("the service account getter has no loopback client yet")
	}
	abs := append([]string{tenant.Path(audienceTenant(ctx)), group}, path...)
	return c.Get().AbsPath(abs...).Do(ctx).Into(into)
}

func inRoot(ctx context.Context) bool { return audienceTenant(ctx) == tenant.Root }

// GetServiceAccount implements serviceaccount.ServiceAccountTokenGetter.
func (g *ServiceAccountGetter) GetServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	if inRoot(ctx) {
		if sa, err := g.serviceAccounts.ServiceAccounts(namespace).Get(name); err == nil {
			return sa, nil
		}
	}
	out := &corev1.ServiceAccount{}
	return out, g.get(ctx, out, "api/v1", "namespaces", namespace, "serviceaccounts", name)
}

// GetPod implements serviceaccount.ServiceAccountTokenGetter.
func (g *ServiceAccountGetter) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	if inRoot(ctx) {
		if pod, err := g.pods.Pods(namespace).Get(name); err == nil {
			return pod, nil
		}
	}
	out := &corev1.Pod{}
	return out, g.get(ctx, out, "api/v1", "namespaces", namespace, "pods", name)
}

// GetSecret implements serviceaccount.ServiceAccountTokenGetter.
func (g *ServiceAccountGetter) GetSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	if inRoot(ctx) {
		if secret, err := g.secrets.Secrets(namespace).Get(name); err == nil {
			return secret, nil
		}
	}
	out := &corev1.Secret{}
	return out, g.get(ctx, out, "api/v1", "namespaces", namespace, "secrets", name)
}

// GetNode implements serviceaccount.ServiceAccountTokenGetter. Nodes are
// the management plane's, whatever tenant asks.
func (g *ServiceAccountGetter) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	ctx = authenticator.WithAudiences(ctx, nil)
	if node, err := g.nodes.Get(name); err == nil {
		return node, nil
	}
	out := &corev1.Node{}
	return out, g.get(ctx, out, "api/v1", "nodes", name)
}

// GetValidatingWebhookConfiguration implements serviceaccount.ServiceAccountTokenGetter.
func (g *ServiceAccountGetter) GetValidatingWebhookConfiguration(ctx context.Context, name string) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	out := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	return out, g.get(ctx, out, "apis/admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", name)
}

// GetMutatingWebhookConfiguration implements serviceaccount.ServiceAccountTokenGetter.
func (g *ServiceAccountGetter) GetMutatingWebhookConfiguration(ctx context.Context, name string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	out := &admissionregistrationv1.MutatingWebhookConfiguration{}
	return out, g.get(ctx, out, "apis/admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", name)
}
