package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/client/pools"
	"github.com/kplex/kplex/nodeagent/runtime/simulated"
	"github.com/kplex/kplex/tenant"
)

// Labels the agent puts on sandboxes and containers: the runtime's record of
// which pod of which tenant they belong to, read back after a restart.
const (
	labelPodUID       = "io.kubernetes.pod.uid"
	labelPodName      = "io.kubernetes.pod.name"
	labelPodNamespace = "io.kubernetes.pod.namespace"
	labelContainer    = "io.kubernetes.container.name"
	labelTenant       = "kplex.io/tenant"
	labelNode         = "kplex.io/node"
	labelInit         = "kplex.io/init-container"
)

// podWorker runs one pod: it compares what the runtime has with what the
// pod asks for, acts, and reports the pod's status to its tenant.
type podWorker struct {
	agent  *Agent
	tenant string
	uid    types.UID

	mu   sync.Mutex
	pod  *v1.Pod // latest seen; nil once the pod is gone from the API
	gone bool
	wake chan struct{}

	probes  map[string]*probeState // by container name
	waiting map[string]*v1.ContainerStateWaiting
	// admissionFailure, once set, fails the pod: it cannot run here, for
	// admissionReason (UnexpectedAdmissionError when empty).
	admissionFailure, admissionReason string
	lastStatus                        *v1.PodStatus
	// podIPs are the IPs of sandbox ipsOf, read from the runtime.
	podIPs  []string
	ipsOf   string
	lastRV  string
	deleted bool
	// volumesRead is when the pod's API-backed volumes were last read.
	volumesRead time.Time
}

func newPodWorker(a *Agent, tenantName string, pod *v1.Pod) *podWorker {
	return &podWorker{
		agent: a, tenant: tenantName, uid: pod.UID, pod: pod,
		wake:    make(chan struct{}, 1),
		probes:  map[string]*probeState{},
		waiting: map[string]*v1.ContainerStateWaiting{},
	}
}

func (w *podWorker) update(pod *v1.Pod) {
	w.mu.Lock()
	if pod == nil {
		w.gone = true
	} else {
		w.pod = pod
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *podWorker) latest() (*v1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.gone
}

func (w *podWorker) run(ctx context.Context) {
	pod, _ := w.latest()
	logger := klog.FromContext(ctx).WithValues("tenant", w.tenant, "pod", klog.KObj(pod), "uid", w.uid)
	ctx = klog.NewContext(ctx, logger)
	for {
		pod, gone := w.latest()
		idle, done := w.sync(ctx, pod, gone)
		if done {
			w.agent.workerDone(w.uid)
			return
		}
		var tick <-chan time.Time
		if !idle {
			tick = time.After(w.agent.cfg.SyncFrequency)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-tick:
		}
	}
}

// instance is one container instance the runtime has for the pod.
type instance struct {
	status *runtimeapi.ContainerStatus
}

func (i instance) attempt() uint32 { return i.status.GetMetadata().GetAttempt() }

// observed is the runtime's view of the pod.
type observed struct {
	sandbox    *runtimeapi.PodSandbox
	containers map[string][]instance // by container name, newest first
}

func (o *observed) latest(name string) *runtimeapi.ContainerStatus {
	if l := o.containers[name]; len(l) > 0 {
		return l[0].status
	}
	return nil
}

func (o *observed) previous(name string) *runtimeapi.ContainerStatus {
	if l := o.containers[name]; len(l) > 1 {
		return l[1].status
	}
	return nil
}

func (w *podWorker) observe(ctx context.Context) (*observed, error) {
	rt := w.agent.runtime.Service
	sel := map[string]string{labelPodUID: string(w.uid)}
	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing sandboxes: %w", err)
	}
	o := &observed{containers: map[string][]instance{}}
	sort.Slice(sandboxes, func(i, j int) bool { return sandboxes[i].CreatedAt > sandboxes[j].CreatedAt })
	if len(sandboxes) > 0 {
		o.sandbox = sandboxes[0]
		for _, old := range sandboxes[1:] {
			w.agent.removeSandbox(ctx, old.Id, 0)
		}
	}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	sort.Slice(containers, func(i, j int) bool {
		if a, b := containers[i].Metadata.GetAttempt(), containers[j].Metadata.GetAttempt(); a != b {
			return a > b
		}
		return containers[i].CreatedAt > containers[j].CreatedAt
	})
	for _, c := range containers {
		name := c.Labels[labelContainer]
		if len(o.containers[name]) >= 2 {
			// Older instances tell nothing the status shows: clean them up.
			_ = rt.RemoveContainer(ctx, c.Id)
			continue
		}
		st, err := rt.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			continue
		}
		o.containers[name] = append(o.containers[name], instance{status: st.GetStatus()})
	}
	return o, nil
}

