package nodeagent

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemovePods stops and removes, at once, every pod sandbox node's agent
// made in the container runtime at endpoint, and returns how many. It is
// for a node that will never come back (its data deleted): nothing would
// adopt them.
func RemovePods(ctx context.Context, endpoint, node string) (int, error) {
	rt, err := criRuntime(ctx, endpoint)
	if err != nil {
		return 0, err
	}
	sandboxes, err := rt.Service.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{labelNode: node}})
	if err != nil {
		return 0, fmt.Errorf("listing node %s's pod sandboxes at %s: %w", node, endpoint, err)
	}
	for _, s := range sandboxes {
		removeSandbox(ctx, rt.Service, s.Id, 0)
	}
	left, err := rt.Service.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{labelNode: node}})
	if err != nil {
		return 0, fmt.Errorf("listing node %s's pod sandboxes at %s: %w", node, endpoint, err)
	}
	if len(left) != 0 {
		return len(sandboxes) - len(left), fmt.Errorf("%d of node %s's pod sandboxes at %s could not be removed", len(left), node, endpoint)
	}
	return len(sandboxes), nil
}
