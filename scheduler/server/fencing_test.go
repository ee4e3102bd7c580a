package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-base/metrics/legacyregistry"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
)

// A pool dedicated to tenant A takes A's pods only: B's pod, tolerating
// every taint and selecting the pool, stays pending with a reason B can
// read, which names neither A nor A's pool. Same-named pods of A and B
// are two pods, each bound in its own tenant, with its pool named.
func TestIntegrationDedicatedPoolIsFencedByTenant(t *testing.T) {
	e := start(t)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: a-only}, spec: {mode: dedicated, tenants: [fence-a]}}`)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: everyone}, spec: {mode: shared}}`)
	e.node(t, "dedicated-1", "a-only", 8, corev1.Taint{Key: "kplex.io/dedicated", Value: "fence-a", Effect: corev1.TaintEffectNoSchedule})
	e.node(t, "shared-1", "everyone", 8)
	a, b := e.tenant(t, "fence-a"), e.tenant(t, "fence-b")
	e.runScheduler(t)

	createPod(t, b, "intruder", podSpec{pool: "a-only", tolerateAll: true, gpus: 1})
	msg := waitUnschedulable(t, b, "intruder", "pool this tenant may not use")
	if strings.Contains(msg, "fence-a") || strings.Contains(msg, "a-only") {
		t.Errorf("B's pending reason names A or A's pool: %q", msg)
	}
	events, err := b.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "intruder").String()})
	if err != nil || !hasReason(events.Items, "FailedScheduling") {
		t.Errorf("B sees no FailedScheduling event for its pod (%v): %v", err, events)
	}

	createPod(t, a, "web-0", podSpec{pool: "a-only", tolerateAll: true, gpus: 1})
	createPod(t, b, "web-0", podSpec{gpus: 1})
	podA, podB := waitBound(t, a, "web-0"), waitBound(t, b, "web-0")
	if podA.Spec.NodeName != "dedicated-1" || podA.Annotations[schedulingv1alpha1.PoolAnnotation] != "a-only" {
		t.Errorf("A's web-0 on %s in pool %q, want dedicated-1 in a-only", podA.Spec.NodeName, podA.Annotations[schedulingv1alpha1.PoolAnnotation])
	}
	if podB.Spec.NodeName != "shared-1" || podB.Annotations[schedulingv1alpha1.PoolAnnotation] != "everyone" {
		t.Errorf("B's web-0 on %s in pool %q, want shared-1 in everyone", podB.Spec.NodeName, podB.Annotations[schedulingv1alpha1.PoolAnnotation])
	}
	if podA.UID == podB.UID {
		t.Error("A and B read the same pod")
	}
	// B's pod without a selector never went to A's node either.
	if p, _ := b.CoreV1().Pods("default").Get(context.Background(), "intruder", metav1.GetOptions{}); p.Spec.NodeName != "" {
		t.Errorf("B's intruder bound to %s", p.Spec.NodeName)
	}
	// Naming the node does not get around the fence: neither at creation
	// nor by a binding of the tenant's own.
	direct := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "direct"}, Spec: corev1.PodSpec{
		AutomountServiceAccountToken: new(false), NodeName: "dedicated-1",
		Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
	}}
	_, err = b.CoreV1().Pods("default").Create(context.Background(), direct, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.nodeName") {
		t.Errorf("B creating a pod on A's node: %v, want 422 naming spec.nodeName", err)
	}
	binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}, Target: corev1.ObjectReference{Kind: "Node", Name: "dedicated-1"}}
	if err := b.CoreV1().Pods("default").Bind(context.Background(), binding, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("B binding its pod to A's node: %v, want 422", err)
	}
	direct.Spec.NodeName = "shared-1"
	if _, err := b.CoreV1().Pods("default").Create(context.Background(), direct, metav1.CreateOptions{}); err != nil {
		t.Errorf("B creating a pod on a shared node: %v", err)
	}

	// Root's own pods may use every pool.
	rootPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agent"}, Spec: corev1.PodSpec{
		AutomountServiceAccountToken: new(false), NodeSelector: map[string]string{schedulingv1alpha1.PoolLabel: "a-only"},
		Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		Containers:  []corev1.Container{{Name: "c", Image: "busybox"}},
	}}
	if _, err := e.root.CoreV1().ServiceAccounts("default").Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatal(err)
	}
	if _, err := e.root.CoreV1().Pods("default").Create(context.Background(), rootPod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := waitBound(t, e.root, "agent"); p.Spec.NodeName != "dedicated-1" {
		t.Errorf("root's pod on %s", p.Spec.NodeName)
	}

	// Each binding is observed, by tenant and pool, on the process's
	// /metrics (legacyregistry, as kube-scheduler's).
	for _, want := range []struct{ tenant, pool string }{{"fence-a", "a-only"}, {"fence-b", "everyone"}, {"root", "a-only"}} {
		if n := scheduledCount(t, want.tenant, want.pool); n < 1 {
			t.Errorf("kplex_scheduler_pod_scheduling_duration_seconds_count{tenant=%q,pool=%q} = %d, want at least 1", want.tenant, want.pool, n)
		}
	}
}

// scheduledCount reads the scheduling-latency histogram's count for a
// tenant and pool from legacyregistry.
func scheduledCount(t *testing.T, tenantName, pool string) uint64 {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "kplex_scheduler_pod_scheduling_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["tenant"] == tenantName && labels["pool"] == pool {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

func hasReason(events []corev1.Event, reason string) bool {
	for _, ev := range events {
		if ev.Reason == reason {
			return true
		}
	}
	return false
}

// The same default/web-0 in 50 tenants: 50 pods, all bound, each tenant
// seeing its own.
func TestIntegrationSameNamedPodsInFiftyTenants(t *testing.T) {
	e := start(t)
	e.node(t, "n1", "", 0)
	e.node(t, "n2", "", 0)
	e.runScheduler(t)
	const n = 50
	clients := make([]kubernetes.Interface, n)
	for i := range n {
		clients[i] = e.tenant(t, fmt.Sprintf("many-%02d", i))
		createPod(t, clients[i], "web-0", podSpec{})
	}
	seen := map[types.UID]int{}
	for i, c := range clients {
		p := waitBound(t, c, "web-0")
		if prev, ok := seen[p.UID]; ok {
			t.Errorf("tenants %d and %d read the same pod", prev, i)
		}
		seen[p.UID] = i
	}
}