// sync does one round for the pod. idle says nothing will change unless the
// pod does; done that the worker can go.
func (w *podWorker) sync(ctx context.Context, pod *v1.Pod, gone bool) (idle, done bool) {
	logger := klog.FromContext(ctx)
	if gone {
		// The pod left the API (deleted, or bound elsewhere by a restart of
		// history): nothing of it may keep running here.
		w.killPod(ctx, nil, 0)
		w.cleanup(ctx, pod)
		return true, true
	}
	obs, err := w.observe(ctx)
	if err != nil {
		logger.Error(err, "Reading the runtime")
		return false, false
	}
	if pod.DeletionTimestamp != nil {
		grace := int64(v1.DefaultTerminationGracePeriodSeconds)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = *pod.DeletionGracePeriodSeconds
		}
		w.killPod(ctx, pod, grace)
		obs, _ = w.observe(ctx)
		if obs != nil {
			w.writeStatus(ctx, pod, w.computeStatus(pod, obs, true))
		}
		if !w.deleted {
			// The kubelet's last word: the containers are gone, the API may
			// forget the pod.
			err := w.agent.tenants.Delete().AbsPath(podPath(w.tenant, pod.Namespace, pod.Name)).
				Body(&metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &pod.UID}}).
				Do(ctx).Error()
			if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				w.deleted = true
			} else {
				logger.Error(err, "Deleting terminated pod")
			}
		}
		return true, false
	}
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		// Terminal: its containers are done; stop what is left and keep the
		// logs until the pod is deleted.
		if obs.sandbox != nil && obs.sandbox.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			w.killPod(ctx, nil, 0)
		}
		return true, false
	}

	if reason, msg := w.agent.refuseHostNamespaces(ctx, w.tenant, pod); msg != "" && obs.sandbox == nil {
		w.admissionReason, w.admissionFailure = reason, msg
		w.writeStatus(ctx, pod, w.computeStatus(pod, obs, false))
		return true, false
	}
	if obs.sandbox == nil {
		if reason, msg := w.agent.security.refusePod(ctx, pod, w.namespaces(pod)); msg != "" {
			logger.Info("Pod refused for its security context", "reason", reason, "message", msg)
			w.admissionReason, w.admissionFailure = reason, msg
			w.writeStatus(ctx, pod, w.computeStatus(pod, obs, false))
			return true, false
		}
	}
	if w.needsNetwork(pod) && w.agent.net.cni && (obs.sandbox == nil || obs.sandbox.State != runtimeapi.PodSandboxState_SANDBOX_READY) {
		if err := w.agent.net.notReady(); err != nil {
			// As the kubelet: the pod waits for the network, it never
			// falls back to the node's.
			for _, c := range append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
				w.waiting[c.Name] = &v1.ContainerStateWaiting{Reason: "NetworkNotReady", Message: "network is not ready: " + err.Error()}
			}
			w.writeStatus(ctx, pod, w.computeStatus(pod, obs, false))
			return false, false
		}
		for name, wt := range w.waiting {
			if wt.Reason == "NetworkNotReady" {
				delete(w.waiting, name)
			}
		}
	}
	sandboxID, err := w.ensureSandbox(ctx, pod, obs)
	if err != nil {
		logger.Error(err, "Creating pod sandbox")
		w.writeStatus(ctx, pod, w.computeStatus(pod, obs, false))
		return false, false
	}
	if sandboxID != obs.sandbox.GetId() {
		if obs, err = w.observe(ctx); err != nil {
			return false, false
		}
	}
	w.readPodIPs(ctx, pod, sandboxID)
	changed := w.syncContainers(ctx, pod, obs, sandboxID)
	if changed {
		if obs, err = w.observe(ctx); err != nil {
			return false, false
		}
	}
	w.refreshVolumes(ctx, pod)
	st := w.computeStatus(pod, obs, false)
	w.writeStatus(ctx, pod, st)
	if st.Phase == v1.PodSucceeded || st.Phase == v1.PodFailed {
		w.killPod(ctx, nil, 0)
		if w.agent.devices != nil {
			// A finished pod's devices are free for the next.
			w.agent.devices.Release(string(w.uid))
		}
		return true, false
	}
	return false, false
}

