package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"

	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/tenant"
)

// inClusterConfig is what client-go's rest.InClusterConfig builds in a
// pod: no prefix, the token file, the CA, and the kubernetes Service's
// cluster IP as the name the serving certificate must carry.
func inClusterConfig(t *testing.T, e *servertest.Env, token string) *rest.Config {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return &rest.Config{
		Host:            e.Admin.Host,
		BearerTokenFile: tokenFile,
		TLSClientConfig: rest.TLSClientConfig{CAFile: e.Admin.CAFile, ServerName: "10.96.0.1"},
	}
}

// withClaim returns token with its tenant claim replaced, its signature
// unchanged: a forgery.
func withClaim(t *testing.T, token, claim string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["kplex.io/tenant"] = claim
	if payload, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func whoAmI(ctx context.Context, c kubernetes.Interface) (authenticationv1.UserInfo, error) {
	r, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return r.Status.UserInfo, nil
}

// A pod's unmodified in-cluster client reaches its own tenant, with its
// service account's RBAC there, and nothing else.
func TestIntegrationInClusterClientsReachTheirTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	adminA, adminB := e.CreateTenant(t, "incluster-a"), e.CreateTenant(t, "incluster-b")
	a, b := servertest.Client(t, adminA), servertest.Client(t, adminB)
	token := serviceAccount(t, adminA, "default", "bot")
	serviceAccount(t, adminB, "default", "bot")
	if _, err := a.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bot-views"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: "bot"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]kubernetes.Interface{"only-in-a": a, "only-in-b": b} {
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	bot := servertest.Client(t, inClusterConfig(t, e, token))
	var names []string
	eventually(t, "the view binding lets the in-cluster client list", func() bool {
		cms, err := bot.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		names = names[:0]
		for _, cm := range cms.Items {
			names = append(names, cm.Name)
		}
		return err == nil
	})
	if !slices.Contains(names, "only-in-a") || slices.Contains(names, "only-in-b") {
		t.Errorf("configmaps listed without a prefix: %v, want incluster-a's", names)
	}
	if _, err := bot.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("listing pods: %v", err)
	}
	if u, err := whoAmI(ctx, bot); err != nil || u.Username != "system:serviceaccount:default:bot" || !slices.Equal(u.Extra["kplex.io/tenant"], []string{"incluster-a"}) {
		t.Errorf("SelfSubjectReview: %+v %v", u, err)
	}
	if _, err := bot.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "written"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("creating a configmap with view: %v, want Forbidden", err)
	}

	// What the pod dials: the Service's cluster IP, whose endpoints (root's,
	// every tenant's) name an address of this host, which the serving
	// certificate names too.
	svc, err := bot.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP != "10.96.0.1" {
		t.Fatalf("the kubernetes Service: %v %v", svc, err)
	}
	eps, err := bot.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || len(eps.Subsets) == 0 || len(eps.Subsets[0].Addresses) == 0 {
		t.Fatalf("the kubernetes Endpoints: %v %v", eps, err)
	}
	epSlices, err := bot.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubernetes"})
	if err != nil || len(epSlices.Items) == 0 || len(epSlices.Items[0].Endpoints) == 0 {
		t.Fatalf("the kubernetes EndpointSlice: %v %v", epSlices, err)
	}
	serving, err := certutil.CertsFromFile(filepath.Join(e.DataDir, "pki", "apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{eps.Subsets[0].Addresses[0].IP, epSlices.Items[0].Endpoints[0].Addresses[0]} {
		if ip := net.ParseIP(addr); ip == nil || ip.IsLoopback() {
			t.Errorf("the kubernetes endpoints name %q: pods cannot reach it", addr)
		}
		if err := serving[0].VerifyHostname(addr); err != nil {
			t.Errorf("serving certificate: %v", err)
		}
	}
	if err := serving[0].VerifyHostname("kubernetes.default.svc.cluster.local"); err != nil {
		t.Errorf("serving certificate: %v", err)
	}

	// Legacy Secret tokens carry the tenant too.
	if _, err := a.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bot-token", Annotations: map[string]string{corev1.ServiceAccountNameKey: "bot"}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var legacy string
	eventually(t, "the token controller fills the Secret", func() bool {
		s, err := a.CoreV1().Secrets("default").Get(ctx, "bot-token", metav1.GetOptions{})
		legacy = string(s.Data[corev1.ServiceAccountTokenKey])
		return err == nil && legacy != ""
	})
	if u, err := whoAmI(ctx, servertest.Client(t, inClusterConfig(t, e, legacy))); err != nil || !slices.Equal(u.Extra["kplex.io/tenant"], []string{"incluster-a"}) {
		t.Errorf("SelfSubjectReview with a legacy token: %+v %v", u, err)
	}

	// An explicit prefix is kept: the token means nothing on another path.
	for _, path := range []string{tenant.Path("incluster-b"), tenant.PathPrefix + tenant.Root} {
		cfg := inClusterConfig(t, e, token)
		cfg.Host += path
		if _, err := whoAmI(ctx, servertest.Client(t, cfg)); !apierrors.IsUnauthorized(err) {
			t.Errorf("the token on %s: %v, want Unauthorized", path, err)
		}
	}
	// A forged claim routes to where the signature fails, whether the
	// tenant exists or not; no claim reaches root or every tenant.
	for _, claim := range []string{"incluster-b", "no-such-tenant", tenant.Root, tenant.Wildcard, "%2A", "Incluster-a"} {
		if _, err := whoAmI(ctx, servertest.Client(t, inClusterConfig(t, e, withClaim(t, token, claim)))); !apierrors.IsUnauthorized(err) {
			t.Errorf("a token claiming %q: %v, want Unauthorized", claim, err)
		}
	}
	// The admin's client certificate keeps to root whatever token rides along.
	admin := rest.CopyConfig(e.Admin)
	admin.BearerToken = token
	if u, err := whoAmI(ctx, servertest.Client(t, admin)); err != nil || len(u.Extra["kplex.io/tenant"]) != 0 {
		t.Errorf("the admin certificate with a tenant's token: %+v %v, want root's admin", u, err)
	}
}
