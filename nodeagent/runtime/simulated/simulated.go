// Package simulated is a container runtime that runs nothing: an in-memory
// CRI runtime service and image service for the node agent's scale tests and
// for machines without containerd. The agent drives it through the same CRI
// calls it makes to containerd, so everything above the runtime is the real
// code path.
//
// Containers run until stopped, except where a pod will not restart them
// (restartPolicy Never or OnFailure, passed by the agent as the container
// annotation RestartPolicyAnnotation): those exit 0 after a short run, so
// Jobs complete. ExitAfterAnnotation and ExitCodeAnnotation, copied by the
// agent from the pod's annotations, set the run time and exit code of any
// container.
package simulated

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/api/resource"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	// RuntimeName is what the runtime reports as its name and what the node
	// shows as its container runtime.
	RuntimeName = "kplex-simulated"
	// RestartPolicyAnnotation carries the pod's restartPolicy to the runtime.
	RestartPolicyAnnotation = "kplex.io/restart-policy"
	// ExitAfterAnnotation is how long a simulated container runs (a Go duration).
	ExitAfterAnnotation = "kplex.io/simulate-exit-after"
	// ExitCodeAnnotation is the exit code a simulated container ends with.
	ExitCodeAnnotation = "kplex.io/simulate-exit-code"

	// CPUAnnotation is the CPU a running simulated container uses (a
	// quantity: "250m"); its stats count that much CPU time per second.
	CPUAnnotation = "kplex.io/simulate-cpu"
	// MemoryAnnotation is its working set (a quantity: "64Mi").
	MemoryAnnotation = "kplex.io/simulate-memory"

	// DefaultRunToCompletion is how long a container that will not be
	// restarted runs when no annotation says otherwise.
	DefaultRunToCompletion = time.Second
)

// Runtime is a simulated CRI runtime and image service. The zero value is
// not usable; call New.
type Runtime struct {
	// Methods the agent never calls stay unimplemented and panic if called.
	internalapi.RuntimeService

	mu         sync.Mutex
	next       int
	sandboxes  map[string]*sandbox
	containers map[string]*container
	now        func() time.Time
	// podCIDR is the node's, from UpdateRuntimeConfig; sandboxes of their
	// own network get its addresses, with nothing behind them.
	podCIDR netip.Prefix
	ips     map[netip.Addr]string // in use → sandbox
}

type sandbox struct {
	ip        netip.Addr
	id        string
	config    *runtimeapi.PodSandboxConfig
	state     runtimeapi.PodSandboxState
	createdAt time.Time
}

type container struct {
	id         string
	sandboxID  string
	config     *runtimeapi.ContainerConfig
	logPath    string
	state      runtimeapi.ContainerState
	createdAt  time.Time
	startedAt  time.Time
	finishedAt time.Time
	exitCode   int32
	reason     string
	exit       *time.Timer
}

var _ internalapi.RuntimeService = &Runtime{}
var _ internalapi.ImageManagerService = Images{}

// New returns an empty simulated runtime.
func New() *Runtime {
	return &Runtime{sandboxes: map[string]*sandbox{}, containers: map[string]*container{}, now: time.Now}
}

func (r *Runtime) newID(kind string) string {
	r.next++
	return fmt.Sprintf("sim-%s-%d", kind, r.next)
}

func notFound(kind, id string) error {
	return status.Errorf(codes.NotFound, "%s %q not found", kind, id)
}

// Version reports the simulated runtime's name.
func (r *Runtime) Version(context.Context, string) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: RuntimeName, RuntimeVersion: "0.1.0", RuntimeApiVersion: "v1"}, nil
}

// Status reports the runtime and its network ready.
func (r *Runtime) Status(context.Context, bool) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}}, nil
}

// RunPodSandbox records a ready sandbox.
func (r *Runtime) RunPodSandbox(_ context.Context, config *runtimeapi.PodSandboxConfig, _ string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &sandbox{id: r.newID("pod"), config: config, state: runtimeapi.PodSandboxState_SANDBOX_READY, createdAt: r.now()}
	if config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_POD {
		s.ip = r.allocate(s.id)
	}
	r.sandboxes[s.id] = s
	return s.id, nil
}

