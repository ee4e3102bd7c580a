package nodeagent

import (
	"context"
	"encoding/json"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

func parseFieldSelector(s string) (fields.Selector, error) { return fields.ParseSelector(s) }

// computeStatus is the pod's status as the runtime shows it, in the
// kubelet's terms.
func (w *podWorker) computeStatus(pod *v1.Pod, obs *observed, terminating bool) v1.PodStatus {
	old := pod.Status
	st := v1.PodStatus{
		HostIP:    w.agent.cfg.NodeIP,
		HostIPs:   []v1.HostIP{{IP: w.agent.cfg.NodeIP}},
		PodIPs:    w.ips(pod),
		StartTime: old.StartTime,
		QOSClass:  old.QOSClass,
	}
	if len(st.PodIPs) > 0 {
		st.PodIP = st.PodIPs[0].IP
	}
	if st.StartTime == nil {
		now := metav1.Now()
		st.StartTime = &now
	}
	sandboxReady := obs.sandbox != nil && obs.sandbox.State == runtimeapi.PodSandboxState_SANDBOX_READY

	initDone, initFailed := true, false
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := w.containerStatus(c, obs, false)
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
		case cs.State.Terminated != nil && pod.Spec.RestartPolicy == v1.RestartPolicyNever:
			initDone, initFailed = false, true
		default:
			initDone = false
		}
	}
	var running, waiting, stopped, succeeded int
	allReady := true
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := w.containerStatus(c, obs, !initDone)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			allReady = false
		}
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			stopped++
		default:
			waiting++
		}
	}
	switch {
	case initFailed:
		st.Phase = v1.PodFailed
	case !initDone, waiting > 0:
		st.Phase = v1.PodPending
	case running > 0:
		st.Phase = v1.PodRunning
	case stopped > 0 && pod.Spec.RestartPolicy == v1.RestartPolicyAlways && !terminating:
		st.Phase = v1.PodRunning
	case stopped > 0 && stopped == succeeded:
		st.Phase = v1.PodSucceeded
	case stopped > 0 && (pod.Spec.RestartPolicy == v1.RestartPolicyNever || terminating):
		st.Phase = v1.PodFailed
	case stopped > 0:
		st.Phase = v1.PodRunning
	default:
		st.Phase = v1.PodPending
	}
	if w.admissionFailure != "" {
		reason := w.admissionReason
		if reason == "" {
			reason = "UnexpectedAdmissionError"
		}
		st.Phase, st.Reason, st.Message = v1.PodFailed, reason, w.admissionFailure
	}
	if old.Phase == v1.PodSucceeded || old.Phase == v1.PodFailed {
		st.Reason, st.Message = old.Reason, old.Message
		st.Phase = old.Phase // terminal phases never change back
	}
	terminal := st.Phase == v1.PodSucceeded || st.Phase == v1.PodFailed
	ready := allReady && !terminal && !terminating

	cond := func(t v1.PodConditionType, ok bool, reason string) v1.PodCondition {
		c := v1.PodCondition{Type: t, Status: v1.ConditionFalse, Reason: reason}
		if ok {
			c.Status, c.Reason = v1.ConditionTrue, ""
		}
		return c
	}
	notReadyReason := "ContainersNotReady"
	if terminal {
		notReadyReason = "PodCompleted"
	}
	ours := []v1.PodCondition{
		cond(v1.PodReadyToStartContainers, sandboxReady, ""),
		cond(v1.PodInitialized, initDone || len(pod.Spec.InitContainers) == 0, "ContainersNotInitialized"),
		cond(v1.ContainersReady, ready, notReadyReason),
		cond(v1.PodReady, ready, notReadyReason),
	}
	if terminal {
		ours[1] = cond(v1.PodInitialized, !initFailed, "ContainersNotInitialized")
	}
	now := metav1.Now()
	for _, c := range old.Conditions {
		mine := false
		for _, o := range ours {
			mine = mine || o.Type == c.Type
		}
		if !mine {
			st.Conditions = append(st.Conditions, c)
		}
	}
	for _, c := range ours {
		c.LastTransitionTime = now
		for _, o := range old.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		st.Conditions = append(st.Conditions, c)
	}
	return st
}

func (w *podWorker) containerStatus(c *v1.Container, obs *observed, initializing bool) v1.ContainerStatus {
	cs := v1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image}
	latest, prev := obs.latest(c.Name), obs.previous(c.Name)
	if latest == nil {
		reason := "ContainerCreating"
		if initializing {
			reason = "PodInitializing"
		}
		waiting := &v1.ContainerStateWaiting{Reason: reason}
		if wt := w.waiting[c.Name]; wt != nil {
			waiting = wt
		}
		cs.State.Waiting = waiting
		return cs
	}
	cs.ContainerID = w.agent.runtimeScheme() + "://" + latest.Id
	cs.RestartCount = int32(latest.GetMetadata().GetAttempt())
	if latest.ImageRef != "" {
		cs.ImageID = latest.ImageRef
	}
	if prev != nil && prev.State == runtimeapi.ContainerState_CONTAINER_EXITED {
		cs.LastTerminationState.Terminated = terminated(prev, w.agent.runtimeScheme())
	}
	switch latest.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		cs.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(time.Unix(0, latest.StartedAt))}
		ps := w.probes[c.Name]
		started := c.StartupProbe == nil || (ps != nil && ps.containerID == latest.Id && ps.started)
		cs.Started = &started
		cs.Ready = started && (c.ReadinessProbe == nil || (ps != nil && ps.containerID == latest.Id && ps.ready))
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		if wt := w.waiting[c.Name]; wt != nil && wt.Reason == "CrashLoopBackOff" {
			cs.State.Waiting = wt
			cs.LastTerminationState.Terminated = terminated(latest, w.agent.runtimeScheme())
		} else {
			cs.State.Terminated = terminated(latest, w.agent.runtimeScheme())
		}
		started := false
		cs.Started = &started
	default:
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	return cs
}

func terminated(s *runtimeapi.ContainerStatus, scheme string) *v1.ContainerStateTerminated {
	reason := s.Reason
	if reason == "" {
		reason = "Completed"
		if s.ExitCode != 0 {
			reason = "Error"
		}
	}
	return &v1.ContainerStateTerminated{
		ExitCode: s.ExitCode, Reason: reason, Message: s.Message,
		StartedAt: metav1.NewTime(time.Unix(0, s.StartedAt)), FinishedAt: metav1.NewTime(time.Unix(0, s.FinishedAt)),
		ContainerID: scheme + "://" + s.Id,
	}
}

// writeStatus sends the pod's status to its own tenant when it differs
// from what the API has.
func (w *podWorker) writeStatus(ctx context.Context, pod *v1.Pod, st v1.PodStatus) {
	want, err := json.Marshal(st)
	if err != nil {
		return
	}
	if have, _ := json.Marshal(pod.Status); string(have) == string(want) {
		return
	}
	if w.lastStatus != nil {
		if last, _ := json.Marshal(w.lastStatus); string(last) == string(want) && pod.ResourceVersion == w.lastRV {
			return
		}
	}
	body, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return
	}
	res := w.agent.tenants.Patch(types.MergePatchType).AbsPath(podPath(w.tenant, pod.Namespace, pod.Name, "status")).Body(body).Do(ctx)
	if err := res.Error(); err != nil {
		if !apierrors.IsNotFound(err) {
			klog.FromContext(ctx).Error(err, "Writing pod status")
		}
		return
	}
	w.lastStatus = &st
	w.lastRV = pod.ResourceVersion
}
