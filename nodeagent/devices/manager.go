package devices

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const (
	// DefaultDir is the directory where device plugins expect the
	// registration socket and put their own sockets.
	DefaultDir = "/var/lib/kubelet/device-plugins"
	// DefaultSocketName is the base name of the registration socket
	// (the base name of v1beta1.KubeletSocket).
	DefaultSocketName = "kubelet.sock"
	// DefaultCheckpointName is the base name of the checkpoint file in Dir.
	DefaultCheckpointName = "kplex_checkpoint"

	// defaultGracePeriod is how long a resource whose plugin went away keeps
	// its capacity before it is reported as 0.
	defaultGracePeriod = 5 * time.Minute
	// optionsTimeout bounds the GetDevicePluginOptions call after Register.
	optionsTimeout = 10 * time.Second
	// rpcTimeout bounds Allocate and GetPreferredAllocation calls.
	rpcTimeout = 30 * time.Second
)

// Options configures a Manager. Zero values are replaced by defaults (see
// withDefaults).
type Options struct {
	// Dir holds the registration socket, the plugins' sockets and, by
	// default, the checkpoint. Default DefaultDir.
	Dir string
	// SocketName is the registration socket's base name in Dir.
	// Default DefaultSocketName.
	SocketName string
	// CheckpointFile is the path of the assignment checkpoint.
	// Default Dir/DefaultCheckpointName.
	CheckpointFile string
}

// withDefaults is the one place where Options are defaulted.
func (o Options) withDefaults() Options {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.SocketName == "" {
		o.SocketName = DefaultSocketName
	}
	if o.CheckpointFile == "" {
		o.CheckpointFile = filepath.Join(o.Dir, DefaultCheckpointName)
	}
	return o
}

// Errors returned (wrapped) by Allocate; test with errors.Is.
var (
	// ErrResourceNotServed: no device plugin serves (or currently serves)
	// the requested extended resource.
	ErrResourceNotServed = errors.New("resource not served by a device plugin")
	// ErrNotEnoughDevices: fewer free healthy devices than requested.
	ErrNotEnoughDevices = errors.New("not enough free healthy devices")
)

// Allocation is what a container gets from the device plugins serving its
// extended resources, merged over all resources.
type Allocation struct {
	Envs        map[string]string
	Mounts      []*pluginapi.Mount
	Devices     []*pluginapi.DeviceSpec
	Annotations map[string]string
	CDIDevices  []*pluginapi.CDIDevice
	// DeviceIDs maps a resource name to the IDs of the devices assigned.
	DeviceIDs map[string][]string
}

// Manager is the device-plugin manager. Create it with New.
type Manager struct {
	opts        Options
	socketPath  string
	gracePeriod time.Duration // tests shorten it
	changes     chan struct{}

	// allocMu serializes Allocate, Release and Retain, so that devices
	// chosen by one Allocate cannot be taken by another while the plugin is
	// being called without holding mu.
	allocMu sync.Mutex
	// ckMu serializes checkpoint writes so that the newest snapshot wins.
	ckMu sync.Mutex

	mu        sync.Mutex
	logger    klog.Logger
	started   bool
	stopped   bool
	ctx       context.Context // cancelled by Stop; parent of plugin streams
	cancel    context.CancelFunc
	server    *grpc.Server
	stopOnce  sync.Once
	wg        sync.WaitGroup // server and endpoint goroutines
	resources map[string]*resourceState
	// assignments: (pod, container) -> resource -> assignment.
	assignments map[containerKey]map[string]*assignment
}

type containerKey struct {
	pod, container string
}

type assignment struct {
	ids  []string
	resp *pluginapi.ContainerAllocateResponse
}

// resourceState is what the manager knows about one extended resource.
type resourceState struct {
	// devices maps device ID -> healthy, as last reported by the plugin.
	devices map[string]bool
	// ep is the live plugin connection, nil when the plugin is gone (or not
	// registered yet after an agent restart).
	ep *endpoint
	// gen changes on every (de)registration; the grace timer checks it.
	gen       uint64
	stopTimer *time.Timer
}

// New returns a Manager; call Start to serve plugins.
func New(opts Options) *Manager {
	opts = opts.withDefaults()
	return &Manager{
		opts:        opts,
		socketPath:  filepath.Join(opts.Dir, opts.SocketName),
		gracePeriod: defaultGracePeriod,
		changes:     make(chan struct{}, 1),
		logger:      klog.Background().WithName("devices"),
		resources:   map[string]*resourceState{},
		assignments: map[containerKey]map[string]*assignment{},
	}
}

