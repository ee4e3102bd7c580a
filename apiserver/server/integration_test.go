package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/tenant"
)

// One server serves every integration test in this package; each test uses
// its own tenants.
var (
	env             *servertest.Env
	stopControllers func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stopControllers != nil {
		stopControllers()
	}
	if env != nil {
		env.Stop()
		os.RemoveAll(env.DataDir)
	}
	os.Exit(code)
}

func startEnv(t *testing.T) *servertest.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	if env == nil {
		dir, err := os.MkdirTemp("", "kplex-integration-")
		if err != nil {
			t.Fatal(err)
		}
		env = servertest.Start(&keepAlive{T: t}, dir)
		stopControllers = env.RunControllers(&keepAlive{T: t})
	}
	return env
}

// keepAlive lets the shared server outlive the test that started it;
// TestMain stops it.
type keepAlive struct{ *testing.T }

func (k *keepAlive) Cleanup(func()) {}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestIntegrationSameNamesStayApart(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	a := servertest.Client(t, e.CreateTenant(t, "iso-a"))
	b := servertest.Client(t, e.CreateTenant(t, "iso-b"))

	for name, c := range map[string]kubernetes.Interface{"iso-a": a, "iso-b": b} {
		mustCreate(t, c, name)
	}
	for name, c := range map[string]kubernetes.Interface{"iso-a": a, "iso-b": b} {
		cm, err := c.CoreV1().ConfigMaps("shared").Get(ctx, "settings", metav1.GetOptions{})
		if err != nil || cm.Data["owner"] != name {
			t.Fatalf("%s: configmap = %v, %v; want owner %s", name, cm.Data, err, name)
		}
		sec, err := c.CoreV1().Secrets("shared").Get(ctx, "creds", metav1.GetOptions{})
		if err != nil || string(sec.Data["owner"]) != name {
			t.Fatalf("%s: secret = %v, %v", name, sec.Data, err)
		}
		role, err := c.RbacV1().ClusterRoles().Get(ctx, "reader", metav1.GetOptions{})
		if err != nil || role.Rules[0].Resources[0] != name {
			t.Fatalf("%s: clusterrole = %v, %v", name, role.Rules, err)
		}
		list, err := c.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range list.Items {
			if item.Annotations[tenant.Annotation] != name || (item.Data["owner"] != "" && item.Data["owner"] != name) {
				t.Errorf("%s lists another tenant's configmap %s/%s %v", name, item.Namespace, item.Name, item.Annotations)
			}
		}
	}

	// Changing and deleting in A leaves B's same-named objects alone.
	cm, _ := a.CoreV1().ConfigMaps("shared").Get(ctx, "settings", metav1.GetOptions{})
	cm.Data["owner"] = "changed"
	if _, err := a.CoreV1().ConfigMaps("shared").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.CoreV1().Secrets("shared").Delete(ctx, "creds", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.RbacV1().ClusterRoles().Delete(ctx, "reader", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.CoreV1().ConfigMaps("shared").Get(ctx, "settings", metav1.GetOptions{}); got.Data["owner"] != "iso-b" {
		t.Errorf("update in iso-a changed iso-b's configmap: %v", got.Data)
	}
	if _, err := b.CoreV1().Secrets("shared").Get(ctx, "creds", metav1.GetOptions{}); err != nil {
		t.Errorf("delete in iso-a removed iso-b's secret: %v", err)
	}
	if _, err := b.RbacV1().ClusterRoles().Get(ctx, "reader", metav1.GetOptions{}); err != nil {
		t.Errorf("delete in iso-a removed iso-b's clusterrole: %v", err)
	}
	// A namespace that exists only in B is not in A.
	if _, err := b.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "only-b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CoreV1().Namespaces().Get(ctx, "only-b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("iso-a sees iso-b's namespace: %v", err)
	}
}

func mustCreate(t *testing.T, c kubernetes.Interface, owner string) {
	t.Helper()
	ctx := ctxT(t)
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shared"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: namespace: %v", owner, err)
	}
	if _, err := c.CoreV1().ConfigMaps("shared").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"owner": owner},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: configmap: %v", owner, err)
	}
	if _, err := c.CoreV1().Secrets("shared").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"}, Data: map[string][]byte{"owner": []byte(owner)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: secret: %v", owner, err)
	}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{owner}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: clusterrole: %v", owner, err)
	}
}

func TestIntegrationWatchSeesOnlyItsTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	a := servertest.Client(t, e.CreateTenant(t, "watch-a"))
	b := servertest.Client(t, e.CreateTenant(t, "watch-b"))

	// B's own controllers publish kube-root-ca.crt in its namespaces; the
	// watch is of the rest.
	notRootCA := "metadata.name!=kube-root-ca.crt"
	list, err := b.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{FieldSelector: notRootCA})
	if err != nil {
		t.Fatal(err)
	}
	w, err := b.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, FieldSelector: notRootCA})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// Tenant A is busy with the same names; B then makes one change.
	for i := range 20 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}}
		if _, err := a.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-0"}, Data: map[string]string{"from": "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		cm, ok := ev.Object.(*corev1.ConfigMap)
		if !ok || ev.Type != watch.Added || cm.Data["from"] != "b" || cm.Annotations[tenant.Annotation] != "watch-b" {
			t.Fatalf("watch-b's first event is %s %#v, want its own ADDED cm-0", ev.Type, ev.Object)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no event on watch-b's watch")
	}
	select {
	case ev := <-w.ResultChan():
		t.Fatalf("watch-b saw a second event: %s %v", ev.Type, ev.Object)
	case <-time.After(time.Second):
	}

	// Watching A from an old resourceVersion replays A's events only.
	wa, err := a.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Stop()
	for i := range 20 {
		select {
		case ev := <-wa.ResultChan():
			cm := ev.Object.(*corev1.ConfigMap)
			if cm.Annotations[tenant.Annotation] != "watch-a" || cm.Data["from"] == "b" {
				t.Fatalf("event %d of watch-a's replay is another tenant's: %v", i, cm)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("watch-a replay stopped after %d events", i)
		}
	}
}

func TestIntegrationForgedIdentityIsOverwritten(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	a := servertest.Client(t, e.CreateTenant(t, "forge-a"))
	b := servertest.Client(t, e.CreateTenant(t, "forge-b"))
	forged := map[string]string{tenant.Annotation: "forge-b"}
	cms := a.CoreV1().ConfigMaps("default")

	created, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "forged", Annotations: forged}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkIdentity(t, "create", created.Annotations, "forge-a")

	created.Annotations = map[string]string{tenant.Annotation: "forge-b"}
	updated, err := cms.Update(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkIdentity(t, "update", updated.Annotations, "forge-a")

	patched, err := cms.Patch(ctx, "forged", types.MergePatchType, []byte(`{"metadata":{"annotations":{"kplex.io/tenant":"forge-b"}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkIdentity(t, "merge patch", patched.Annotations, "forge-a")

	apply := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"applied","namespace":"default","annotations":{"kplex.io/tenant":"forge-b"}}}`)
	applied, err := cms.Patch(ctx, "applied", types.ApplyPatchType, apply, metav1.PatchOptions{FieldManager: "test", Force: ptrTo(true)})
	if err != nil {
		t.Fatal(err)
	}
	checkIdentity(t, "server-side apply", applied.Annotations, "forge-a")

	for _, name := range []string{"forged", "applied"} {
		if _, err := b.CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("forge-b can read forge-a's %s: %v", name, err)
		}
	}
	// forge-b's own controllers publish kube-root-ca.crt; nothing else may be there.
	keys := slices.DeleteFunc(e.EtcdKeys(t, "/registry/configmaps/forge-b/"), func(k string) bool { return strings.HasSuffix(k, "/kube-root-ca.crt") })
	if len(keys) != 0 {
		t.Errorf("forged writes landed in forge-b's partition: %v", keys)
	}
	if keys := e.EtcdKeys(t, "/registry/configmaps/forge-a/default/forged"); len(keys) != 1 {
		t.Errorf("forge-a's object is not under its own key: %v", keys)
	}
}

func ptrTo[T any](v T) *T { return &v }

func checkIdentity(t *testing.T, op string, annotations map[string]string, want string) {
	t.Helper()
	if got := annotations[tenant.Annotation]; got != want {
		t.Errorf("after %s with a forged identity the object says %s=%q, want %q", op, tenant.Annotation, got, want)
	}
}

