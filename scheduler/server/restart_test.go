package server_test

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The scheduler stops mid-run and a new one starts: every pod ends bound
// exactly once, and no binding made before the restart moves.
func TestIntegrationSchedulerRestartLosesAndDoublesNothing(t *testing.T) {
	e := start(t)
	e.node(t, "n1", "", 0)
	e.node(t, "n2", "", 0)
	tenants := []kubernetes.Interface{e.tenant(t, "restart-a"), e.tenant(t, "restart-b"), e.tenant(t, "restart-c")}
	// Leader election is tested across processes (test/e2e): upstream's
	// elector exits the process when it stops.
	first := e.runScheduler(t)
	for i := range 10 {
		for _, c := range tenants {
			createPod(t, c, fmt.Sprintf("p-%d", i), podSpec{})
		}
		if i == 4 {
			waitBound(t, tenants[0], "p-0")
			first() // mid-run: pods being created, some bound, some binding
		}
	}
	before := map[string]string{}
	for ti, c := range tenants {
		pods, err := c.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName != "" {
				before[fmt.Sprintf("%d/%s", ti, p.Name)] = p.Spec.NodeName
			}
		}
	}
	t.Logf("%d of 30 pods bound before the restart", len(before))
	for i := 10; i < 15; i++ {
		for _, c := range tenants {
			createPod(t, c, fmt.Sprintf("p-%d", i), podSpec{})
		}
	}
	e.runScheduler(t)
	for ti, c := range tenants {
		for i := range 15 {
			p := waitBound(t, c, fmt.Sprintf("p-%d", i))
			if node, ok := before[fmt.Sprintf("%d/%s", ti, p.Name)]; ok && node != p.Spec.NodeName {
				t.Errorf("tenant %d's %s moved from %s to %s", ti, p.Name, node, p.Spec.NodeName)
			}
		}
		events, err := c.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scheduled := map[string]int{}
		for _, ev := range events.Items {
			if ev.Reason == "Scheduled" {
				scheduled[ev.InvolvedObject.Name] += int(max(ev.Count, 1))
			}
		}
		for name, n := range scheduled {
			if n > 1 {
				t.Errorf("tenant %d's %s was scheduled %d times", ti, name, n)
			}
		}
	}
}
