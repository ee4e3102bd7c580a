package tenancy

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// gpuResource is the resource GPU pods are packed by.
const gpuResource corev1.ResourceName = "nvidia.com/gpu"

// ScoreWeight is the plugin's weight among the profile's scores: packing
// GPUs outweighs upstream's spreading of CPU and memory (weight 1).
const ScoreWeight = 5

var (
	_ fwk.ScorePlugin    = &Plugin{}
	_ fwk.PreScorePlugin = &Plugin{}
)

// PreScore skips scoring where it would change nothing: a pod without
// GPUs while no pool has a weight.
func (p *Plugin) PreScore(_ context.Context, state fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	if cycleOf(state, pod).requests[gpuResource] > 0 {
		return nil
	}
	for _, np := range p.dir.Pools() {
		if np.Spec.Weight != nil {
			return nil
		}
	}
	return fwk.NewStatus(fwk.Skip)
}

// Score packs GPU pods: a node scores by how full its GPUs would be with
// the pod, so that whole nodes stay free for large jobs. Other pods score
// by their node's pool weight (1 to 100; none counts 1), so that a pod
// that fits several pools goes to the heaviest.
func (p *Plugin) Score(_ context.Context, state fwk.CycleState, pod *corev1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	node := ni.Node()
	if node == nil {
		return 0, nil
	}
	c := cycleOf(state, pod)
	if need := c.requests[gpuResource]; need > 0 {
		total := ni.GetAllocatable().GetScalarResources()[gpuResource] * 1000
		if total <= 0 {
			return 0, nil
		}
		used := ni.GetRequested().GetScalarResources()[gpuResource]*1000 + need
		return min(fwk.MaxNodeScore, fwk.MaxNodeScore*used/total), nil
	}
	if np := p.dir.Pool(p.dir.PoolOf(node.Labels)); np != nil && np.Spec.Weight != nil {
		return min(fwk.MaxNodeScore, int64(*np.Spec.Weight)), nil
	}
	return 1, nil
}

// ScoreExtensions is nil: scores are already within 0 and MaxNodeScore.
func (p *Plugin) ScoreExtensions() fwk.ScoreExtensions { return nil }