// StopPodSandbox stops the sandbox's containers and the sandbox.
func (r *Runtime) StopPodSandbox(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok {
		return nil // CRI: stopping a missing sandbox succeeds
	}
	for _, c := range r.containers {
		if c.sandboxID == id {
			r.exitLocked(c, 137, "Error")
		}
	}
	s.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	return nil
}

// RemovePodSandbox forgets the sandbox and its containers.
func (r *Runtime) RemovePodSandbox(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for cid, c := range r.containers {
		if c.sandboxID == id {
			r.exitLocked(c, 137, "Error")
			delete(r.containers, cid)
		}
	}
	if s := r.sandboxes[id]; s != nil && s.ip.IsValid() {
		delete(r.ips, s.ip)
	}
	delete(r.sandboxes, id)
	return nil
}

// PodSandboxStatus reports a sandbox; its IP is left empty, as for a
// host-network sandbox.
func (r *Runtime) PodSandboxStatus(_ context.Context, id string, _ bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok {
		return nil, notFound("sandbox", id)
	}
	st := &runtimeapi.PodSandboxStatus{
		Id: s.id, Metadata: s.config.Metadata, State: s.state, CreatedAt: s.createdAt.UnixNano(),
		Labels: s.config.Labels, Annotations: s.config.Annotations,
	}
	if s.ip.IsValid() {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: s.ip.String()}
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: st}, nil
}

// ListPodSandbox lists sandboxes that match filter.
func (r *Runtime) ListPodSandbox(_ context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, s := range r.sandboxes {
		if filter != nil {
			if filter.Id != "" && filter.Id != s.id {
				continue
			}
			if filter.State != nil && filter.State.State != s.state {
				continue
			}
			if !matches(filter.LabelSelector, s.config.Labels) {
				continue
			}
		}
		out = append(out, &runtimeapi.PodSandbox{Id: s.id, Metadata: s.config.Metadata, State: s.state, CreatedAt: s.createdAt.UnixNano(), Labels: s.config.Labels, Annotations: s.config.Annotations})
	}
	return out, nil
}

// CreateContainer records a created container in a ready sandbox.
func (r *Runtime) CreateContainer(_ context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[sandboxID]
	if !ok {
		return "", notFound("sandbox", sandboxID)
	}
	if s.state != runtimeapi.PodSandboxState_SANDBOX_READY {
		return "", status.Errorf(codes.FailedPrecondition, "sandbox %q is not ready", sandboxID)
	}
	c := &container{id: r.newID("ctr"), sandboxID: sandboxID, config: config, state: runtimeapi.ContainerState_CONTAINER_CREATED, createdAt: r.now()}
	if sandboxConfig != nil && sandboxConfig.LogDirectory != "" && config.LogPath != "" {
		c.logPath = filepath.Join(sandboxConfig.LogDirectory, config.LogPath)
	}
	r.containers[c.id] = c
	return c.id, nil
}

// StartContainer runs a created container; see the package comment for
// when it exits.
func (r *Runtime) StartContainer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return notFound("container", id)
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_CREATED {
		return status.Errorf(codes.FailedPrecondition, "container %q is not in created state", id)
	}
	c.state = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.startedAt = r.now()
	if c.logPath != "" {
		meta := r.sandboxes[c.sandboxID].config.GetMetadata()
		writeLog(c.logPath, c.startedAt, fmt.Sprintf("simulated container %s of pod %s/%s started", c.config.GetMetadata().GetName(), meta.GetNamespace(), meta.GetName()))
	}
	if after, code, ok := exitPlan(c.config.Annotations); ok {
		c.exit = time.AfterFunc(after, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			reason := "Completed"
			if code != 0 {
				reason = "Error"
			}
			r.exitLocked(c, code, reason)
		})
	}
	return nil
}

// exitPlan says whether and when a started container exits by itself.
func exitPlan(annotations map[string]string) (time.Duration, int32, bool) {
	var code int32
	if v, err := strconv.Atoi(annotations[ExitCodeAnnotation]); err == nil {
		code = int32(v)
	}
	if v, err := time.ParseDuration(annotations[ExitAfterAnnotation]); err == nil {
		return v, code, true
	}
	if p := annotations[RestartPolicyAnnotation]; p != "" && p != "Always" {
		return DefaultRunToCompletion, code, true
	}
	return 0, 0, false
}