// Start loads the checkpoint and serves the Registration service on
// Dir/SocketName (a stale socket is removed, Dir is created). It returns once
// the socket is listening; the manager runs until ctx is cancelled or Stop
// is called. A checkpoint that exists but cannot be parsed is an error
// (continuing would forget which devices are in use); remove the file to
// start from scratch.
func (m *Manager) Start(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithName("devices")

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return errors.New("device manager already started")
	}
	m.started = true
	m.logger = logger

	if err := os.MkdirAll(m.opts.Dir, 0o750); err != nil {
		return fmt.Errorf("creating device plugin directory %s: %w", m.opts.Dir, err)
	}
	if err := m.loadCheckpointLocked(); err != nil {
		return err
	}
	if err := os.Remove(m.socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale registration socket %s: %w", m.socketPath, err)
	}
	lis, err := net.Listen("unix", m.socketPath)
	if err != nil {
		return fmt.Errorf("listening on registration socket %s: %w", m.socketPath, err)
	}

	m.ctx, m.cancel = context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), logger))
	m.server = grpc.NewServer()
	pluginapi.RegisterRegistrationServer(m.server, &registrationServer{m: m})

	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.server.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			logger.Error(err, "Registration server stopped", "socket", m.socketPath)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			m.Stop()
		case <-m.ctx.Done():
		}
	}()
	logger.Info("Device plugin registration service started", "socket", m.socketPath, "checkpoint", m.opts.CheckpointFile)
	return nil
}

// Stop closes the registration socket and all plugin connections and waits
// for their goroutines. Assignments stay in the checkpoint.
func (m *Manager) Stop() {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.stopped = true
		server, cancel := m.server, m.cancel
		for _, r := range m.resources {
			if r.stopTimer != nil {
				r.stopTimer.Stop()
			}
		}
		m.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		if server != nil {
			server.Stop()
		}
		m.wg.Wait()
		if server != nil {
			if err := os.Remove(m.socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
				m.logger.Error(err, "Removing registration socket", "socket", m.socketPath)
			}
		}
		m.logger.Info("Device manager stopped")
	})
}

// Changes signals (coalesced, buffer 1) whenever Resources may return
// something different.
func (m *Manager) Changes() <-chan struct{} {
	return m.changes
}

func (m *Manager) signal() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// Resources reports, per device-plugin resource, capacity (devices reported
// by the plugin, healthy or not) and allocatable (healthy devices while the
// plugin is connected, else 0). A resource whose plugin has been gone longer
// than the grace period is reported with 0 in both lists, so that the Node
// status is overwritten.
func (m *Manager) Resources() (capacity, allocatable v1.ResourceList) {
	m.mu.Lock()
	defer m.mu.Unlock()
	capacity, allocatable = v1.ResourceList{}, v1.ResourceList{}
	for name, r := range m.resources {
		healthy := 0
		if r.ep != nil {
			for _, h := range r.devices {
				if h {
					healthy++
				}
			}
		}
		capacity[v1.ResourceName(name)] = *resource.NewQuantity(int64(len(r.devices)), resource.DecimalSI)
		allocatable[v1.ResourceName(name)] = *resource.NewQuantity(int64(healthy), resource.DecimalSI)
	}
	return capacity, allocatable
}

// registrationServer implements v1beta1.RegistrationServer.
type registrationServer struct {
	pluginapi.UnimplementedRegistrationServer
	m *Manager
}

func (s *registrationServer) Register(ctx context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	m := s.m
	logger := m.logger.WithValues("resource", req.GetResourceName(), "endpoint", req.GetEndpoint())
	if err := m.validateRegistration(req); err != nil {
		logger.Info("Refused device plugin registration", "version", req.GetVersion(), "err", err)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "device manager is stopping")
	}
	m.wg.Add(1)
	m.mu.Unlock()
	logger.Info("Device plugin registered")
	// Answer now; the plugin may only start serving after Register returns.
	go m.runEndpoint(req)
	return &pluginapi.Empty{}, nil
}

func (m *Manager) validateRegistration(req *pluginapi.RegisterRequest) error {
	supported := false
	for _, v := range pluginapi.SupportedVersions {
		if req.GetVersion() == v {
			supported = true
		}
	}
	if !supported {
		return fmt.Errorf("unsupported device plugin API version %q (supported: %v)", req.GetVersion(), pluginapi.SupportedVersions)
	}
	if !isExtendedResourceName(req.GetResourceName()) {
		return fmt.Errorf("invalid resource name %q: must be an extended resource name such as example.com/device (domain-prefixed, not in the kubernetes.io namespace)", req.GetResourceName())
	}
	ep := req.GetEndpoint()
	if ep == "" || !filepath.IsLocal(ep) {
		return fmt.Errorf("invalid endpoint %q: must be a socket path relative to %s", ep, m.opts.Dir)
	}
	if filepath.Join(m.opts.Dir, ep) == m.socketPath {
		return fmt.Errorf("invalid endpoint %q: that is the registration socket", ep)
	}
	return nil
}

// isExtendedResourceName reports whether name is an extended resource name:
// it has a domain prefix, is not in the kubernetes.io namespace, is not a
// quota "requests." name, and "requests."+name is a qualified name.
// Non-extended names such as cpu, memory, ephemeral-storage, pods and
// hugepages-2Mi are rejected.
func isExtendedResourceName(name string) bool {
	if !strings.Contains(name, "/") || strings.Contains(name, v1.ResourceDefaultNamespacePrefix) {
		return false
	}
	if strings.HasPrefix(name, v1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(content.IsQualifiedName(v1.DefaultResourceRequestsPrefix+name)) == 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
