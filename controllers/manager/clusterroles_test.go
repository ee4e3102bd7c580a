package manager_test

import (
	"context"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/apiserver/server/servertest"
)

// The bootstrap aggregated roles (view, edit, admin) get their rules, so a
// tenant's RoleBinding to view grants reading in that tenant's namespace,
// and nothing in another tenant or beyond view.
func TestIntegrationAggregatedClusterRolesWorkInTenants(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	e.RunControllers(t)
	aCfg, bCfg := e.CreateTenant(t, "a"), e.CreateTenant(t, "b")
	a, b := servertest.Client(t, aCfg), servertest.Client(t, bCfg)
	ctx := context.Background()

	eventually(t, 30*time.Second, "tenant a's view role has rules", func(ctx context.Context) (bool, error) {
		r, err := a.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
		return err == nil && len(r.Rules) > 0, nil
	})
	for _, c := range []kubernetes.Interface{a, b} {
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "viewer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "viewer", Namespace: "default"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := a.CoreV1().ServiceAccounts("default").CreateToken(ctx, "viewer", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	as := func(cfg *rest.Config) kubernetes.Interface {
		c := rest.AnonymousClientConfig(cfg)
		c.BearerToken = tok.Status.Token
		return servertest.Client(t, c)
	}
	viewer := as(aCfg)
	eventually(t, 10*time.Second, "a's viewer reads a's configmaps", func(ctx context.Context) (bool, error) {
		_, err := viewer.CoreV1().ConfigMaps("default").Get(ctx, "settings", metav1.GetOptions{})
		return err == nil, nil
	})
	if _, err := viewer.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a's viewer creating a configmap: %v, want Forbidden", err)
	}
	if _, err := viewer.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a's viewer listing secrets: %v, want Forbidden (view excludes secrets)", err)
	}
	// view includes reading metrics.k8s.io (kubectl top), as with
	// metrics-server's aggregated reader role.
	eventually(t, 10*time.Second, "a's viewer lists pod metrics", func(ctx context.Context) (bool, error) {
		err := viewer.(*kubernetes.Clientset).RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods").Do(ctx).Error()
		return err == nil, nil
	})
	if _, err := as(bCfg).CoreV1().ConfigMaps("default").Get(ctx, "settings", metav1.GetOptions{}); err == nil {
		t.Errorf("a's viewer read b's configmap")
	}
}