// ensureSandbox returns the pod's ready sandbox, creating one (and killing
// the containers of a dead one) when needed.
func (w *podWorker) ensureSandbox(ctx context.Context, pod *v1.Pod, obs *observed) (string, error) {
	if s := obs.sandbox; s != nil && s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
		return s.Id, nil
	}
	var attempt uint32
	if s := obs.sandbox; s != nil {
		attempt = s.Metadata.GetAttempt() + 1
		w.agent.removeSandbox(ctx, s.Id, 0)
	}
	cfg := w.sandboxConfig(pod, attempt)
	dnsConfig, err := w.dnsConfig(pod)
	if err != nil {
		return "", fmt.Errorf("the pod's DNS settings: %w", err)
	}
	cfg.DnsConfig = dnsConfig
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", fmt.Errorf("creating the pod's log directory: %w", err)
	}
	handler, err := w.runtimeHandler(ctx, pod)
	if err != nil {
		return "", err
	}
	id, err := w.agent.runtime.Service.RunPodSandbox(ctx, cfg, handler)
	if err != nil {
		return "", err
	}
	return id, nil
}

// runtimeHandler is the CRI handler the pod's sandbox runs under: the
// one its node pool requires (gVisor, on shared nodes that have it, by
// default), else that of the pod's RuntimeClass, read from the pod's
// tenant; "" is the runtime's default. The pool's choice is enforced here,
// where the sandbox is made, whatever the pod or its tenant asks.
func (w *podWorker) runtimeHandler(ctx context.Context, pod *v1.Pod) (string, error) {
	requested, err := w.requestedHandler(ctx, pod)
	if err != nil {
		return "", err
	}
	if w.agent.pools == nil {
		return requested, nil // an agent without the management plane's pools (tests)
	}
	node, pool, err := w.agent.nodePool(ctx)
	if err != nil {
		return "", err
	}
	// The node announces what this agent's flags say, whatever its stored
	// status does.
	node.Status.RuntimeHandlers = w.agent.node.runtimeHandlers()
	return pools.RuntimeHandlerFor(w.tenant, pool, node, requested)
}

// requestedHandler is the CRI handler of the pod's RuntimeClass; "" when
// it names none. RuntimeClasses are the management plane's, as the nodes'
// runtimes are (upstream's RuntimeClass admission reads root's too): a
// tenant names one, it cannot make one.
func (w *podWorker) requestedHandler(ctx context.Context, pod *v1.Pod) (string, error) {
	if pod.Spec.RuntimeClassName == nil || *pod.Spec.RuntimeClassName == "" {
		return "", nil
	}
	rc, err := w.agent.root.NodeV1().RuntimeClasses().Get(ctx, *pod.Spec.RuntimeClassName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("RuntimeClass %q: %w", *pod.Spec.RuntimeClassName, err)
	}
	return rc.Handler, nil
}

func (w *podWorker) logDir(pod *v1.Pod) string {
	return filepath.Join(w.agent.cfg.RootDir, "logs", fmt.Sprintf("%s_%s_%s_%s", w.tenant, pod.Namespace, pod.Name, pod.UID))
}

func (w *podWorker) labels(pod *v1.Pod) map[string]string {
	return map[string]string{
		labelPodUID: string(pod.UID), labelPodName: pod.Name, labelPodNamespace: pod.Namespace,
		labelTenant: w.tenant, labelNode: w.agent.name,
	}
}

// namespaces are the pod's namespaces, its sandbox's and its containers'.
func (w *podWorker) namespaces(pod *v1.Pod) *runtimeapi.NamespaceOption {
	return namespaceOptions(pod, w.agent.runtime.HostNetworkOnly)
}

func (w *podWorker) sandboxConfig(pod *v1.Pod, attempt uint32) *runtimeapi.PodSandboxConfig {
	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	if w.namespaces(pod).Network == runtimeapi.NamespaceMode_NODE {
		hostname = ""
	}
	return &runtimeapi.PodSandboxConfig{
		PortMappings: portMappings(pod),
		Metadata: &runtimeapi.PodSandboxMetadata{
			// The runtime keys sandboxes by name and namespace: two tenants'
			// default/web-0 must not meet there.
			Name: pod.Name, Namespace: w.tenant + "~" + pod.Namespace, Uid: string(pod.UID), Attempt: attempt,
		},
		Hostname:     hostname,
		LogDirectory: w.logDir(pod),
		Labels:       w.labels(pod),
		Annotations:  map[string]string{},
		Linux:        sandboxLinuxConfig(pod, w.namespaces(pod), w.agent.security.seLinux),
	}
}

