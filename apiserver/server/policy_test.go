package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/tenant"
)

// serviceAccount creates ns/name in the tenant of admin and returns a
// client authenticated by a TokenRequest token of it, on that tenant's path.
func serviceAccount(t *testing.T, admin *rest.Config, ns, name string) (token string) {
	t.Helper()
	ctx := ctxT(t)
	c := servertest.Client(t, admin)
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// withToken returns a client of host (a tenant's admin config) that
// authenticates with token instead.
func withToken(t *testing.T, host *rest.Config, token string) kubernetes.Interface {
	cfg := rest.AnonymousClientConfig(host)
	cfg.BearerToken = token
	return servertest.Client(t, cfg)
}

func rootHost(e *servertest.Env) *rest.Config { return e.Admin }

func tenantHost(e *servertest.Env, name string) *rest.Config {
	cfg := rest.CopyConfig(e.Admin)
	cfg.Host += tenant.Path(name)
	return cfg
}

// eventually polls cond for up to 20 seconds: the authorizer's policy
// follows the stored objects by watch, within milliseconds; authenticated
// tokens are cached for ten seconds, as in any kube-apiserver.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	}); err != nil {
		t.Fatalf("%s: never happened", what)
	}
}

func listConfigMaps(ctx context.Context, c kubernetes.Interface) error {
	_, err := c.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	return err
}

func TestIntegrationRBACIsPerTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	adminA, adminB := e.CreateTenant(t, "rbac-a"), e.CreateTenant(t, "rbac-b")
	botA := withToken(t, adminA, serviceAccount(t, adminA, "default", "bot"))
	botB := withToken(t, adminB, serviceAccount(t, adminB, "default", "bot"))

	if err := listConfigMaps(ctx, botA); !apierrors.IsForbidden(err) {
		t.Fatalf("A's bot lists configmaps before any grant: %v, want Forbidden", err)
	}
	a := servertest.Client(t, adminA)
	if _, err := a.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bot-reads"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: "bot"}},
	}
	if _, err := a.RbacV1().RoleBindings("default").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A's grant takes effect in A", func() bool { return listConfigMaps(ctx, botA) == nil })

	// The same subject in B, granted nothing there, is refused.
	if err := listConfigMaps(ctx, botB); !apierrors.IsForbidden(err) {
		t.Errorf("B's bot lists configmaps after a grant in A: %v, want Forbidden", err)
	}
	// Access reviews answer for the tenant they are asked in.
	review := func(c kubernetes.Interface) bool {
		sar, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:default:bot",
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "default", Verb: "list", Resource: "configmaps"},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	if !review(a) {
		t.Error("SubjectAccessReview in A denies A's grant")
	}
	if review(servertest.Client(t, adminB)) {
		t.Error("SubjectAccessReview in B allows what only A granted")
	}
	if review(servertest.Client(t, e.Admin)) {
		t.Error("SubjectAccessReview in root allows what only A granted")
	}
	selfReview := func(c kubernetes.Interface) bool {
		ssar, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "default", Verb: "list", Resource: "configmaps"},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ssar.Status.Allowed
	}
	if !selfReview(botA) || selfReview(botB) {
		t.Errorf("SelfSubjectAccessReview: A's bot %v (want true), B's bot %v (want false)", selfReview(botA), selfReview(botB))
	}

	// A cluster-wide grant by A's admin stays in A.
	if _, err := a.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bot-admin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: "bot"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A's cluster-admin grant takes effect in A", func() bool {
		_, err := botA.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		return err == nil
	})
	if _, err := botB.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("B's bot lists namespaces after A granted its own bot cluster-admin: %v", err)
	}
	if err := listConfigMaps(ctx, servertest.Client(t, e.Admin)); err != nil {
		t.Fatal(err)
	}

	// Revoking in A takes the grant away.
	if err := a.RbacV1().ClusterRoleBindings().Delete(ctx, "bot-admin", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.RbacV1().RoleBindings("default").Delete(ctx, "bot-reads", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "revoking in A takes the grant away", func() bool { return apierrors.IsForbidden(listConfigMaps(ctx, botA)) })
}

