package nodepools_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/client/pools"
	"github.com/kplex/kplex/controllers/nodepools"
)

const gpu corev1.ResourceName = "nvidia.com/gpu"

// start starts a server and returns it, a context bounding the test, and
// root's typed and dynamic clients.
func start(t *testing.T) (*servertest.Env, context.Context, kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dyn, err := dynamic.NewForConfig(e.Admin)
	if err != nil {
		t.Fatal(err)
	}
	return e, ctx, servertest.Client(t, e.Admin), dyn
}

// A pool's nodes get its template's labels and taints; its status counts
// its nodes, their allocatable and what pods there request; a tenant's
// quota status shows what it uses and borrows in each pool, counted by
// node, whatever pool a pod's annotation claims.
func TestIntegrationPoolAndQuotaStatus(t *testing.T) {
	e, ctx, root, dyn := start(t)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: gpu-a},
		spec: {mode: shared, template: {metadata: {labels: {gpu: h100}}, spec: {taints: [{key: nvidia.com/gpu, effect: NoSchedule}]}}}}`)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: other}, spec: {mode: shared}}`)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: TenantQuota, metadata: {name: st-a},
		spec: {pools: [{name: gpu-a, resources: [{name: nvidia.com/gpu, nominalQuota: 2}]}]}}`)
	for _, name := range []string{"g1", "g2"} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{schedulingv1alpha1.PoolLabel: "gpu-a"}}}
		if _, err := root.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The node IPAM controller may give the Node its pod CIDR meanwhile.
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := root.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			n.Status.Allocatable = corev1.ResourceList{gpu: resource.MustParse("4")}
			n.Status.Capacity = n.Status.Allocatable
			_, err = root.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	a := servertest.Client(t, e.CreateTenant(t, "st-a"))
	if _, err := a.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"p1", "p2", "p3"} {
		p := &corev1.Pod{
			// The annotation lies: the node says gpu-a.
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{schedulingv1alpha1.PoolAnnotation: "other"}},
			Spec: corev1.PodSpec{NodeName: "g1", AutomountServiceAccountToken: new(false), Containers: []corev1.Container{{
				Name: "c", Image: "busybox", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{gpu: resource.MustParse("1")}},
			}}},
		}
		if _, err := a.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = nodepools.Run(runCtx, nodepools.Options{Loopback: e.Admin, Period: 200 * time.Millisecond})
	}()

	cache := pools.New(dyn)
	cache.Run(ctx)
	var pool *schedulingv1alpha1.NodePool
	var quota *schedulingv1alpha1.TenantQuota
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		pool, quota = cache.Pool("gpu-a"), cache.Quota("st-a")
		return pool != nil && quota != nil && pool.Status.Nodes == 2 && len(quota.Status.Pools) == 1 &&
			pool.Status.Requested.Name(gpu, resource.DecimalSI).Value() == 3, nil
	})
	if err != nil {
		t.Fatalf("pool status %+v, quota status %+v", pool.Status, quota.Status)
	}
	if got := pool.Status.Allocatable.Name(gpu, resource.DecimalSI).Value(); got != 8 {
		t.Errorf("pool allocatable %d GPUs, want 8", got)
	}
	u := quota.Status.Pools[0]
	if u.Name != "gpu-a" || u.Used.Name(gpu, resource.DecimalSI).Value() != 3 || u.Borrowed.Name(gpu, resource.DecimalSI).Value() != 1 {
		t.Errorf("quota status %+v, want gpu-a used 3 borrowed 1", u)
	}
	if other := cache.Pool("other"); other != nil && other.Status.Requested.Name(gpu, resource.DecimalSI).Value() != 0 {
		t.Errorf("the annotation moved usage to pool other: %+v", other.Status)
	}
	for _, name := range []string{"g1", "g2"} {
		n, err := root.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tainted := false
		for _, taint := range n.Spec.Taints {
			tainted = tainted || (taint.Key == "nvidia.com/gpu" && taint.Effect == corev1.TaintEffectNoSchedule)
		}
		if n.Labels["gpu"] != "h100" || !tainted {
			t.Errorf("node %s lacks the pool's template: labels %v taints %v", name, n.Labels, n.Spec.Taints)
		}
	}
}

// A pool requiring gVisor counts its nodes that have it: none, and its
// SandboxReady condition is False, saying its pods wait; a node announcing
// runsc makes it True.
func TestIntegrationPoolSandboxStatus(t *testing.T) {
	e, ctx, root, dyn := start(t)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: boxed}, spec: {mode: shared, sandbox: gvisor}}`)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: plain}, spec: {mode: shared}}`)
	node := func(name, pool string, handlers ...string) {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{schedulingv1alpha1.PoolLabel: pool}}}
		if _, err := root.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := root.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			n.Status.RuntimeHandlers = nil
			for _, h := range handlers {
				n.Status.RuntimeHandlers = append(n.Status.RuntimeHandlers, corev1.NodeRuntimeHandler{Name: h})
			}
			_, err = root.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	node("b1", "boxed")
	node("b2", "boxed")
	node("p1", "plain")
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = nodepools.Run(runCtx, nodepools.Options{Loopback: e.Admin, Period: 200 * time.Millisecond})
	}()
	cache := pools.New(dyn)
	cache.Run(ctx)
	condition := func(want metav1.ConditionStatus, sandboxed int32) *schedulingv1alpha1.NodePool {
		t.Helper()
		var pool *schedulingv1alpha1.NodePool
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			pool = cache.Pool("boxed")
			return pool != nil && pool.Status.Nodes == 2 && pool.Status.SandboxedNodes == sandboxed &&
				len(pool.Status.Conditions) == 1 && pool.Status.Conditions[0].Status == want, nil
		})
		if err != nil {
			t.Fatalf("pool boxed status %+v, want SandboxReady %s with %d sandboxed nodes", pool.Status, want, sandboxed)
		}
		return pool
	}
	pool := condition(metav1.ConditionFalse, 0)
	if c := pool.Status.Conditions[0]; c.Type != schedulingv1alpha1.ConditionSandboxReady || c.Reason != "NoNodeHasSandbox" ||
		c.Message != "none of the pool's 2 nodes has the gvisor sandbox (runtime handler runsc); its pods wait" {
		t.Errorf("condition %+v", c)
	}
	node("b3", "boxed", "runsc")
	if err := root.CoreV1().Nodes().Delete(ctx, "b2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pool = condition(metav1.ConditionTrue, 1)
	if c := pool.Status.Conditions[0]; c.Message != "1 of 2 nodes have the gvisor sandbox (runtime handler runsc)" {
		t.Errorf("condition message %q", c.Message)
	}
	if plain := cache.Pool("plain"); plain == nil || len(plain.Status.Conditions) != 0 {
		t.Errorf("a pool requiring no sandbox has conditions: %+v", plain)
	}
}
