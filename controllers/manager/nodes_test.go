package manager_test

import (
	"context"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/controllers/manager"
	"github.com/kplex/kplex/controllers/nodelifecycle"
	"github.com/kplex/kplex/controllers/podgc"
)

// podReady reports pod name's Ready condition in c.
func podReady(ctx context.Context, c kubernetes.Interface, name string) (corev1.ConditionStatus, error) {
	p, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status, nil
		}
	}
	return "", nil
}

// TestIntegrationNodeLeaseExpiry plays a kubelet that stops: its node goes
// NotReady and is tainted in root, its pods in both tenants are marked not
// ready, and a pod that tolerates the taint for a second is evicted from
// its tenant only (the same-named pod of the other tenant stays).
func TestIntegrationNodeLeaseExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	root := servertest.Client(t, e.Admin)
	a := servertest.Client(t, e.CreateTenant(t, "node-a"))
	b := servertest.Client(t, e.CreateTenant(t, "node-b"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Two kubelets. (With every node unreachable, upstream assumes the
	// control plane is cut off and evicts nothing: n2 stays healthy.)
	kubelet := func(name string) context.CancelFunc { return fakeKubelet(ctx, t, root, name) }
	stopKubelet := kubelet("n1")
	kubelet("n2")

	runManagerWith(t, e, manager.Options{
		Nodes: nodelifecycle.Options{MonitorPeriod: time.Second, StartupGracePeriod: 4 * time.Second, MonitorGracePeriod: 4 * time.Second}})

	// The same pod in both tenants on n1; A's tolerates an unreachable
	// node for a second, B's for ever.
	unreachable := func(seconds *int64) corev1.Toleration {
		return corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}
	}
	readyPod(t, a, "p", "p", "n1", "10.0.0.1", unreachable(new(int64(1))))
	readyPod(t, b, "p", "p", "n1", "10.0.0.1", unreachable(nil))
	time.Sleep(6 * time.Second) // the node stays Ready while the kubelet renews
	n, err := root.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
			t.Fatalf("n1 is %s while its Lease is renewed", c.Status)
		}
	}

	stopKubelet()
	eventually(t, 60*time.Second, "n1 NotReady and tainted unreachable", func(ctx context.Context) (bool, error) {
		n, err := root.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		tainted := false
		for _, taint := range n.Spec.Taints {
			tainted = tainted || (taint.Key == corev1.TaintNodeUnreachable && taint.Effect == corev1.TaintEffectNoExecute)
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionUnknown && tainted, nil
			}
		}
		return false, nil
	})
	// Evicted: deleted, gracefully (a kubelet, or pod GC, finishes it).
	eventually(t, 60*time.Second, "node-a's pod evicted after its toleration", func(ctx context.Context) (bool, error) {
		p, err := a.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && p.DeletionTimestamp != nil, err
	})
	eventually(t, 30*time.Second, "node-b's pod marked not ready", func(ctx context.Context) (bool, error) {
		s, err := podReady(ctx, b, "p")
		return s == corev1.ConditionFalse, err
	})
	time.Sleep(2 * time.Second)
	if p, err := b.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Errorf("node-b's pod, which tolerates an unreachable node for ever, was evicted (%v)", err)
	}
}

