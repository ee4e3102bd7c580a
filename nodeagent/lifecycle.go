package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// postStartTimeout bounds a postStart hook: the kubelet sets none, but a
// hook that never returns would hold the pod's worker for ever.
const postStartTimeout = 2 * time.Minute

// minPreStopStop is the time a container still gets to stop after its
// preStop hook used up the grace period, as the kubelet gives.
const minPreStopStop = 2

// runHook runs a lifecycle hook of container c (running as containerID),
// as the kubelet does: a command in the container, an HTTP GET or a TCP
// connection to the pod (its own IP unless the hook names a host), or a
// sleep. An HTTP hook fails only when nothing answers, whatever the
// status, as the kubelet's. It returns when the hook is done or ctx ends.
func (w *podWorker) runHook(ctx context.Context, pod *v1.Pod, c *v1.Container, containerID string, h *v1.LifecycleHandler, timeout time.Duration) error {
	switch {
	case h.Sleep != nil:
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		case <-ctx.Done():
		}
		return nil
	case h.Exec != nil, h.HTTPGet != nil, h.TCPSocket != nil:
		p := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket}, TimeoutSeconds: int32(max(timeout/time.Second, 1))}
		err := w.runHandler(ctx, pod, c, &runtimeapi.ContainerStatus{Id: containerID}, p)
		var status httpStatusError
		if err != nil && !errors.As(err, &status) {
			return fmt.Errorf("container %s's hook: %w", c.Name, err)
		}
	}
	return nil
}

// preStop runs container name's preStop hook, if it has one, within grace
// seconds, and returns the grace left for stopping it.
func (w *podWorker) preStop(ctx context.Context, pod *v1.Pod, name, containerID string, grace int64) int64 {
	c := containerNamed(pod, name)
	if c == nil || c.Lifecycle == nil || c.Lifecycle.PreStop == nil || grace <= 0 {
		return grace
	}
	began := time.Now()
	hookCtx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
	defer cancel()
	if err := w.runHook(hookCtx, pod, c, containerID, c.Lifecycle.PreStop, time.Duration(grace)*time.Second); err != nil {
		klog.FromContext(ctx).Info("PreStop hook failed", "container", name, "err", err)
	}
	return max(grace-int64(time.Since(began)/time.Second), minPreStopStop)
}

// containerNamed returns pod's container (regular or init) called name.
func containerNamed(pod *v1.Pod, name string) *v1.Container {
	if pod == nil {
		return nil
	}
	for _, list := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}