func (r *Runtime) exitLocked(c *container, code int32, reason string) {
	if c.exit != nil {
		c.exit.Stop()
	}
	switch c.state {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		c.finishedAt = r.now()
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		c.finishedAt = r.now()
		c.startedAt = c.finishedAt
	default:
		return
	}
	c.state = runtimeapi.ContainerState_CONTAINER_EXITED
	c.exitCode = code
	c.reason = reason
}

// StopContainer stops a container as if it honoured SIGTERM.
func (r *Runtime) StopContainer(_ context.Context, id string, _ int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[id]; ok {
		r.exitLocked(c, 0, "Completed")
	}
	return nil
}

// RemoveContainer forgets a container.
func (r *Runtime) RemoveContainer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[id]; ok {
		r.exitLocked(c, 137, "Error")
		delete(r.containers, id)
	}
	return nil
}

// ListContainers lists containers that match filter.
func (r *Runtime) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*runtimeapi.Container
	for _, c := range r.containers {
		if filter != nil && (!c.selected(filter.Id, filter.PodSandboxId, filter.LabelSelector) || (filter.State != nil && filter.State.State != c.state)) {
			continue
		}
		out = append(out, &runtimeapi.Container{
			Id: c.id, PodSandboxId: c.sandboxID, Metadata: c.config.Metadata, Image: c.config.Image, ImageRef: c.config.GetImage().GetImage(),
			State: c.state, CreatedAt: c.createdAt.UnixNano(), Labels: c.config.Labels, Annotations: c.config.Annotations,
		})
	}
	return out, nil
}

// ContainerStatus reports a container.
func (r *Runtime) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil, notFound("container", id)
	}
	st := &runtimeapi.ContainerStatus{
		Id: c.id, Metadata: c.config.Metadata, State: c.state, CreatedAt: c.createdAt.UnixNano(),
		Image: c.config.Image, ImageRef: c.config.GetImage().GetImage(), ExitCode: c.exitCode, Reason: c.reason,
		Labels: c.config.Labels, Annotations: c.config.Annotations, LogPath: c.logPath,
	}
	if !c.startedAt.IsZero() {
		st.StartedAt = c.startedAt.UnixNano()
	}
	if !c.finishedAt.IsZero() {
		st.FinishedAt = c.finishedAt.UnixNano()
	}
	return &runtimeapi.ContainerStatusResponse{Status: st}, nil
}

// ExecSync succeeds in a running container, so probes pass; it runs echo,
// and nothing else, so that exec can be tested end to end.
func (r *Runtime) ExecSync(_ context.Context, id string, cmd []string, _ time.Duration) ([]byte, []byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil, nil, notFound("container", id)
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, nil, status.Errorf(codes.FailedPrecondition, "container %q is not running", id)
	}
	if len(cmd) > 0 && cmd[0] == "echo" {
		return []byte(strings.Join(cmd[1:], " ") + "\n"), nil, nil
	}
	return nil, nil, nil
}

// ContainerStats reports one container's usage.
func (r *Runtime) ContainerStats(_ context.Context, id string) (*runtimeapi.ContainerStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil, notFound("container", id)
	}
	return r.statsLocked(c), nil
}

// ListContainerStats reports the usage of the containers filter matches:
// CPUAnnotation's cores for every second since the container started,
// MemoryAnnotation's bytes while it runs; by default 1m and 4Mi.
func (r *Runtime) ListContainerStats(_ context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*runtimeapi.ContainerStats
	for _, c := range r.containers {
		if filter != nil && !c.selected(filter.Id, filter.PodSandboxId, filter.LabelSelector) {
			continue
		}
		out = append(out, r.statsLocked(c))
	}
	return out, nil
}

func (r *Runtime) statsLocked(c *container) *runtimeapi.ContainerStats {
	now := r.now()
	cpu, memory := usage(c.config.Annotations)
	var ran time.Duration
	switch {
	case c.startedAt.IsZero():
	case c.finishedAt.IsZero():
		ran = now.Sub(c.startedAt)
	default:
		ran = c.finishedAt.Sub(c.startedAt)
	}
	if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		memory = 0
	}
	return &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: c.id, Metadata: c.config.Metadata, Labels: c.config.Labels, Annotations: c.config.Annotations},
		Cpu: &runtimeapi.CpuUsage{
			Timestamp:            now.UnixNano(),
			UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: uint64(float64(ran.Nanoseconds()) * cpu)},
		},
		Memory: &runtimeapi.MemoryUsage{Timestamp: now.UnixNano(), WorkingSetBytes: &runtimeapi.UInt64Value{Value: uint64(memory)}},
	}
}