func TestIntegrationCredentialsAreConfinedToTheirTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	e.CreateTenant(t, "cred-b")
	aCfg := e.CreateTenant(t, "cred-a")
	base := strings.TrimSuffix(aCfg.Host, tenant.Path("cred-a"))
	for _, path := range []string{tenant.Path("cred-b"), "", "/clusters/*"} {
		cfg := rest.CopyConfig(aCfg)
		cfg.Host = base + path
		c := servertest.Client(t, cfg)
		_, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("cred-a's token on %q: err = %v, want 403 Forbidden", path, err)
		}
	}
	if _, err := servertest.Client(t, aCfg).CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("cred-a's token on its own path: %v", err)
	}
}

func TestIntegrationCrossTenantReadsAreReadOnlyAndPrivileged(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	for _, name := range []string{"wild-a", "wild-b"} {
		c := servertest.Client(t, e.CreateTenant(t, name))
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	all := servertest.Client(t, e.CrossTenantConfig())
	list, err := all.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var owners []string
	for _, cm := range list.Items {
		if cm.Name == "web" {
			owners = append(owners, cm.Annotations[tenant.Annotation])
		}
	}
	if !slices.Contains(owners, "wild-a") || !slices.Contains(owners, "wild-b") {
		t.Errorf("cross-tenant list has web from %v, want wild-a and wild-b", owners)
	}
	// One watch across tenants sees both tenants' changes.
	w, err := all.CoreV1().ConfigMaps("").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for _, name := range []string{"wild-a", "wild-b"} {
		c := servertest.Client(t, e.TenantConfig(t, name))
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "later"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case ev := <-w.ResultChan():
			if cm, ok := ev.Object.(*corev1.ConfigMap); ok && cm.Name == "later" {
				seen[cm.Annotations[tenant.Annotation]] = true
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("cross-tenant watch saw %v, want later from wild-a and wild-b", seen)
		}
	}
	_, err = all.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("cross-tenant create: err = %v, want 403", err)
	}
	if err := all.CoreV1().ConfigMaps("default").Delete(ctx, "web", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("cross-tenant delete: err = %v, want 403", err)
	}
}

