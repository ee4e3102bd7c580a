package capacity

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/tenant"
)

func node(name, pool string, gpus, allocatableGPUs int64, isReady bool) *corev1.Node {
	status := corev1.ConditionFalse
	if isReady {
		status = corev1.ConditionTrue
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{schedulingv1alpha1.PoolLabel: pool}},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{GPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
			Allocatable: corev1.ResourceList{GPU: *resource.NewQuantity(allocatableGPUs, resource.DecimalSI)},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}},
		},
	}
}

func gpuPod(tenantName, name, node string, gpus int64, phase corev1.PodPhase, conditions ...corev1.PodCondition) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{tenant.Annotation: tenantName, schedulingv1alpha1.PoolAnnotation: "lies"}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{GPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
			Limits:   corev1.ResourceList{GPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
		}}}},
		Status: corev1.PodStatus{Phase: phase, Conditions: conditions},
	}
}

func TestCompute(t *testing.T) {
	nodePools := []*schedulingv1alpha1.NodePool{
		{ObjectMeta: metav1.ObjectMeta{Name: "gpu-a"}, Spec: schedulingv1alpha1.NodePoolSpec{Mode: schedulingv1alpha1.Dedicated, Tenants: []string{"a"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shared"}, Spec: schedulingv1alpha1.NodePoolSpec{Mode: schedulingv1alpha1.Shared}},
	}
	nodes := []*corev1.Node{node("a1", "gpu-a", 8, 7, true), node("s1", "shared", 8, 8, true), node("s2", "shared", 8, 8, false), node("free", "", 4, 4, true)}
	quotas := []*schedulingv1alpha1.TenantQuota{{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: schedulingv1alpha1.TenantQuotaSpec{Pools: []schedulingv1alpha1.PoolQuota{
		{Name: "shared", Resources: []schedulingv1alpha1.ResourceQuota{{Name: GPU, NominalQuota: resource.MustParse("2")}}},
	}}}}
	unschedulable := func(msg string) corev1.PodCondition {
		return corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: msg}
	}
	pods := []*corev1.Pod{
		gpuPod("a", "train", "a1", 4, corev1.PodRunning),
		gpuPod("a", "done", "a1", 4, corev1.PodSucceeded), // finished: holds nothing
		gpuPod("b", "x", "s1", 3, corev1.PodRunning),
		gpuPod("c", "x", "s2", 1, corev1.PodPending),
		gpuPod("b", "wait1", "", 2, corev1.PodPending, unschedulable("0/4 nodes are available: 4 tenant quota nvidia.com/gpu exhausted in pool shared.")),
		gpuPod("b", "wait2", "", 1, corev1.PodPending, unschedulable("0/4 nodes are available: 1 node(s) in a pool this tenant may not use.")),
		gpuPod("c", "new", "", 1, corev1.PodPending),
	}
	r := Compute(nodes, pods, nodePools, quotas)

	a := r.Pool("gpu-a")
	if a == nil || a.Nodes != 1 || a.Mode != schedulingv1alpha1.Dedicated || a.UnhealthyGPUs() != 1 {
		t.Fatalf("pool gpu-a: %+v", a)
	}
	if q := a.Requested[GPU]; q.Value() != 4 {
		t.Errorf("gpu-a requested %s, want 4 (the finished pod holds nothing)", q.String())
	}
	shared := r.Pool("shared")
	if shared.Nodes != 2 || shared.ReadyNodes != 1 {
		t.Errorf("shared: %d nodes, %d ready; want 2, 1", shared.Nodes, shared.ReadyNodes)
	}
	if q := shared.Allocatable[GPU]; q.Value() != 16 {
		t.Errorf("shared allocatable %s, want 16", q.String())
	}
	if none := r.Pool(NoPool); none == nil || none.Nodes != 1 {
		t.Errorf("nodes in no pool: %+v", none)
	}
	var b *TenantPool
	for i := range r.TenantPools {
		if r.TenantPools[i].Tenant == "b" && r.TenantPools[i].Pool == "shared" {
			b = &r.TenantPools[i]
		}
	}
	if b == nil {
		t.Fatalf("no row for b in shared: %+v", r.TenantPools)
	}
	used, nominal, borrowed := b.Requested[GPU], b.Nominal[GPU], b.Borrowed[GPU]
	if used.Value() != 3 || nominal.Value() != 2 || borrowed.Value() != 1 || b.Pods != 1 {
		t.Errorf("b in shared: used %s nominal %s borrowed %s pods %d; want 3, 2, 1, 1", used.String(), nominal.String(), borrowed.String(), b.Pods)
	}
	want := map[string]int{"b/" + ReasonQuota: 1, "b/" + ReasonFenced: 1, "c/" + ReasonNotTried: 1}
	if len(r.Pending) != len(want) {
		t.Errorf("pending %+v, want %v", r.Pending, want)
	}
	for _, p := range r.Pending {
		if want[p.Tenant+"/"+p.Reason] != p.Pods {
			t.Errorf("pending %s/%s: %d pods, want %d", p.Tenant, p.Reason, p.Pods, want[p.Tenant+"/"+p.Reason])
		}
	}
}
