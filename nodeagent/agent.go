package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/pools"
	"github.com/kplex/kplex/nodeagent/runtime/simulated"
)

// Devices is what the agent needs of the device-plugin manager: the
// resources plugins advertise, and devices for a container.
type Devices interface {
	Resources() (capacity, allocatable v1.ResourceList)
	Changes() <-chan struct{}
	Allocate(ctx context.Context, podUID, containerName string, requests v1.ResourceList) (*Allocation, error)
	Release(podUID string)
	Retain(live func(podUID string) bool)
}

// Allocation is what a device plugin returned for one container.
type Allocation struct {
	Envs        map[string]string
	Mounts      []*runtimeapi.Mount
	Devices     []*runtimeapi.Device
	Annotations map[string]string
	CDIDevices  []*runtimeapi.CDIDevice
}

// Runtime is the container runtime an agent drives, through CRI.
type Runtime struct {
	Service internalapi.RuntimeService
	Images  internalapi.ImageManagerService
	// HostNetworkOnly runs every pod in the node's network namespace:
	// without CNI, that is the only network there is (DESIGN decision 8).
	HostNetworkOnly bool
	// Scheme prefixes container IDs in pod status: containerd://<id>.
	Scheme string
}

func (a *Agent) runtimeScheme() string { return a.runtime.Scheme }

// Agent runs one node: it registers the Node, heartbeats its Lease and
// runs the pods bound to it, of every tenant.
type Agent struct {
	cfg     *Config
	name    string
	root    kubernetes.Interface
	tenants rest.Interface
	runtime Runtime
	devices Devices
	node    *nodeStatus
	// security is what the node enforces of pods' security contexts.
	security *nodeSecurity
	// net is the pod network; nil when every pod runs on the node's.
	net *podNetwork
	// pools are the management plane's NodePools: the node's pool decides
	// the runtime (sandbox) its pods run under. Nil in tests without them.
	pools *pools.Cache

	backoff *flowcontrol.Backoff

	// slots bound how many of the process's agents register (or mark
	// their node not ready on stop) at once.
	slots slots

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	ctx     context.Context
	synced  func() bool
}

// newAgent returns the agent of node name. tenants is a REST client of the
// apiserver's core API with no path prefix, through which the agent writes
// to each pod's own tenant.
func newAgent(cfg *Config, name string, root kubernetes.Interface, tenants rest.Interface, rt Runtime, devices Devices, capacity v1.ResourceList) *Agent {
	a := &Agent{
		cfg: cfg, name: name, root: root, tenants: tenants, runtime: rt, devices: devices,
		backoff: flowcontrol.NewBackOff(10*time.Second, 5*time.Minute),
		workers: map[types.UID]*podWorker{},
	}
	a.security = newNodeSecurity(klog.Background().WithValues("node", name), cfg, rt)
	if !rt.HostNetworkOnly {
		a.net = newPodNetwork(rt.Scheme != simulated.RuntimeName)
	}
	a.node = &nodeStatus{
		name: name, cfg: cfg, client: root, pokes: make(chan struct{}, 1),
		capacity: func() v1.ResourceList {
			out := capacity.DeepCopy()
			if devices != nil {
				_, alloc := devices.Resources()
				for k, v := range alloc {
					out[k] = v
				}
			}
			return out
		},
		runtime: func(ctx context.Context) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			v, err := rt.Service.Version(ctx, "v1")
			if err != nil {
				return "", err
			}
			st, err := rt.Service.Status(ctx, false)
			if err != nil {
				return "", err
			}
			for _, c := range st.GetStatus().GetConditions() {
				if c.Type == runtimeapi.RuntimeReady && !c.Status {
					return "", fmt.Errorf("runtime not ready: %s", c.Message)
				}
			}
			return v.RuntimeName + "://" + v.RuntimeVersion, nil
		},
	}
	if a.net != nil && a.net.cni {
		a.node.network = a.net.notReady
	}
	return a
}

// run registers the node and keeps it and its pods until ctx ends; then it
// marks the node not ready and leaves the pods running.
func (a *Agent) run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("node", a.name)
	ctx = klog.NewContext(ctx, logger)
	a.mu.Lock()
	a.ctx = ctx
	a.mu.Unlock()
	if err := os.MkdirAll(filepath.Join(a.cfg.RootDir, "pods"), 0o755); err != nil {
		return fmt.Errorf("preparing %s: %w", a.cfg.RootDir, err)
	}
	// Thousands of simulated nodes register a few at a time: all at once,
	// they open thousands of connections and none gets Ready before all
	// are registered.
	if err := a.slots.do(ctx, func() error { return retry(ctx, func() error { return a.node.register(ctx) }) }); err != nil {
		return err
	}
	go a.node.heartbeat(ctx, a.root)
	if a.net != nil {
		go a.keepNetwork(ctx)
	}
	var changes <-chan struct{}
	if a.devices != nil {
		changes = a.devices.Changes()
	}
	tick := time.NewTicker(a.cfg.RenewInterval)
	defer tick.Stop()
	for {
		if err := a.node.sync(ctx, false); err != nil && ctx.Err() == nil {
			logger.Error(err, "Writing node status")
		}
		if err := a.node.syncFileLabels(ctx); err != nil && ctx.Err() == nil {
			logger.Error(err, "Writing node labels")
		}
		select {
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
			defer cancel()
			if err := a.slots.do(stop, func() error { return a.node.sync(stop, true) }); err != nil {
				logger.Error(err, "Marking node not ready on stop")
			}
			return nil
		case <-tick.C:
		case <-changes:
		case <-a.node.pokes:
		}
	}
}