// syncContainers starts what should run: init containers one by one, then
// the app containers, restarting per restartPolicy with back-off, and kills
// containers whose liveness probe fails. It reports whether it acted.
func (w *podWorker) syncContainers(ctx context.Context, pod *v1.Pod, obs *observed, sandboxID string) bool {
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		st := obs.latest(c.Name)
		switch {
		case st == nil:
			return w.start(ctx, pod, c, sandboxID, 0, true)
		case st.State == runtimeapi.ContainerState_CONTAINER_RUNNING:
			return false
		case st.State == runtimeapi.ContainerState_CONTAINER_CREATED:
			// A start failed half way: remove it and start again.
			_ = w.agent.runtime.Service.RemoveContainer(ctx, st.Id)
			return true
		case st.ExitCode == 0:
			continue
		case pod.Spec.RestartPolicy == v1.RestartPolicyNever:
			return false // the pod has failed
		default:
			return w.restart(ctx, pod, c, sandboxID, st, true)
		}
	}
	acted := false
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		st := obs.latest(c.Name)
		switch {
		case st == nil:
			acted = w.start(ctx, pod, c, sandboxID, 0, false) || acted
		case st.State == runtimeapi.ContainerState_CONTAINER_RUNNING:
			acted = w.probe(ctx, pod, c, st) || acted
		case st.State == runtimeapi.ContainerState_CONTAINER_CREATED:
			// Created but not started: a previous start failed half way.
			_ = w.agent.runtime.Service.RemoveContainer(ctx, st.Id)
			acted = true
		case shouldRestart(pod.Spec.RestartPolicy, st.ExitCode):
			acted = w.restart(ctx, pod, c, sandboxID, st, false) || acted
		}
	}
	return acted
}

func shouldRestart(policy v1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

func backoffKey(uid types.UID, container string) string { return string(uid) + "/" + container }

// restart starts the next instance of an exited container unless it is
// backing off, as the kubelet does: 10 s doubling to 5 min, forgotten after
// a run of 10 minutes.
func (w *podWorker) restart(ctx context.Context, pod *v1.Pod, c *v1.Container, sandboxID string, last *runtimeapi.ContainerStatus, init bool) bool {
	key := backoffKey(pod.UID, c.Name)
	finished := time.Unix(0, last.FinishedAt)
	if time.Unix(0, last.FinishedAt).Sub(time.Unix(0, last.StartedAt)) > 10*time.Minute {
		w.agent.backoff.Reset(key)
	}
	if w.agent.backoff.IsInBackOffSince(key, finished) {
		w.waiting[c.Name] = &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", w.agent.backoff.Get(key), c.Name, pod.Name)}
		return false
	}
	w.agent.backoff.Next(key, finished)
	return w.start(ctx, pod, c, sandboxID, last.GetMetadata().GetAttempt()+1, init)
}

// start creates and starts one container instance.
func (w *podWorker) start(ctx context.Context, pod *v1.Pod, c *v1.Container, sandboxID string, attempt uint32, init bool) bool {
	logger := klog.FromContext(ctx).WithValues("container", c.Name)
	rt := w.agent.runtime
	if err := w.ensureImage(ctx, pod, c); err != nil {
		logger.Error(err, "Image not available")
		w.waiting[c.Name] = &v1.ContainerStateWaiting{Reason: "ErrImagePull", Message: err.Error()}
		return false
	}
	cfg, err := w.containerConfig(ctx, pod, c, attempt, init)
	var admission admissionError
	if errors.As(err, &admission) {
		logger.Error(err, "Pod cannot run on this node")
		w.admissionFailure = fmt.Sprintf("Allocate failed due to %v, which is unexpected", admission.error)
		return true
	}
	if err != nil {
		logger.Error(err, "Preparing container")
		w.waiting[c.Name] = &v1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: err.Error()}
		return false
	}
	sandboxCfg := w.sandboxConfig(pod, 0)
	id, err := rt.Service.CreateContainer(ctx, sandboxID, cfg, sandboxCfg)
	if err != nil {
		logger.Error(err, "Creating container")
		w.waiting[c.Name] = &v1.ContainerStateWaiting{Reason: "CreateContainerError", Message: err.Error()}
		return false
	}
	if err := rt.Service.StartContainer(ctx, id); err != nil {
		logger.Error(err, "Starting container")
		w.waiting[c.Name] = &v1.ContainerStateWaiting{Reason: "RunContainerError", Message: err.Error()}
		return true
	}
	delete(w.waiting, c.Name)
	delete(w.probes, c.Name)
	logger.V(2).Info("Started container", "id", id, "attempt", attempt)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		// As the kubelet: the container counts as started once its hook
		// is done; a failed hook kills it, and restartPolicy decides.
		hookCtx, cancel := context.WithTimeout(ctx, postStartTimeout)
		err := w.runHook(hookCtx, pod, c, id, c.Lifecycle.PostStart, postStartTimeout)
		cancel()
		if err != nil {
			logger.Info("PostStart hook failed, killing the container", "err", err)
			_ = rt.Service.StopContainer(ctx, id, 0)
		}
	}
	return true
}

