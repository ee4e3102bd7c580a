package manager_test

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/controllers/garbagecollector"
)

func gone(t *testing.T, what string, get func(context.Context) error) {
	t.Helper()
	eventually(t, 60*time.Second, what+" collected", func(ctx context.Context) (bool, error) {
		err := get(ctx)
		if err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
		return apierrors.IsNotFound(err), nil
	})
}

func configMapOwnedBy(name string, owner metav1.OwnerReference) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{owner}}}
}

func TestIntegrationGarbageCollectionPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	cfgA := e.CreateTenant(t, "gc-a")
	a := servertest.Client(t, cfgA)
	b := servertest.Client(t, e.CreateTenant(t, "gc-b"))
	m := runManager(t, e)
	ctx := context.Background()

	// Background: the same deployment in both tenants; deleting A's takes
	// its ReplicaSet and pods, and leaves B's whole.
	da, err := a.AppsV1().Deployments("default").Create(ctx, deployment("web", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.AppsV1().Deployments("default").Create(ctx, deployment("web", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, a, "gc-a", da, 2)
	waitReplicas(t, b, "gc-b", db, 2)
	podsB, _ := podsOf(ctx, b, "default", db)
	if err := a.AppsV1().Deployments("default").Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: new(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "gc-a's ReplicaSets and pods collected", func(ctx context.Context) (bool, error) {
		rss, err := a.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		pods, err := a.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(rss.Items) == 0 && len(pods.Items) == 0, err
	})
	if got := m.AwakeTenants(garbagecollector.Name); !slices.Contains(got, "gc-a") {
		t.Errorf("garbage collector awake in %v, want gc-a among them", got)
	}
	still, err := podsOf(ctx, b, "default", db)
	if err != nil || !slices.Equal(still, podsB) {
		t.Fatalf("gc-b's pods after gc-a's deployment was deleted: %v (were %v), %v", still, podsB, err)
	}

	// Foreground: B's deployment stays, with the foreground finalizer,
	// until its dependents are gone; then it goes.
	if err := b.AppsV1().Deployments("default").Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: new(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatal(err)
	}
	if d, err := b.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{}); err == nil {
		if !slices.Contains(d.Finalizers, metav1.FinalizerDeleteDependents) {
			t.Errorf("a deployment deleted in the foreground has finalizers %v", d.Finalizers)
		}
	}
	gone(t, "gc-b's deployment, in the foreground", func(ctx context.Context) error {
		_, err := b.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		return err
	})
	pods, err := b.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 0 {
		t.Errorf("gc-b has %d pods after a foreground deletion of their deployment (%v)", len(pods.Items), err)
	}

	// Orphan: the ReplicaSet stays, without its owner reference.
	do, err := a.AppsV1().Deployments("default").Create(ctx, deployment("keep", 1), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, a, "gc-a", do, 1)
	if err := a.AppsV1().Deployments("default").Delete(ctx, "keep", metav1.DeleteOptions{PropagationPolicy: new(metav1.DeletePropagationOrphan)}); err != nil {
		t.Fatal(err)
	}
	gone(t, "gc-a's deployment keep, orphaning", func(ctx context.Context) error {
		_, err := a.AppsV1().Deployments("default").Get(ctx, "keep", metav1.GetOptions{})
		return err
	})
	rss, err := a.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(rss.Items) != 1 || len(rss.Items[0].OwnerReferences) != 0 {
		t.Fatalf("after an orphaning delete gc-a has ReplicaSets %+v (%v), want one without owners", rss.Items, err)
	}

	// An owner in another tenant is no owner: a ConfigMap in A naming
	// B's ConfigMap (by its real UID) as owner is collected in A, and
	// B's is untouched.
	ownerB, err := b.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: ownerB.UID}
	if _, err := a.CoreV1().ConfigMaps("default").Create(ctx, configMapOwnedBy("stray", ref), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gone(t, "gc-a's ConfigMap whose owner is gc-b's", func(ctx context.Context) error {
		_, err := a.CoreV1().ConfigMaps("default").Get(ctx, "stray", metav1.GetOptions{})
		return err
	})
	if _, err := b.CoreV1().ConfigMaps("default").Get(ctx, "owner", metav1.GetOptions{}); err != nil {
		t.Errorf("gc-b's ConfigMap owner: %v", err)
	}

	// A custom resource owns a ConfigMap: deleting it collects the
	// ConfigMap.
	createWidgetCRD(t, cfgA)
	dynA, err := dynamic.NewForConfig(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	w, err := dynA.Resource(widgets).Namespace("default").Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crRef := metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "Widget", Name: "w", UID: w.GetUID()}
	if _, err := a.CoreV1().ConfigMaps("default").Create(ctx, configMapOwnedBy("of-widget", crRef), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * quiet) // past the quiet period: the collector must not have slept
	if _, err := a.CoreV1().ConfigMaps("default").Get(ctx, "of-widget", metav1.GetOptions{}); err != nil {
		t.Fatalf("the ConfigMap of a live widget: %v", err)
	}
	if err := dynA.Resource(widgets).Namespace("default").Delete(ctx, "w", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gone(t, "the ConfigMap of a deleted widget", func(ctx context.Context) error {
		_, err := a.CoreV1().ConfigMaps("default").Get(ctx, "of-widget", metav1.GetOptions{})
		return err
	})
}
