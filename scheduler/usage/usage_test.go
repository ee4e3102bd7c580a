package usage

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const gpu corev1.ResourceName = "nvidia.com/gpu"

func TestTrackerCountsEachPodOnce(t *testing.T) {
	t.Parallel()
	tr := NewTracker()
	a := Key{"a", "gpu"}
	two := FromList(corev1.ResourceList{gpu: resource.MustParse("2")})
	tr.SetPod("p1", a, two)
	tr.SetPod("p1", a, two) // assumed, then seen bound
	tr.SetPod("p2", Key{"b", "gpu"}, two)
	if got := tr.Used(a, gpu); got != 2000 {
		t.Errorf("a uses %d milli-GPUs, want 2000", got)
	}
	if got := tr.PoolUsed("gpu", gpu); got != 4000 {
		t.Errorf("the pool has %d milli-GPUs in use, want 4000", got)
	}
	tr.SetNode("n1", FromList(corev1.ResourceList{gpu: resource.MustParse("8")}))
	if got := tr.DominantShare("a"); got != 0.25 {
		t.Errorf("a's dominant share %v, want 0.25", got)
	}
	tr.RemovePod("p1")
	tr.RemovePod("p1")
	if got := tr.Used(a, gpu); got != 0 {
		t.Errorf("a uses %d after its pod left", got)
	}
	if tr.HasPod("p1") || !tr.HasPod("p2") {
		t.Error("the wrong pods are counted")
	}
	tr.RemoveNode("n1")
	if got := tr.DominantShare("b"); got != 0 {
		t.Errorf("a share of nothing: %v", got)
	}
}
