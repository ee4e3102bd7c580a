package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// A heavy tenant queued 8 one-GPU pods before a light tenant queued 4;
// when a 4-GPU node arrives, the light tenant gets its fair share (2 of
// 4) in that round rather than waiting behind every older heavy pod.
func TestIntegrationFairShareBetweenHeavyAndLightTenant(t *testing.T) {
	e := start(t)
	heavy, light := e.tenant(t, "heavy"), e.tenant(t, "light")
	e.runScheduler(t)
	for i := range 8 {
		createPod(t, heavy, fmt.Sprintf("h-%d", i), podSpec{gpus: 1})
	}
	time.Sleep(200 * time.Millisecond) // the heavy pods are the older
	for i := range 4 {
		createPod(t, light, fmt.Sprintf("l-%d", i), podSpec{gpus: 1})
	}
	waitUnschedulable(t, light, "l-3", "no nodes available")
	// Every pod has sat out its back-off (1s after one attempt): they are
	// all in the round that the node's arrival starts, rather than in the
	// back-off queue, which upstream orders by expiry, not by share.
	time.Sleep(1500 * time.Millisecond)
	e.node(t, "gpu-1", "", 4)

	var h, l int
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		h, l = bound(ctx, heavy), bound(ctx, light)
		return h+l == 4, nil
	})
	if err != nil {
		t.Fatalf("%d heavy and %d light pods bound, want 4 in all", h, l)
	}
	if l < 2 {
		t.Errorf("light tenant got %d of 4 GPUs, heavy %d: want at least its fair share, 2", l, h)
	}
}

func bound(ctx context.Context, c kubernetes.Interface) int {
	pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0
	}
	n := 0
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" && p.Status.Phase != corev1.PodFailed {
			n++
		}
	}
	return n
}
