package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
)

// A tenant's GPUs in a pool stop at its nominal quota plus what it may
// borrow; the pending reason names the resource and the pool; a pod that
// leaves gives its quota back. Another tenant's quota in the same pool is
// its own.
func TestIntegrationTenantQuotaExhaustionAndRelease(t *testing.T) {
	e := start(t)
	e.apply(t, schedulingv1alpha1.NodePoolsResource, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: gpu-a}, spec: {mode: shared}}`)
	e.node(t, "gpu-1", "gpu-a", 4)
	e.node(t, "gpu-2", "gpu-a", 4)
	e.apply(t, schedulingv1alpha1.TenantQuotasResource, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: TenantQuota, metadata: {name: quota-a},
		spec: {pools: [{name: gpu-a, resources: [{name: nvidia.com/gpu, nominalQuota: 2, borrowingLimit: 1}]}]}}`)
	e.apply(t, schedulingv1alpha1.TenantQuotasResource, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: TenantQuota, metadata: {name: quota-b},
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
