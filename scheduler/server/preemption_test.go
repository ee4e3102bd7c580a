package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// terminating names a tenant's pods being deleted.
func terminating(ctx context.Context, c kubernetes.Interface) []string {
	pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			out = append(out, p.Name)
		}
	}
	return out
}

// Preemption stays within a tenant: B's high-priority pod does not evict
// A's low-priority pods from a full node, A's own does.
func TestIntegrationPreemptionStaysWithinTheTenant(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if _, err := e.root.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.node(t, "gpu-1", "", 2)
	a, b := e.tenant(t, "prio-a"), e.tenant(t, "prio-b")
	e.runScheduler(t)
	for i := range 2 {
		createPod(t, a, fmt.Sprintf("low-%d", i), podSpec{gpus: 1})
		waitBound(t, a, fmt.Sprintf("low-%d", i))
	}
	createPod(t, b, "urgent", podSpec{gpus: 1, priorityClass: "high"})
	waitUnschedulable(t, b, "urgent", "nvidia.com/gpu")
	time.Sleep(2 * time.Second)
	if got := terminating(ctx, a); len(got) > 0 {
		t.Fatalf("B's pod evicted A's %v", got)
	}
	createPod(t, a, "urgent", podSpec{gpus: 1, priorityClass: "high"})
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		return len(terminating(ctx, a)) == 1, nil
	})
	if err != nil {
		t.Fatalf("A's high-priority pod evicted %v of A's, want one", terminating(ctx, a))
	}
}