func (w *podWorker) ensureImage(ctx context.Context, pod *v1.Pod, c *v1.Container) error {
	images := w.agent.runtime.Images
	spec := &runtimeapi.ImageSpec{Image: c.Image}
	st, err := images.ImageStatus(ctx, spec, false)
	if err != nil {
		return fmt.Errorf("image %s: %w", c.Image, err)
	}
	present := st.GetImage() != nil
	if present && c.ImagePullPolicy != v1.PullAlways {
		return nil
	}
	if c.ImagePullPolicy == v1.PullNever && !present {
		return fmt.Errorf("image %s is not present and imagePullPolicy is Never", c.Image)
	}
	if _, err := images.PullImage(ctx, spec, nil, nil); err != nil {
		if present {
			// No registry answers (air-gapped nodes): run the copy there is.
			klog.FromContext(ctx).Info("Pull failed; using the image present on the node", "image", c.Image, "err", err)
			return nil
		}
		return fmt.Errorf("pulling image %s: %w", c.Image, err)
	}
	return nil
}

// killPod stops every running container of the pod with grace seconds,
// after its preStop hook (pod, when given, has the hooks), then the
// sandbox.
func (w *podWorker) killPod(ctx context.Context, pod *v1.Pod, grace int64) {
	rt := w.agent.runtime.Service
	sel := map[string]string{labelPodUID: string(w.uid)}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return
	}
	var wg sync.WaitGroup
	for _, c := range containers {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			grace := w.preStop(ctx, pod, c.Labels[labelContainer], c.Id, grace)
			if err := rt.StopContainer(ctx, c.Id, grace); err != nil {
				klog.FromContext(ctx).Error(err, "Stopping container", "id", c.Id)
			}
		}()
	}
	wg.Wait()
	sandboxes, _ := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	for _, s := range sandboxes {
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			_ = rt.StopPodSandbox(ctx, s.Id)
		}
	}
}

// cleanup removes what the runtime and the agent keep of a pod.
func (w *podWorker) cleanup(ctx context.Context, pod *v1.Pod) {
	rt := w.agent.runtime.Service
	sandboxes, _ := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{labelPodUID: string(w.uid)}})
	for _, s := range sandboxes {
		w.agent.removeSandbox(ctx, s.Id, 0)
	}
	if w.agent.devices != nil {
		w.agent.devices.Release(string(w.uid))
	}
	for _, c := range append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		w.agent.backoff.Reset(backoffKey(w.uid, c.Name))
	}
	removeVolumes(w.agent.cfg.RootDir, w.uid)
	removeAll(w.logDir(pod))
}

func podPath(tenantName, namespace, name string, sub ...string) string {
	p := tenant.Path(tenantName) + "/api/v1/namespaces/" + namespace + "/pods/" + name
	for _, s := range sub {
		p += "/" + s
	}
	return p
}

// simulatedAnnotations are copied from the pod to its containers for the
// simulated runtime, with the pod's restart policy.
func simulatedAnnotations(pod *v1.Pod) map[string]string {
	out := map[string]string{simulated.RestartPolicyAnnotation: string(pod.Spec.RestartPolicy)}
	for _, k := range []string{simulated.ExitAfterAnnotation, simulated.ExitCodeAnnotation, simulated.CPUAnnotation, simulated.MemoryAnnotation} {
		if v, ok := pod.Annotations[k]; ok {
			out[k] = v
		}
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