// usage reads a container's simulated CPU (cores) and memory (bytes).
func usage(annotations map[string]string) (cpu float64, memory int64) {
	cpu, memory = 0.001, 4<<20
	if q, err := resource.ParseQuantity(annotations[CPUAnnotation]); err == nil {
		cpu = q.AsApproximateFloat64()
	}
	if q, err := resource.ParseQuantity(annotations[MemoryAnnotation]); err == nil {
		memory = q.Value()
	}
	return cpu, memory
}

// Exec is not offered: a simulated container has no process to attach to.
func (r *Runtime) Exec(context.Context, *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return nil, status.Error(codes.Unimplemented, "the simulated runtime runs no processes: exec is not available")
}

// Close does nothing.
func (r *Runtime) Close(context.Context) error { return nil }

// ContainerConfig returns what a container was created with (its env,
// mounts and devices), or nil: a simulated container shows nothing of it
// otherwise.
func (r *Runtime) ContainerConfig(id string) *runtimeapi.ContainerConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[id]; ok {
		return c.config
	}
	return nil
}

// selected tells whether c passes a CRI filter's id, sandbox and labels
// (empty ones pass all).
func (c *container) selected(id, sandboxID string, labels map[string]string) bool {
	return (id == "" || id == c.id) && (sandboxID == "" || sandboxID == c.sandboxID) && matches(labels, c.config.Labels)
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// writeLog appends one line in the CRI log format.
func writeLog(path string, at time.Time, line string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s stdout F %s\n", at.UTC().Format(time.RFC3339Nano), line)
}

// Images is a simulated image service in which every image is present.
type Images struct{}

// ListImages lists nothing.
func (Images) ListImages(context.Context, *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	return nil, nil
}

// ImageStatus reports every image present.
func (Images) ImageStatus(_ context.Context, image *runtimeapi.ImageSpec, _ bool) (*runtimeapi.ImageStatusResponse, error) {
	return &runtimeapi.ImageStatusResponse{Image: &runtimeapi.Image{Id: "sim:" + image.GetImage(), RepoTags: []string{image.GetImage()}}}, nil
}

// PullImage succeeds at once.
func (Images) PullImage(_ context.Context, image *runtimeapi.ImageSpec, _ *runtimeapi.AuthConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	return "sim:" + image.GetImage(), nil
}

// RemoveImage does nothing.
func (Images) RemoveImage(context.Context, *runtimeapi.ImageSpec) error { return nil }

// ImageFsInfo reports nothing.
func (Images) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{}, nil
}

// Close does nothing.
func (Images) Close(context.Context) error { return nil }

// UpdateRuntimeConfig takes the node's pod CIDR, as a CRI runtime does.
func (r *Runtime) UpdateRuntimeConfig(_ context.Context, cfg *runtimeapi.RuntimeConfig) error {
	p, err := netip.ParsePrefix(cfg.GetNetworkConfig().GetPodCidr())
	if err != nil {
		return fmt.Errorf("pod CIDR: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.podCIDR = p.Masked()
	return nil
}

// allocate gives sandbox id the first free address of the pod CIDR after
// the gateway's (.1), as host-local does; none without a CIDR or when all
// are taken. r.mu is held.
func (r *Runtime) allocate(id string) netip.Addr {
	if !r.podCIDR.IsValid() {
		return netip.Addr{}
	}
	if r.ips == nil {
		r.ips = map[netip.Addr]string{}
	}
	for ip := r.podCIDR.Addr().Next().Next(); r.podCIDR.Contains(ip) && ip.Next().IsValid() && r.podCIDR.Contains(ip.Next()); ip = ip.Next() {
		if _, used := r.ips[ip]; !used {
			r.ips[ip] = id
			return ip
		}
	}
	return netip.Addr{}
}