func TestIntegrationServiceAccountTokensAreBoundToTheirTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	adminA, adminB := e.CreateTenant(t, "tokens-a"), e.CreateTenant(t, "tokens-b")
	tokenA := serviceAccount(t, adminA, "default", "bot")
	serviceAccount(t, adminB, "default", "bot") // same name, other tenant

	whoAmI := func(host *rest.Config) error {
		_, err := withToken(t, host, tokenA).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return err
	}
	if err := whoAmI(adminA); err != nil {
		t.Fatalf("A's token on A: %v", err)
	}
	// Without a prefix, the token is served in its own tenant
	// (TestIntegrationInClusterClientsReachTheirTenant); root only by name.
	explicitRoot := rest.CopyConfig(rootHost(e))
	explicitRoot.Host += tenant.PathPrefix + tenant.Root
	for name, host := range map[string]*rest.Config{"B": adminB, "root": explicitRoot, "every tenant": tenantHost(e, tenant.Wildcard)} {
		if err := whoAmI(host); !apierrors.IsUnauthorized(err) {
			t.Errorf("A's token on %s: %v, want Unauthorized", name, err)
		}
	}

	tokenReview := func(admin *rest.Config) authenticationv1.TokenReviewStatus {
		tr, err := servertest.Client(t, admin).AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tokenA}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status
	}
	if got := tokenReview(adminA); !got.Authenticated || got.User.Username != "system:serviceaccount:default:bot" {
		t.Errorf("TokenReview in A of A's token: %+v", got)
	}
	if got := tokenReview(adminB); got.Authenticated {
		t.Errorf("TokenReview in B accepts A's token: %+v", got)
	}
	if got := tokenReview(e.Admin); got.Authenticated {
		t.Errorf("TokenReview in root accepts A's token: %+v", got)
	}

	if err := servertest.Client(t, adminA).CoreV1().ServiceAccounts("default").Delete(ctx, "bot", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A's token is refused once its service account is deleted", func() bool {
		return apierrors.IsUnauthorized(whoAmI(adminA))
	})
	if got := tokenReview(adminA); got.Authenticated {
		t.Errorf("TokenReview in A accepts the token of a deleted service account: %+v", got)
	}
}

func TestIntegrationNamespaceLifecycleIsPerTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	a := servertest.Client(t, e.CreateTenant(t, "nslife-a"))
	b := servertest.Client(t, e.CreateTenant(t, "nslife-b"))
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}

	// A namespace of A's is no namespace of B's.
	if _, err := a.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "only-in-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CoreV1().ConfigMaps("only-in-a").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating in A's new namespace: %v", err)
	}
	_, err := b.CoreV1().ConfigMaps("only-in-a").Create(ctx, cm, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `namespaces "only-in-a" not found`) {
		t.Errorf("creating in a namespace only A has, in B: %v, want NotFound naming the namespace", err)
	}
	if _, err := b.CoreV1().ConfigMaps("only-in-a").Get(ctx, "c", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused create left something in B: %v", err)
	}

	// Every tenant keeps its system namespaces.
	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		if err := b.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("deleting %s in B: %v, want Forbidden", ns, err)
		}
	}

	// A terminating namespace of A's takes nothing new; B's of the same
	// name does. A's stays terminating: no namespace controller runs yet
	// to empty it, and the configmap keeps it from going.
	for _, c := range []kubernetes.Interface{a, b} {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A's doomed namespace refuses new content", func() bool {
		_, err := a.CoreV1().ConfigMaps("doomed").Create(ctx, cm, metav1.CreateOptions{})
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "being terminated")
	})
	if _, err := b.CoreV1().ConfigMaps("doomed").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Errorf("B's namespace of the same name refuses content: %v", err)
	}
}

// TestIntegrationServiceAccountAdmissionIsPerTenant: a pod is given, and
// checked against, a service account of its own tenant: A's "builder"
// admits A's pod and not B's, and B's pod gets B's default account, which
// B's controllers made.
func TestIntegrationServiceAccountAdmissionIsPerTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	a, b := servertest.Client(t, e.CreateTenant(t, "sa-adm-a")), servertest.Client(t, e.CreateTenant(t, "sa-adm-b"))
	if _, err := a.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	withAccount := pod("build")
	withAccount.Spec.ServiceAccountName = "builder"

	got, err := a.CoreV1().Pods("default").Create(ctx, withAccount, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("A's pod with A's service account: %v", err)
	}
	if !mountsServiceAccountToken(got) {
		t.Errorf("A's pod has no service account token volume: %+v", got.Spec.Volumes)
	}
	_, err = b.CoreV1().Pods("default").Create(ctx, withAccount, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "builder") {
		t.Errorf("B's pod naming A's service account: %v, want Forbidden naming builder", err)
	}
	var plain *corev1.Pod
	eventually(t, "B's pod admitted with B's default service account", func() bool {
		plain, err = b.CoreV1().Pods("default").Create(ctx, pod("plain"), metav1.CreateOptions{})
		return err == nil
	})
	if plain.Spec.ServiceAccountName != "default" || !mountsServiceAccountToken(plain) {
		t.Errorf("B's pod: service account %q, volumes %+v; want default, with its token", plain.Spec.ServiceAccountName, plain.Spec.Volumes)
	}
}

func mountsServiceAccountToken(p *corev1.Pod) bool {
	for _, v := range p.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil {
				return true
			}
		}
	}
	return false
}
