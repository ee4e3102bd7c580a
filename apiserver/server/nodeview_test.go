package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/apiserver/server/servertest"
)

func nodeNames(t *testing.T, c kubernetes.Interface) []string {
	t.Helper()
	nodes, err := c.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return names
}

// A tenant reads the management plane's nodes that its pods may use, and
// only those, and changes none; when a pool comes to admit it, its watch
// sees the pool's nodes arrive.
func TestIntegrationTenantsSeeTheNodesTheirPodsMayUse(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	root := servertest.Client(t, e.Admin)
	dyn, err := dynamic.NewForConfig(e.Admin)
	if err != nil {
		t.Fatal(err)
	}
	pools := dyn.Resource(schedulingv1alpha1.NodePoolsResource)
	for _, doc := range []string{
		`{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: a-only}, spec: {mode: dedicated, tenants: [view-a]}}`,
		`{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: for-b}, spec: {mode: shared, tenants: [view-b]}}`,
	} {
		if _, err := pools.Create(ctx, servertest.FromYAML(t, doc), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for name, pool := range map[string]string{"n-a": "a-only", "n-b": "for-b", "n-free": "", "n-ghost": "no-such-pool"} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
		if pool != "" {
			n.Labels[schedulingv1alpha1.PoolLabel] = pool
		}
		if _, err := root.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	a := servertest.Client(t, e.CreateTenant(t, "view-a"))
	b := servertest.Client(t, e.CreateTenant(t, "view-b"))
	c := servertest.Client(t, e.CreateTenant(t, "view-c"))
	want := map[string][]string{"view-a": {"n-a", "n-free"}, "view-b": {"n-b", "n-free"}, "view-c": {"n-free"}}
	clients := map[string]kubernetes.Interface{"view-a": a, "view-b": b, "view-c": c}
	// The apiserver learns the pools through its own watch.
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return slices.Equal(nodeNames(t, a), want["view-a"]), nil
	}); err != nil {
		t.Fatalf("A lists %v, want %v", nodeNames(t, a), want["view-a"])
	}
	for name, c := range clients {
		if got := nodeNames(t, c); !slices.Equal(got, want[name]) {
			t.Errorf("%s lists nodes %v, want %v", name, got, want[name])
		}
	}
	if _, err := b.CoreV1().Nodes().Get(ctx, "n-a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("B reading A's dedicated node: %v, want 404", err)
	}
	if n, err := a.CoreV1().Nodes().Get(ctx, "n-a", metav1.GetOptions{}); err != nil || n.Labels[schedulingv1alpha1.PoolLabel] != "a-only" {
		t.Errorf("A reading its node: %v %v", n, err)
	}

	// Read-only: create, update, patch, delete are refused with 403 and
	// change nothing.
	_, err = a.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "mine"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("a tenant creating a node: %v, want 403", err)
	}
	_, err = a.CoreV1().Nodes().Patch(ctx, "n-a", types.MergePatchType, []byte(`{"metadata":{"labels":{"kplex.io/pool":"for-b"}}}`), metav1.PatchOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("a tenant relabelling its node: %v, want 403", err)
	}
	if err := a.CoreV1().Nodes().Delete(ctx, "n-free", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a tenant deleting a node: %v, want 403", err)
	}
	if got := nodeNames(t, root); !slices.Equal(got, []string{"n-a", "n-b", "n-free", "n-ghost"}) {
		t.Errorf("root's nodes after the tenant's attempts: %v", got)
	}

	// A pool that comes to admit C: C's watch sees its node arrive.
	w, err := c.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := pools.Patch(ctx, "for-b", types.MergePatchType, []byte(`{"spec":{"tenants":["view-b","view-c"]}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the apiserver's pool cache follows
	if _, err := root.CoreV1().Nodes().Patch(ctx, "n-b", types.MergePatchType, []byte(`{"metadata":{"labels":{"touched":"yes"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-w.ResultChan():
			if n, ok := ev.Object.(*corev1.Node); ok && n.Name == "n-a" {
				t.Fatalf("C's watch showed A's node: %s", ev.Type)
			}
			if n, ok := ev.Object.(*corev1.Node); ok && n.Name == "n-b" && ev.Type == watch.Added {
				return
			}
		case <-deadline:
			t.Fatal("C's watch never showed n-b after for-b admitted C")
		}
	}
}