// podChanged hands a pod (nil newPod: gone) to its worker, starting one.
func (a *Agent) podChanged(tenantName string, uid types.UID, pod *v1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w, ok := a.workers[uid]
	if !ok {
		if pod == nil || a.ctx == nil {
			return
		}
		w = newPodWorker(a, tenantName, pod)
		a.workers[uid] = w
		go w.run(a.ctx)
	}
	w.update(pod)
}

// isLive reports whether a pod of this node is still to run: known and not
// gone from the API.
func (a *Agent) isLive(uid string) bool {
	a.mu.Lock()
	w, ok := a.workers[types.UID(uid)]
	a.mu.Unlock()
	if !ok {
		return false
	}
	_, gone := w.latest()
	return !gone
}

func (a *Agent) workerDone(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.workers, uid)
}

// adoptOrphans stops and removes the sandboxes of pods no longer bound
// here, once the pod cache has synced: a pod deleted while the agent was
// down must not keep running.
func (a *Agent) adoptOrphans(ctx context.Context) {
	sandboxes, err := a.runtime.Service.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{labelNode: a.name}})
	if err != nil {
		klog.FromContext(ctx).Error(err, "Listing sandboxes")
		return
	}
	for _, s := range sandboxes {
		uid := types.UID(s.Labels[labelPodUID])
		a.mu.Lock()
		_, known := a.workers[uid]
		a.mu.Unlock()
		if known {
			continue
		}
		klog.FromContext(ctx).Info("Removing sandbox of a pod no longer bound here", "pod", s.Labels[labelPodName], "tenant", s.Labels[labelTenant], "uid", uid)
		a.removeSandbox(ctx, s.Id, 0)
	}
	if a.devices != nil {
		a.devices.Retain(a.isLive)
	}
}

// removeSandbox stops a sandbox's containers, giving each grace seconds,
// then removes them and the sandbox.
func (a *Agent) removeSandbox(ctx context.Context, id string, grace int64) {
	removeSandbox(ctx, a.runtime.Service, id, grace)
}

func removeSandbox(ctx context.Context, svc internalapi.RuntimeService, id string, grace int64) {
	containers, _ := svc.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: id})
	var wg sync.WaitGroup
	for _, c := range containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = svc.StopContainer(ctx, c.Id, grace)
			}()
		}
	}
	wg.Wait()
	for _, c := range containers {
		_ = svc.RemoveContainer(ctx, c.Id)
	}
	_ = svc.StopPodSandbox(ctx, id)
	_ = svc.RemovePodSandbox(ctx, id)
}

// podSource watches the pods bound to a set of agents, of every tenant, in
// one cross-tenant watch, and hands each change to its node's agent.
type podSource struct {
	cache  *crosstenant.Cache
	agents map[string]*Agent
}

func newPodSource(cross kubernetes.Interface, selector string, agents []*Agent) (*podSource, error) {
	sel, err := parseFieldSelector(selector)
	if err != nil {
		return nil, err
	}
	s := &podSource{
		cache:  crosstenant.NewCache(crosstenant.ListWatchSelected(cross.CoreV1().RESTClient(), "pods", sel), &v1.Pod{}),
		agents: map[string]*Agent{},
	}
	for _, a := range agents {
		s.agents[a.name] = a
		a.synced = s.cache.HasSynced
	}
	s.cache.Observe(func(tenantName string, oldObj, newObj any) {
		if newObj == nil {
			if pod, ok := crosstenant.Unwrap(oldObj).(*v1.Pod); ok {
				if a := s.agents[pod.Spec.NodeName]; a != nil {
					a.podChanged(tenantName, pod.UID, nil)
				}
			}
			return
		}
		pod, ok := newObj.(*v1.Pod)
		if !ok {
			return
		}
		if a := s.agents[pod.Spec.NodeName]; a != nil {
			a.podChanged(tenantName, pod.UID, pod)
		}
	})
	return s, nil
}

// slots is a counting semaphore; nil lets everyone through.
type slots chan struct{}

func newSlots(n int) slots { return make(slots, n) }

func (s slots) do(ctx context.Context, f func() error) error {
	if s != nil {
		select {
		case s <- struct{}{}:
			defer func() { <-s }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f()
}

func retry(ctx context.Context, f func() error) error {
	delay := 500 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		klog.FromContext(ctx).Error(err, "Will retry", "after", delay)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		if delay < 10*time.Second {
			delay *= 2
		}
	}
}