// TestIntegrationPodsOfADeletedNodeAreCollected: when the management plane
// deletes a node, the pods bound to it are deleted in every tenant (after
// upstream's 40 s quarantine), and pods on other nodes stay.
func TestIntegrationPodsOfADeletedNodeAreCollected(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	root := servertest.Client(t, e.Admin)
	a := servertest.Client(t, e.CreateTenant(t, "podgc-a"))
	b := servertest.Client(t, e.CreateTenant(t, "podgc-b"))
	m := runManager(t, e)
	ctx := context.Background()
	for _, n := range []string{"n1", "n2"} {
		if _, err := root.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	readyPod(t, a, "p", "p", "n1", "10.0.0.1")
	readyPod(t, b, "p", "p", "n1", "10.0.0.2")
	readyPod(t, b, "q", "q", "n2", "10.0.0.3")
	eventually(t, 30*time.Second, "the pod collectors asleep", func(context.Context) (bool, error) {
		return len(m.AwakeTenants(podgc.Name)) == 0, nil
	})
	if err := root.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Up to upstream's 40 s quarantine plus its 20 s period, and a margin.
	for name, c := range map[string]kubernetes.Interface{"podgc-a": a, "podgc-b": b} {
		eventually(t, 2*time.Minute, name+"'s pod on the deleted node collected", func(ctx context.Context) (bool, error) {
			_, err := c.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
	}
	if p, err := b.CoreV1().Pods("default").Get(ctx, "q", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Errorf("podgc-b's pod on n2, which stays: %v", err)
	}
}

// fakeKubelet registers a Ready node and renews its Lease every second,
// as a kubelet does, until the returned stop is called.
func fakeKubelet(ctx context.Context, t *testing.T, root kubernetes.Interface, name string, labels ...map[string]string) (stop context.CancelFunc) {
	t.Helper()
	leases := root.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if len(labels) > 0 {
		node.Labels = labels[0]
	}
	if _, err := root.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The node lifecycle controller may write the new node first.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := root.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KubeletReady"}}
		_, err = root.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	lease, err := leases.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: new(name), LeaseDurationSeconds: new(int32(4)), RenewTime: &metav1.MicroTime{Time: time.Now()}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeletCtx, stop := context.WithCancel(ctx)
	go func() {
		for kubeletCtx.Err() == nil {
			time.Sleep(time.Second)
			lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
			if l, err := leases.Update(kubeletCtx, lease, metav1.UpdateOptions{}); err == nil {
				lease = l
			}
		}
	}()
	return stop
}

// TestIntegrationDaemonSetsPerTenant: the same DaemonSet in two tenants
// runs a pod of each tenant on every node of the management plane, and a
// new node gets one of each.
func TestIntegrationDaemonSetsPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	root := servertest.Client(t, e.Admin)
	a := servertest.Client(t, e.CreateTenant(t, "ds-a"))
	b := servertest.Client(t, e.CreateTenant(t, "ds-b"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fakeKubelet(ctx, t, root, "n1")
	fakeKubelet(ctx, t, root, "n2")
	runManager(t, e)
	labels := map[string]string{"app": "agent"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	for _, c := range []kubernetes.Interface{a, b} {
		if _, err := c.AppsV1().DaemonSets("default").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// nodesOf returns the nodes the tenant's daemon pods are for.
	nodesOf := func(ctx context.Context, c kubernetes.Interface) ([]string, error) {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, p := range pods.Items {
			if aff := p.Spec.Affinity; aff != nil && aff.NodeAffinity != nil && aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
				for _, term := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
					for _, f := range term.MatchFields {
						out = append(out, f.Values...)
					}
				}
			}
		}
		slices.Sort(out)
		return out, nil
	}
	want := []string{"n1", "n2"}
	for name, c := range map[string]kubernetes.Interface{"ds-a": a, "ds-b": b} {
		eventually(t, 60*time.Second, name+"'s daemon pods on n1 and n2", func(ctx context.Context) (bool, error) {
			got, err := nodesOf(ctx, c)
			return slices.Equal(got, want), err
		})
	}
	fakeKubelet(ctx, t, root, "n3")
	want = []string{"n1", "n2", "n3"}
	for name, c := range map[string]kubernetes.Interface{"ds-a": a, "ds-b": b} {
		eventually(t, 60*time.Second, name+"'s daemon pod on the new node n3", func(ctx context.Context) (bool, error) {
			got, err := nodesOf(ctx, c)
			return slices.Equal(got, want), err
		})
	}
	// A node of a pool dedicated to ds-a runs ds-a's daemon pod only.
	dyn, err := dynamic.NewForConfig(e.Admin)
	if err != nil {
		t.Fatal(err)
	}
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "scheduling.kplex.io/v1alpha1", "kind": "NodePool",
		"metadata": map[string]any{"name": "a-only"}, "spec": map[string]any{"mode": "dedicated", "tenants": []any{"ds-a"}},
	}}
	if _, err := dyn.Resource(schedulingv1alpha1.NodePoolsResource).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the manager's pool cache follows
	// Registered in its pool, as the node agent does (--pool).
	fakeKubelet(ctx, t, root, "n4", map[string]string{schedulingv1alpha1.PoolLabel: "a-only"})
	eventually(t, 60*time.Second, "ds-a's daemon pod on its dedicated node n4", func(ctx context.Context) (bool, error) {
		got, err := nodesOf(ctx, a)
		return slices.Equal(got, []string{"n1", "n2", "n3", "n4"}), err
	})
	if got, err := nodesOf(ctx, b); err != nil || !slices.Equal(got, want) {
		t.Errorf("ds-b's daemon pods are for %v (%v), want %v: not ds-a's dedicated node", got, err, want)
	}
}
