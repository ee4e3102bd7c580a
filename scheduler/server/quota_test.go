package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// A tenant's GPUs in a pool stop at its nominal quota plus what it may
// borrow; the pending reason names the resource and the pool; a pod that
// leaves gives its quota back. Another tenant's quota in the same pool is
// its own.
func TestIntegrationTenantQuotaExhaustionAndRelease(t *testing.T) {
	e := start(t)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: gpu-a}, spec: {mode: shared}}`)
	e.node(t, "gpu-1", "gpu-a", 4)
	e.node(t, "gpu-2", "gpu-a", 4)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: TenantQuota, metadata: {name: quota-a},
		spec: {pools: [{name: gpu-a, resources: [{name: nvidia.com/gpu, nominalQuota: 2, borrowingLimit: 1}]}]}}`)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: TenantQuota, metadata: {name: quota-b},
		spec: {pools: [{name: gpu-a, resources: [{name: nvidia.com/gpu, nominalQuota: 2}]}]}}`)
	a, b := e.tenant(t, "quota-a"), e.tenant(t, "quota-b")
	e.runScheduler(t)

	// A: 2 nominal + 1 borrowed from B's unused quota; the fourth waits.
	for i := range 3 {
		createPod(t, a, fmt.Sprintf("train-%d", i), podSpec{gpus: 1})
		waitBound(t, a, fmt.Sprintf("train-%d", i))
	}
	createPod(t, a, "train-3", podSpec{gpus: 1})
	waitUnschedulable(t, a, "train-3", "tenant quota nvidia.com/gpu exhausted in pool gpu-a")

	// B's nominal quota is B's whatever A borrowed (the nodes have room):
	// B gets its 2, then nothing, as the pool's quota is all in use.
	for i := range 2 {
		createPod(t, b, fmt.Sprintf("train-%d", i), podSpec{gpus: 1})
		waitBound(t, b, fmt.Sprintf("train-%d", i))
	}
	createPod(t, b, "train-2", podSpec{gpus: 1})
	waitUnschedulable(t, b, "train-2", "tenant quota nvidia.com/gpu exhausted in pool gpu-a")

	// A's pods leave: once A is back within its nominal quota, its waiting
	// pod runs; B's still waits, nothing being left to borrow.
	for _, name := range []string{"train-0", "train-1"} {
		if err := a.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
			t.Fatal(err)
		}
	}
	waitBound(t, a, "train-3")
	stillPending(t, b, "train-2", 2*time.Second)
}

// stillPending checks a pod stays unbound for d.
func stillPending(t *testing.T, c kubernetes.Interface, name string, d time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, d, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && p.Spec.NodeName != "", nil
	})
	if err == nil {
		t.Errorf("pod %s was bound", name)
	}
}

// A tenant borrowed the whole pool; when the lender's pod, within its
// nominal quota, finds no room, the borrower's newest pod is evicted (the
// borrower is told, without the lender's name) and the lender's pod runs.
// Nothing within the borrower's own nominal quota is touched.
func TestIntegrationBorrowedQuotaIsReclaimed(t *testing.T) {
	e := start(t)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: gpu}, spec: {mode: shared}}`)
	e.node(t, "gpu-1", "gpu", 4)
	for _, name := range []string{"lender", "borrower"} {
		e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: TenantQuota, metadata: {name: `+name+`},
			spec: {pools: [{name: gpu, resources: [{name: nvidia.com/gpu, nominalQuota: 2}]}]}}`)
	}
	lender, borrower := e.tenant(t, "lender"), e.tenant(t, "borrower")
	e.runScheduler(t)
	for i := range 4 {
		createPod(t, borrower, fmt.Sprintf("b-%d", i), podSpec{gpus: 1})
		waitBound(t, borrower, fmt.Sprintf("b-%d", i))
		time.Sleep(1100 * time.Millisecond) // creation times have seconds: b-3 is the newest
	}
	createPod(t, lender, "l-0", podSpec{gpus: 2})
	// Two of the borrower's pods are evicted (it borrowed two): its newest.
	var evicted []string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := borrower.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		evicted = nil
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				evicted = append(evicted, p.Name)
			}
		}
		return len(evicted) == 2, nil
	})
	slices.Sort(evicted)
	if err != nil || !slices.Equal(evicted, []string{"b-2", "b-3"}) {
		t.Fatalf("the borrower's pods being evicted: %v (%v), want b-2 and b-3", evicted, err)
	}
	// No node agent runs here: end them as it would.
	for _, name := range evicted {
		if err := borrower.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
			t.Fatal(err)
		}
	}
	waitBound(t, lender, "l-0")
	events, err := borrower.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	told := false
	for _, ev := range events.Items {
		if ev.Reason == "Preempted" {
			told = true
			if strings.Contains(ev.Message, "lender") || (ev.Related != nil && strings.Contains(ev.Related.Namespace+ev.Related.Name, "lender")) {
				t.Errorf("the borrower's event names the lender: %+v", ev)
			}
		}
	}
	if !told {
		t.Error("the borrower got no Preempted event")
	}
}

// GPU pods are packed: each goes to the node whose GPUs it fills most, so
// the other node stays whole.
func TestIntegrationGPUPodsArePacked(t *testing.T) {
	e := start(t)
	e.node(t, "gpu-1", "", 4)
	e.node(t, "gpu-2", "", 4)
	c := e.tenant(t, "packer")
	e.runScheduler(t)
	createPod(t, c, "first", podSpec{gpus: 2})
	first := waitBound(t, c, "first").Spec.NodeName
	for i := range 2 {
		name := fmt.Sprintf("next-%d", i)
		createPod(t, c, name, podSpec{gpus: 1})
		if node := waitBound(t, c, name).Spec.NodeName; node != first {
			t.Errorf("%s on %s, want %s, whose GPUs it fills", name, node, first)
		}
	}
}
