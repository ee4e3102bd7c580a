package manager_test

import (
	"context"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/controllers/manager"
	"github.com/kplex/kplex/controllers/serviceaccount"
)

const quiet = 3 * time.Second

func eventually(t *testing.T, timeout time.Duration, what string, cond func(context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, cond); err != nil {
		t.Fatalf("%s: never happened (%v)", what, err)
	}
}

// published waits until namespace ns of c has the default ServiceAccount
// and a kube-root-ca.crt holding ca, and returns the ConfigMap.
func published(t *testing.T, c kubernetes.Interface, ns string, ca []byte) *corev1.ConfigMap {
	t.Helper()
	var cm *corev1.ConfigMap
	eventually(t, 30*time.Second, "default ServiceAccount and kube-root-ca.crt in "+ns, func(ctx context.Context) (bool, error) {
		if _, err := c.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return false, nil
		}
		got, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		cm = got
		return got.Data["ca.crt"] == string(ca), nil
	})
	return cm
}

func createNamespace(t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	if _, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func awakeTotal(m *manager.Manager) int {
	n := 0
	for _, v := range m.Awake() {
		n += v
	}
	return n
}

func heapInuse() (goroutines int, heap uint64) {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}

func TestIntegrationServiceAccountsAndRootCAPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	ca, err := os.ReadFile(e.Admin.CAFile)
	if err != nil || len(ca) == 0 {
		t.Fatalf("reading the server CA %s: %v", e.Admin.CAFile, err)
	}
	a := servertest.Client(t, e.CreateTenant(t, "ctl-a"))
	b := servertest.Client(t, e.CreateTenant(t, "ctl-b"))
	e.CreateTenant(t, "ctl-idle")

	// Nothing but the controllers makes these: without them, none exist.
	if _, err := a.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("ctl-a has a default ServiceAccount before the controllers run (%v): this test proves nothing", err)
	}

	m := runManager(t, e)

	// The start-up sweep finds the bootstrap namespaces of every tenant
	// without their objects and wakes them; then all go back to sleep.
	published(t, a, "kube-system", ca)
	published(t, b, "default", ca)
	eventually(t, 30*time.Second, "every instance asleep after the quiet period", func(context.Context) (bool, error) {
		return awakeTotal(m) == 0, nil
	})
	g0, h0 := heapInuse()
	t.Logf("all asleep: %d goroutines, %d KiB heap in use, stats %+v", g0, h0>>10, m.Stats())

	// A new namespace in A wakes A's two controllers, and only A's.
	createNamespace(t, a, "x")
	published(t, a, "x", ca)
	for _, name := range []string{serviceaccount.ServiceAccountsName, serviceaccount.RootCAPublisherName} {
		if got := m.AwakeTenants(name); !slices.Equal(got, []string{"ctl-a"}) {
			t.Errorf("%s awake in %v after a namespace in ctl-a, want only ctl-a", name, got)
		}
	}
	g1, h1 := heapInuse()
	t.Logf("two instances awake (tenant ctl-a): %+d goroutines, %+d KiB heap in use, i.e. per instance %.1f goroutines, %.1f KiB",
		g1-g0, int64(h1-h0)>>10, float64(g1-g0)/2, float64(int64(h1)-int64(h0))/2048)

	// Same in B, independently.
	createNamespace(t, b, "x")
	cmB := published(t, b, "x", ca)
	if got := m.AwakeTenants(serviceaccount.RootCAPublisherName); slices.Contains(got, "ctl-idle") {
		t.Errorf("an untouched tenant is awake: %v", got)
	}
	eventually(t, 30*time.Second, "instances asleep again after the quiet period", func(context.Context) (bool, error) {
		return awakeTotal(m) == 0, nil
	})
	g2, h2 := heapInuse()
	t.Logf("asleep again after %+v: %+d goroutines, %+d KiB heap in use against the first sleep", m.Stats(), g2-g0, (int64(h2)-int64(h0))>>10)
	if g2 > g0+2 {
		t.Errorf("%d goroutines after the instances slept, %d before they woke: stopped instances leak", g2, g0)
	}

	// Deleting kube-root-ca.crt in A is repaired in A only.
	if err := a.CoreV1().ConfigMaps("x").Delete(context.Background(), "kube-root-ca.crt", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "kube-root-ca.crt repaired in ctl-a", func(ctx context.Context) (bool, error) {
		cm, err := a.CoreV1().ConfigMaps("x").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && cm.Data["ca.crt"] == string(ca), nil
	})
	if got := m.AwakeTenants(serviceaccount.RootCAPublisherName); !slices.Equal(got, []string{"ctl-a"}) {
		t.Errorf("root-CA publisher awake in %v after a delete in ctl-a, want only ctl-a", got)
	}
	if got := m.AwakeTenants(serviceaccount.ServiceAccountsName); len(got) != 0 {
		t.Errorf("serviceaccount controller awake in %v after a ConfigMap delete", got)
	}
	after, err := b.CoreV1().ConfigMaps("x").Get(context.Background(), "kube-root-ca.crt", metav1.GetOptions{})
	if err != nil || after.ResourceVersion != cmB.ResourceVersion || after.UID != cmB.UID {
		t.Errorf("ctl-b's kube-root-ca.crt changed by a repair in ctl-a: %v", err)
	}

	// A changed kube-root-ca.crt is put back too.
	cm, err := a.CoreV1().ConfigMaps("x").Get(context.Background(), "kube-root-ca.crt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["ca.crt"] = "tampered"
	if _, err := a.CoreV1().ConfigMaps("x").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	published(t, a, "x", ca)

	// The manager's caches hold only what they select: the wildcard
	// endpoint honours field selectors.
	if _, err := a.CoreV1().Secrets("x").Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secrets, err := servertest.Client(t, e.CrossTenantConfig()).CoreV1().Secrets("").List(context.Background(), metav1.ListOptions{FieldSelector: serviceaccount.TokenSecretSelector.String()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if s.Type != corev1.SecretTypeServiceAccountToken {
			t.Errorf("a cross-tenant list selecting %s returned %s/%s of type %s", serviceaccount.TokenSecretSelector, s.Namespace, s.Name, s.Type)
		}
	}

	// A deleted default ServiceAccount comes back.
	if err := a.CoreV1().ServiceAccounts("x").Delete(context.Background(), "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	published(t, a, "x", ca)
	if got := m.AwakeTenants(serviceaccount.ServiceAccountsName); slices.Contains(got, "ctl-b") || slices.Contains(got, "ctl-idle") {
		t.Errorf("serviceaccount controller awake in %v after a delete in ctl-a", got)
	}
}
