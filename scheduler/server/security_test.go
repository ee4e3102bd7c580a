package server_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
)

// A pool's Pod Security level keeps pods below it off the pool's nodes,
// with a reason that names the pod's own failing fields and no other
// tenant; a pod that meets it lands. A pool requiring the gvisor sandbox
// takes pods only on nodes announcing runsc: without one its pods wait,
// saying so, and land once a node that has it joins the pool.
func TestIntegrationPoolSecurityLevelAndSandbox(t *testing.T) {
	e := start(t)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: strict}, spec: {mode: shared, podSecurity: restricted}}`)
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: sandboxed}, spec: {mode: shared, sandbox: gvisor}}`)
	e.node(t, "strict-1", "strict", 0)
	e.node(t, "sandboxed-1", "sandboxed", 0)
	a := e.tenant(t, "secpool-a")
	e.runScheduler(t)

	createPod(t, a, "loose", podSpec{pool: "strict"})
	msg := waitUnschedulable(t, a, "loose", `pool strict requires PodSecurity "restricted:latest"`)
	if !strings.Contains(msg, `allowPrivilegeEscalation != false (container "c"`) {
		t.Errorf("the reason does not say what the pod lacks: %q", msg)
	}
	restricted := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "tight"},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: new(false),
			NodeSelector:                 map[string]string{schedulingv1alpha1.PoolLabel: "strict"},
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: new(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "c", Image: "busybox", SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: new(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}}},
		},
	}
	if _, err := a.CoreV1().Pods("default").Create(context.Background(), restricted, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := waitBound(t, a, "tight"); p.Spec.NodeName != "strict-1" {
		t.Errorf("the restricted pod is on %s, want strict-1", p.Spec.NodeName)
	}

	// Naming the node does not get around the pool's level.
	direct := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "direct"}, Spec: corev1.PodSpec{
		AutomountServiceAccountToken: new(false), NodeName: "strict-1",
		Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
	}}
	_, err := a.CoreV1().Pods("default").Create(context.Background(), direct, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `spec.nodeName: Forbidden: node "strict-1" is in pool strict, which requires PodSecurity "restricted:latest"`) {
		t.Errorf("a pod below the pool's level naming its node: %v, want 422 naming spec.nodeName", err)
	}

	createPod(t, a, "boxed", podSpec{pool: "sandboxed"})
	waitUnschedulable(t, a, "boxed", "node(s) without the gvisor sandbox (runtime handler runsc) pool sandboxed requires")
	e.nodeWithHandlers(t, "sandboxed-2", "sandboxed", 0, []string{"runsc"})
	if p := waitBound(t, a, "boxed"); p.Spec.NodeName != "sandboxed-2" {
		t.Errorf("the sandboxed pool's pod is on %s, want sandboxed-2, the node with gVisor", p.Spec.NodeName)
	}
}
