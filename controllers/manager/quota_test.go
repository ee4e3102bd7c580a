package manager_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/controllers/resourcequota"
)

func pod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func createQuota(t *testing.T, c kubernetes.Interface, hard corev1.ResourceList) {
	t.Helper()
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"}, Spec: corev1.ResourceQuotaSpec{Hard: hard}}
	if _, err := c.CoreV1().ResourceQuotas("default").Create(context.Background(), q, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// used waits until quota q's status counts want pods, and returns it.
func waitUsedPods(t *testing.T, c kubernetes.Interface, tenantName string, want int64) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("%s's quota counting %d pods", tenantName, want), func(ctx context.Context) (bool, error) {
		q, err := c.CoreV1().ResourceQuotas("default").Get(ctx, "q", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		used, ok := q.Status.Used[corev1.ResourcePods]
		return ok && used.Value() == want, nil
	})
}

// createAdmitted creates p in default, retrying while the namespace's
// default ServiceAccount is not there yet (the controllers make it).
func createAdmitted(ctx context.Context, c kubernetes.Interface, p *corev1.Pod) (*corev1.Pod, error) {
	var err error
	for range 100 {
		var out *corev1.Pod
		out, err = c.CoreV1().Pods("default").Create(ctx, p.DeepCopy(), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "serviceaccount") {
			return out, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, err
}

// createPod creates a plain pod named name; see createAdmitted.
func createPod(ctx context.Context, c kubernetes.Interface, name string) error {
	_, err := createAdmitted(ctx, c, pod(name))
	return err
}

func TestIntegrationResourceQuotaPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	root := servertest.Client(t, e.Admin)
	a := servertest.Client(t, e.CreateTenant(t, "rq-a"))
	b := servertest.Client(t, e.CreateTenant(t, "rq-b"))
	runManager(t, e)
	ctx := context.Background()

	// Root's quota forbids pods in root's default: no tenant's default
	// feels it.
	createQuota(t, root, corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")})
	createQuota(t, a, corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2"), "count/configmaps": resource.MustParse("10")})
	waitUsedPods(t, a, "rq-a", 0)

	// B has no quota: three pods.
	for i := range 3 {
		if err := createPod(ctx, b, fmt.Sprintf("p%d", i)); err != nil {
			t.Fatalf("rq-b, without a quota, creating pod %d: %v", i, err)
		}
	}
	// A's quota counts A's pods only: two fit, the third is refused.
	for i := range 2 {
		if err := createPod(ctx, a, fmt.Sprintf("p%d", i)); err != nil {
			t.Fatalf("rq-a creating pod %d of 2: %v", i, err)
		}
	}
	err := createPod(ctx, a, "p2")
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "exceeded quota: q") {
		t.Fatalf("rq-a's third pod: %v, want 403 exceeded quota: q", err)
	}
	t.Logf("rq-a's third pod refused: %v", err)
	waitUsedPods(t, a, "rq-a", 2)

	// B's quota of the same name counts B's three pods, not A's.
	createQuota(t, b, corev1.ResourceList{corev1.ResourcePods: resource.MustParse("5")})
	waitUsedPods(t, b, "rq-b", 3)
	if err := createPod(ctx, b, "p3"); err != nil {
		t.Fatalf("rq-b's fourth pod under a quota of 5: %v", err)
	}

	// A deleted pod gives its quota back, in A.
	if err := a.CoreV1().Pods("default").Delete(ctx, "p0", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	waitUsedPods(t, a, "rq-a", 1)
	if err := createPod(ctx, a, "p2"); err != nil {
		t.Fatalf("rq-a's pod after one was deleted: %v", err)
	}
	waitUsedPods(t, b, "rq-b", 4)

	// Root's own quota still holds in root.
	if _, err := root.CoreV1().Pods("default").Create(ctx, pod("p"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("root's pod under root's quota of 0: %v, want 403", err)
	}
}

// TestIntegrationResourceQuotaStatusIsReconciled: a quota status someone
// else writes (upstream's conformance suite patches it) is put back from
// the spec and the tenant's objects at once, whether the tenant's
// controller is awake or asleep; another tenant's quota of the same name
// keeps its own.
func TestIntegrationResourceQuotaStatusIsReconciled(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	a := servertest.Client(t, e.CreateTenant(t, "rqs-a"))
	b := servertest.Client(t, e.CreateTenant(t, "rqs-b"))
	m := runManager(t, e)
	ctx := context.Background()
	createQuota(t, a, corev1.ResourceList{corev1.ResourcePods: resource.MustParse("5")})
	createQuota(t, b, corev1.ResourceList{corev1.ResourcePods: resource.MustParse("7")})
	waitUsedPods(t, a, "rqs-a", 0)
	waitUsedPods(t, b, "rqs-b", 0)
	for _, when := range []string{"awake", "asleep"} {
		if when == "asleep" {
			eventually(t, 30*time.Second, "rqs-a's quota controller asleep", func(context.Context) (bool, error) {
				return !slices.Contains(m.AwakeTenants(resourcequota.Name), "rqs-a"), nil
			})
		}
		if _, err := a.CoreV1().ResourceQuotas("default").Patch(ctx, "q", types.MergePatchType,
			[]byte(`{"status":{"hard":{"pods":"99"},"used":{"pods":"42"}}}`), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "rqs-a's patched quota status put back while its controller is "+when, func(ctx context.Context) (bool, error) {
			q, err := a.CoreV1().ResourceQuotas("default").Get(ctx, "q", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return q.Status.Hard.Pods().Value() == 5 && q.Status.Used.Pods().Value() == 0, nil
		})
	}
	qb, err := b.CoreV1().ResourceQuotas("default").Get(ctx, "q", metav1.GetOptions{})
	if err != nil || qb.Status.Hard.Pods().Value() != 7 {
		t.Errorf("rqs-b's quota: %v, %+v", err, qb.Status)
	}
}