func TestIntegrationBadTenantNamesWriteNothing(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	before := e.EtcdKeys(t, "/registry/")
	client, err := rest.HTTPClientFor(e.Admin)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`
	for _, name := range []string{"Upper", "..", "a%2Fb", "a.b", strings.Repeat("a", 64), "", "-a", "%2e%2e"} {
		url := e.Admin.Host + "/clusters/" + name + "/api/v1/namespaces/default/configmaps"
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		status := decodeStatus(t, resp)
		if resp.StatusCode != http.StatusBadRequest || status.Reason != metav1.StatusReasonBadRequest || !strings.Contains(status.Message, "tenant name") {
			t.Errorf("POST %s: %d %s %q, want 400 BadRequest naming the tenant name", url, resp.StatusCode, status.Reason, status.Message)
		}
	}
	// Unknown tenant: 404 naming it.
	resp, err := client.Get(e.Admin.Host + "/clusters/no-such-tenant/api/v1/namespaces")
	if err != nil {
		t.Fatal(err)
	}
	if status := decodeStatus(t, resp); resp.StatusCode != http.StatusNotFound || !strings.Contains(status.Message, `"no-such-tenant"`) {
		t.Errorf("unknown tenant: %d %q, want 404 naming it", resp.StatusCode, status.Message)
	}
	// Tenant objects with bad names are invalid (422, naming metadata.name).
	for _, name := range []string{"Upper", "a.b", strings.Repeat("b", 64), "root", "-a", "*", "a..b"} {
		_, err := e.Tenants.Create(ctx, name)
		if err == nil {
			t.Errorf("tenant %q was created", name)
		}
		raw := fmt.Sprintf(`{"apiVersion":"kplex.io/v1alpha1","kind":"Tenant","metadata":{"name":%q}}`, name)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.Admin.Host+"/apis/kplex.io/v1alpha1/tenants", strings.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		status := decodeStatus(t, resp)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(status.Message, "metadata.name") {
			t.Errorf("create Tenant %q: %d %q, want 422 naming metadata.name", name, resp.StatusCode, status.Message)
		}
	}
	after := e.EtcdKeys(t, "/registry/")
	for _, k := range after {
		if !slices.Contains(before, k) && !strings.HasPrefix(k, "/registry/masterleases/") && !strings.HasPrefix(k, "/registry/leases/") && !writtenByControllers(k) {
			t.Errorf("bad input wrote etcd key %s", k)
		}
	}
}

// writtenByControllers tells the keys the controller manager writes in the
// background, in tenants other tests made: every namespace's default
// service account and kube-root-ca.crt.
func writtenByControllers(key string) bool {
	return strings.HasPrefix(key, "/registry/serviceaccounts/") && strings.HasSuffix(key, "/default") ||
		strings.HasPrefix(key, "/registry/configmaps/") && strings.HasSuffix(key, "/kube-root-ca.crt")
}

func decodeStatus(t *testing.T, resp *http.Response) metav1.Status {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var s metav1.Status
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("response is not a Status: %s", b)
	}
	return s
}

func TestIntegrationDeleteRemovesEveryKey(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	const name = "doomed-tenant"
	c := servertest.Client(t, e.CreateTenant(t, name))
	mustCreate(t, c, name)
	if _, err := c.CoreV1().Services("shared").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, _ := c.CoreV1().Services("shared").Get(ctx, "web", metav1.GetOptions{})
	keysOf := func() []string {
		var out []string
		for _, k := range e.EtcdKeys(t, "/registry/") {
			if strings.Contains(k, "/"+name+"/") || strings.HasSuffix(k, "/"+name) {
				out = append(out, k)
			}
		}
		return out
	}
	if len(keysOf()) < 8 {
		t.Fatalf("expected the tenant's keys in etcd before deletion, got %v", keysOf())
	}
	if err := e.Tenants.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := e.Tenants.WaitGone(ctx, name); err != nil {
		t.Fatal(err)
	}
	if left := keysOf(); len(left) != 0 {
		t.Errorf("keys of deleted tenant remain: %v", left)
	}
	admin := servertest.Client(t, e.Admin)
	if _, err := admin.NetworkingV1().IPAddresses().Get(ctx, svc.Spec.ClusterIP, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("cluster IP %s of the deleted tenant's service is still allocated: %v", svc.Spec.ClusterIP, err)
	}
	oldTokenIsNotFound(t, c, name, "after deletion")
	// Its objects are gone from the watch cache too.
	all, err := servertest.Client(t, e.CrossTenantConfig()).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range all.Items {
		if ns.Annotations[tenant.Annotation] == name {
			t.Errorf("namespace %s of the deleted tenant is still cached", ns.Name)
		}
	}
	if e.Server.Registry().Serving(name) {
		t.Error("the deleted tenant is still in the registry")
	}
	// A new tenant of the same name is not the old one's credentials'.
	e.CreateTenant(t, name)
	oldTokenIsNotFound(t, c, name, "after recreation")
}

// oldTokenIsNotFound checks that a deleted tenant's credentials learn that
// it is gone, and nothing else.
func oldTokenIsNotFound(t *testing.T, c kubernetes.Interface, name, when string) {
	t.Helper()
	_, err := c.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `"`+name+`"`) {
		t.Errorf("old token %s: %v, want 404 naming the tenant", when, err)
	}
}

func TestIntegrationBootstrapPolicyIsSharedNotCopied(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	a := servertest.Client(t, e.CreateTenant(t, "policy-a"))
	b := servertest.Client(t, e.CreateTenant(t, "policy-b"))

	roles, err := a.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range roles.Items {
		names = append(names, r.Name)
	}
	for _, want := range []string{"cluster-admin", "admin", "edit", "view", "system:discovery"} {
		if !slices.Contains(names, want) {
			t.Errorf("tenant lists no %s clusterrole: %v", want, names)
		}
	}
	if _, err := a.RbacV1().ClusterRoleBindings().Get(ctx, "cluster-admin", metav1.GetOptions{}); err != nil {
		t.Errorf("tenant cannot get the cluster-admin binding: %v", err)
	}
	if keys := e.EtcdKeys(t, "/registry/clusterroles/policy-a/"); len(keys) != 0 {
		t.Errorf("the shared policy was copied into the tenant: %v", keys)
	}

	// default/kubernetes is root's, the same address for every tenant.
	rootSvc, err := servertest.Client(t, e.Admin).CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := a.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP != rootSvc.Spec.ClusterIP {
		t.Errorf("tenant's default/kubernetes: %v, %v; want root's %s", svc, err, rootSvc.Spec.ClusterIP)
	}
	// So is kube-system/kube-dns (the controller manager makes it; every
	// node answers DNS on its address), and nothing else of root's.
	if all, err := a.CoreV1().Services("").List(ctx, metav1.ListOptions{}); err != nil || !onlyServices(all.Items, "default/kubernetes", "kube-system/kube-dns") {
		t.Errorf("tenant lists services %v, %v; want default/kubernetes and kube-system/kube-dns at most", all, err)
	}
	if other, err := a.CoreV1().Services("kube-system").List(ctx, metav1.ListOptions{}); err != nil || !onlyServices(other.Items, "kube-system/kube-dns") {
		t.Errorf("default/kubernetes shows up in kube-system: %v, %v", other, err)
	}
	if keys := e.EtcdKeys(t, "/registry/services/specs/policy-a/"); len(keys) != 0 {
		t.Errorf("the kubernetes service was copied into the tenant: %v", keys)
	}

	// A tenant's own object of the same name shadows the shared one, in
	// that tenant only; root's stays as it was.
	view, err := a.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mine := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "view"}, Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}
	if _, err := a.RbacV1().ClusterRoles().Create(ctx, mine, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := a.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
	if err != nil || len(got.Rules) != 1 {
		t.Errorf("tenant's own view: %v, %v", got, err)
	}
	list, _ := a.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	count := 0
	for _, r := range list.Items {
		if r.Name == "view" {
			count++
		}
	}
	if count != 1 {
		t.Errorf("view listed %d times in policy-a", count)
	}
	other, err := b.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
	if err != nil || len(other.Rules) != len(view.Rules) {
		t.Errorf("policy-b's view changed: %d rules, %v", len(other.Rules), err)
	}
	// Deleting in a tenant removes its own copy, never the shared one.
	if err := a.RbacV1().ClusterRoles().Delete(ctx, "view", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if again, err := a.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{}); err != nil || len(again.Rules) != len(view.Rules) {
		t.Errorf("after deleting its copy, policy-a sees %v, %v; want the shared view again", again, err)
	}
	if err := a.RbacV1().ClusterRoles().Delete(ctx, "edit", metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("deleting the shared edit from a tenant: %v, want NotFound", err)
	}
	if _, err := b.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{}); err != nil {
		t.Errorf("shared edit gone for policy-b: %v", err)
	}
}

func TestIntegrationAnonymousCannotProbeTenants(t *testing.T) {
	e := startEnv(t)
	anonymous, err := rest.HTTPClientFor(&rest.Config{Host: e.Admin.Host, TLSClientConfig: rest.TLSClientConfig{CAFile: e.Admin.CAFile}})
	if err != nil {
		t.Fatal(err)
	}
	e.CreateTenant(t, "probed")
	codes := map[string]int{}
	for _, name := range []string{"probed", "no-such-tenant"} {
		for _, path := range []string{"/version", "/api/v1/namespaces"} {
			resp, err := anonymous.Get(e.Admin.Host + "/clusters/" + name + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			codes[name+path] = resp.StatusCode
			if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("anonymous GET /clusters/%s%s: %d, want 401 or 403", name, path, resp.StatusCode)
			}
		}
	}
	if codes["probed/version"] != codes["no-such-tenant/version"] {
		t.Errorf("anonymous /version tells tenants apart: %v", codes)
	}
}

// onlyServices reports whether every Service in items is one of allowed
// (namespace/name) and default/kubernetes, if allowed, is there.
func onlyServices(items []corev1.Service, allowed ...string) bool {
	seen := map[string]bool{}
	for _, svc := range items {
		key := svc.Namespace + "/" + svc.Name
		if !slices.Contains(allowed, key) {
			return false
		}
		seen[key] = true
	}
	return !slices.Contains(allowed, "default/kubernetes") || seen["default/kubernetes"]
}
