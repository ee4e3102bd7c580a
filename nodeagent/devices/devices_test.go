package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const stubResource = "example.com/stub"

// stubPlugin is a minimal device plugin serving on a unix socket in dir.
type stubPlugin struct {
	pluginapi.UnimplementedDevicePluginServer

	dir, endpoint, resource string
	opts                    *pluginapi.DevicePluginOptions
	server                  *grpc.Server

	mu       sync.Mutex
	devices  []*pluginapi.Device
	updated  chan struct{} // closed and replaced on every device change
	allocs   [][]string
	preStart [][]string
	prefer   int
}

func startStub(t *testing.T, dir, endpoint string, opts *pluginapi.DevicePluginOptions, devs ...*pluginapi.Device) *stubPlugin {
	t.Helper()
	if opts == nil {
		opts = &pluginapi.DevicePluginOptions{}
	}
	s := &stubPlugin{dir: dir, endpoint: endpoint, resource: stubResource, opts: opts, devices: devs, updated: make(chan struct{})}
	sock := filepath.Join(dir, endpoint)
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("stub listen: %v", err)
	}
	s.server = grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(s.server, s)
	go func() { _ = s.server.Serve(lis) }()
	t.Cleanup(s.stop)
	return s
}

func (s *stubPlugin) stop() { s.server.Stop() }

// register registers the stub with the manager's registration socket.
func (s *stubPlugin) register(version, resourceName string) error {
	conn, err := grpc.NewClient("unix://"+filepath.Join(s.dir, DefaultSocketName), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: version, Endpoint: s.endpoint, ResourceName: resourceName, Options: s.opts,
	}, grpc.WaitForReady(true))
	return err
}

func (s *stubPlugin) mustRegister(t *testing.T) {
	t.Helper()
	if err := s.register(pluginapi.Version, s.resource); err != nil {
		t.Fatalf("register: %v", err)
	}
}

func (s *stubPlugin) setDevices(devs ...*pluginapi.Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devices = devs
	close(s.updated)
	s.updated = make(chan struct{})
}

func (s *stubPlugin) allocCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.allocs)
}

func (s *stubPlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return s.opts, nil
}

func (s *stubPlugin) ListAndWatch(_ *pluginapi.Empty, stream pluginapi.DevicePlugin_ListAndWatchServer) error {
	for {
		s.mu.Lock()
		devs, updated := s.devices, s.updated
		s.mu.Unlock()
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-updated:
		}
	}
}

func (s *stubPlugin) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	s.mu.Lock()
	s.prefer++
	s.mu.Unlock()
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.ContainerRequests {
		// Prefer the highest IDs.
		avail := slices.Clone(cr.AvailableDeviceIDs)
		slices.Sort(avail)
		slices.Reverse(avail)
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: avail[:cr.AllocationSize]})
	}
	return resp, nil
}

func (s *stubPlugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, cr := range req.ContainerRequests {
		s.mu.Lock()
		s.allocs = append(s.allocs, cr.DevicesIds)
		s.mu.Unlock()
		car := &pluginapi.ContainerAllocateResponse{
			Envs:        map[string]string{"STUB_DEVICES": strings.Join(cr.DevicesIds, ",")},
			Mounts:      []*pluginapi.Mount{{ContainerPath: "/var/run/stub", HostPath: "/run/stub", ReadOnly: true}},
			Annotations: map[string]string{"stub.example.com/devices": strings.Join(cr.DevicesIds, ",")},
		}
		for _, id := range cr.DevicesIds {
			car.Devices = append(car.Devices, &pluginapi.DeviceSpec{ContainerPath: "/dev/stub-" + id, HostPath: "/dev/null", Permissions: "rw"})
			car.CdiDevices = append(car.CdiDevices, &pluginapi.CDIDevice{Name: "example.com/stub=" + id})
		}
		resp.ContainerResponses = append(resp.ContainerResponses, car)
	}
	return resp, nil
}

func (s *stubPlugin) PreStartContainer(_ context.Context, req *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.preStart = append(s.preStart, req.DevicesIds)
	return &pluginapi.PreStartContainerResponse{}, nil
}

// ---- helpers ----

func devs(n int, unhealthy ...string) []*pluginapi.Device {
	var out []*pluginapi.Device
	for i := range n {
		id := fmt.Sprintf("dev-%d", i)
		h := pluginapi.Healthy
		if slices.Contains(unhealthy, id) {
			h = pluginapi.Unhealthy
		}
		out = append(out, &pluginapi.Device{ID: id, Health: h})
	}
	return out
}

// tempDir returns a short directory (unix socket paths must stay < 108 bytes).
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startManager(t *testing.T, dir string, tweak ...func(*Manager)) *Manager {
	t.Helper()
	m := New(Options{Dir: dir})
	for _, f := range tweak {
		f(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); m.Stop() })
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return m
}

func counts(m *Manager, name string) (capacity, allocatable int64) {
	c, a := m.Resources()
	cq, aq := c[v1.ResourceName(name)], a[v1.ResourceName(name)]
	return cq.Value(), aq.Value()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitCounts(t *testing.T, m *Manager, wantCap, wantAlloc int64) {
	t.Helper()
	eventually(t, fmt.Sprintf("capacity %d allocatable %d", wantCap, wantAlloc), func() bool {
		c, a := counts(m, stubResource)
		return c == wantCap && a == wantAlloc
	})
}

func req(n int64) v1.ResourceList {
	return v1.ResourceList{
		stubResource:      *resource.NewQuantity(n, resource.DecimalSI),
		v1.ResourceCPU:    resource.MustParse("100m"),
		v1.ResourceMemory: resource.MustParse("64Mi"),
		"hugepages-2Mi":   resource.MustParse("2Mi"),
	}
}

func mustAllocate(t *testing.T, m *Manager, pod, ctr string, n int64) *Allocation {
	t.Helper()
	a, err := m.Allocate(context.Background(), pod, ctr, req(n))
	if err != nil {
		t.Fatalf("Allocate(%s/%s, %d): %v", pod, ctr, n, err)
	}
	if got := len(a.DeviceIDs[stubResource]); int64(got) != n {
		t.Fatalf("Allocate(%s/%s) got %d devices %v, want %d", pod, ctr, got, a.DeviceIDs, n)
	}
	return a
}

func disjoint(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// ---- tests ----

func TestRegistrationAndResources(t *testing.T) {
	dir := tempDir(t)
	m := startManager(t, dir)
	select { // drain
	case <-m.Changes():
	default:
	}
	stub := startStub(t, dir, "stub.sock", nil, devs(4, "dev-3")...)
	stub.mustRegister(t)
	waitCounts(t, m, 4, 3)
	select {
	case <-m.Changes():
	case <-time.After(5 * time.Second):
		t.Fatal("Changes did not fire after registration")
	}

	stub.setDevices(devs(4)...)
	waitCounts(t, m, 4, 4)
	select {
	case <-m.Changes():
	case <-time.After(5 * time.Second):
		t.Fatal("Changes did not fire after a health change")
	}
	stub.setDevices(devs(5, "dev-0", "dev-1")...)
	waitCounts(t, m, 5, 3)
}

func TestBadRegistration(t *testing.T) {
	dir := tempDir(t)
	startManager(t, dir)
	stub := startStub(t, dir, "stub.sock", nil, devs(1)...)
	for _, tc := range []struct{ version, resource, endpoint string }{
		{"v1alpha", stubResource, "stub.sock"},
		{"", stubResource, "stub.sock"},
		{pluginapi.Version, "gpu", "stub.sock"},
		{pluginapi.Version, "kubernetes.io/gpu", "stub.sock"},
		{pluginapi.Version, "requests.example.com/gpu", "stub.sock"},
		{pluginapi.Version, "example.com/bad name", "stub.sock"},
		{pluginapi.Version, stubResource, ""},
		{pluginapi.Version, stubResource, "../stub.sock"},
		{pluginapi.Version, stubResource, "/tmp/stub.sock"},
		{pluginapi.Version, stubResource, DefaultSocketName},
	} {
		stub.endpoint = tc.endpoint
		err := stub.register(tc.version, tc.resource)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("Register(%q, %q, %q) = %v, want InvalidArgument", tc.version, tc.resource, tc.endpoint, err)
		}
	}
}

func TestIsExtendedResourceName(t *testing.T) {
	for name, want := range map[string]bool{
		"example.com/gpu":          true,
		"nvidia.com/gpu":           true,
		"gpu":                      false,
		"cpu":                      false,
		"memory":                   false,
		"ephemeral-storage":        false,
		"pods":                     false,
		"hugepages-2Mi":            false,
		"kubernetes.io/foo":        false,
		"foo.kubernetes.io/bar":    false,
		"requests.example.com/gpu": false,
		"example.com/":             false,
		"Example_.com/gpu":         false,
	} {
		if got := isExtendedResourceName(name); got != want {
			t.Errorf("isExtendedResourceName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestAllocate(t *testing.T) {
	dir := tempDir(t)
	m := startManager(t, dir)
	stub := startStub(t, dir, "stub.sock", nil, devs(4)...)
	stub.mustRegister(t)
	waitCounts(t, m, 4, 4)

	a := mustAllocate(t, m, "pod-a", "c1", 2)
	b := mustAllocate(t, m, "pod-b", "c1", 2)
	ida, idb := a.DeviceIDs[stubResource], b.DeviceIDs[stubResource]
	if !disjoint(ida, idb) {
		t.Fatalf("allocations overlap: %v %v", ida, idb)
	}
	if got, want := a.Envs["STUB_DEVICES"], strings.Join(ida, ","); got != want {
		t.Errorf("env STUB_DEVICES = %q, want %q", got, want)
	}
	if got, want := a.Annotations["stub.example.com/devices"], strings.Join(ida, ","); got != want {
		t.Errorf("annotation = %q, want %q", got, want)
	}
	if len(a.Mounts) != 1 || a.Mounts[0].ContainerPath != "/var/run/stub" || a.Mounts[0].HostPath != "/run/stub" || !a.Mounts[0].ReadOnly {
		t.Errorf("mounts = %v", a.Mounts)
	}
	if len(a.Devices) != 2 || a.Devices[0].ContainerPath != "/dev/stub-"+ida[0] || a.Devices[0].Permissions != "rw" {
		t.Errorf("devices = %v", a.Devices)
	}
	if len(a.CDIDevices) != 2 || a.CDIDevices[1].Name != "example.com/stub="+ida[1] {
		t.Errorf("CDI devices = %v", a.CDIDevices)
	}
	// Allocatable counts healthy devices, not free ones.
	waitCounts(t, m, 4, 4)

	// Nothing left.
	_, err := m.Allocate(context.Background(), "pod-c", "c1", req(1))
	if !errors.Is(err, ErrNotEnoughDevices) || !strings.Contains(err.Error(), stubResource) || !strings.Contains(err.Error(), "requested 1, free 0") {
		t.Fatalf("third allocation: err = %v, want ErrNotEnoughDevices naming resource, requested and free", err)
	}

	// Idempotent: same IDs, plugin not asked again.
	calls := stub.allocCount()
	again := mustAllocate(t, m, "pod-a", "c1", 2)
	if !slices.Equal(again.DeviceIDs[stubResource], ida) || again.Envs["STUB_DEVICES"] != a.Envs["STUB_DEVICES"] {
		t.Fatalf("re-allocation = %v, want %v", again.DeviceIDs, a.DeviceIDs)
	}
	if stub.allocCount() != calls {
		t.Errorf("re-allocation called the plugin's Allocate again")
	}
	if _, err := m.Allocate(context.Background(), "pod-a", "c1", req(3)); err == nil {
		t.Errorf("changing the request of an allocated container succeeded")
	}

	// Non-extended resources only: nothing to do.
	none, err := m.Allocate(context.Background(), "pod-x", "c1", v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")})
	if err != nil || len(none.DeviceIDs) != 0 {
		t.Fatalf("cpu-only Allocate = %v, %v", none, err)
	}
	// Unknown extended resource.
	_, err = m.Allocate(context.Background(), "pod-x", "c1", v1.ResourceList{"example.com/other": resource.MustParse("1")})
	if !errors.Is(err, ErrResourceNotServed) {
		t.Fatalf("unknown resource: err = %v, want ErrResourceNotServed", err)
	}

	// Release frees.
	m.Release("pod-a")
	c := mustAllocate(t, m, "pod-c", "c1", 2)
	if !slices.Equal(c.DeviceIDs[stubResource], ida) {
		t.Errorf("after release got %v, want the released %v", c.DeviceIDs[stubResource], ida)
	}
}

func TestPreferredAllocationAndPreStart(t *testing.T) {
	dir := tempDir(t)
	m := startManager(t, dir)
	stub := startStub(t, dir, "stub.sock",
		&pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true, PreStartRequired: true}, devs(4)...)
	stub.mustRegister(t)
	waitCounts(t, m, 4, 4)

	a := mustAllocate(t, m, "pod-a", "c1", 2)
	if want := []string{"dev-3", "dev-2"}; !slices.Equal(a.DeviceIDs[stubResource], want) {
		t.Errorf("got %v, want the plugin's preferred %v", a.DeviceIDs[stubResource], want)
	}
	mustAllocate(t, m, "pod-a", "c1", 2) // container restart: PreStart again
	stub.mu.Lock()
	defer stub.mu.Unlock()
	if stub.prefer != 1 || len(stub.preStart) != 2 || !slices.Equal(stub.preStart[0], a.DeviceIDs[stubResource]) {
		t.Errorf("preferred calls %d, preStart calls %v", stub.prefer, stub.preStart)
	}
}

func TestPluginRestartKeepsAssignments(t *testing.T) {
	dir := tempDir(t)
	m := startManager(t, dir)
	stub := startStub(t, dir, "stub.sock", nil, devs(4)...)
	stub.mustRegister(t)
	waitCounts(t, m, 4, 4)
	a := mustAllocate(t, m, "pod-a", "c1", 2)

	stub.stop()
	waitCounts(t, m, 4, 0) // capacity kept during the grace period
	if _, err := m.Allocate(context.Background(), "pod-b", "c1", req(1)); !errors.Is(err, ErrResourceNotServed) {
		t.Fatalf("Allocate while plugin is gone: err = %v, want ErrResourceNotServed", err)
	}
	// The running container restarts: cached allocation.
	if again := mustAllocate(t, m, "pod-a", "c1", 2); !slices.Equal(again.DeviceIDs[stubResource], a.DeviceIDs[stubResource]) {
		t.Fatalf("re-allocation while plugin is gone = %v", again.DeviceIDs)
	}

	stub2 := startStub(t, dir, "stub.sock", nil, devs(4)...)
	stub2.mustRegister(t)
	waitCounts(t, m, 4, 4)
	if _, err := m.Allocate(context.Background(), "pod-b", "c1", req(3)); !errors.Is(err, ErrNotEnoughDevices) || !strings.Contains(err.Error(), "free 2") {
		t.Fatalf("over-allocation after plugin restart: err = %v", err)
	}
	b := mustAllocate(t, m, "pod-b", "c1", 2)
	if !disjoint(a.DeviceIDs[stubResource], b.DeviceIDs[stubResource]) {
		t.Fatalf("devices in use reassigned after plugin restart: %v %v", a.DeviceIDs, b.DeviceIDs)
	}
}

func TestReRegistrationReplacesEndpoint(t *testing.T) {
	dir := tempDir(t)
	m := startManager(t, dir)
	stub := startStub(t, dir, "stub.sock", nil, devs(2)...)
	stub.mustRegister(t)
	waitCounts(t, m, 2, 2)
	// A second plugin instance on a new socket takes over the resource.
	stub2 := startStub(t, dir, "stub2.sock", nil, devs(3)...)
	stub2.mustRegister(t)
	waitCounts(t, m, 3, 3)
	// The old instance going away does not affect the resource.
	stub.stop()
	mustAllocate(t, m, "pod-a", "c1", 3)
	if stub2.allocCount() != 1 || stub.allocCount() != 0 {
		t.Fatalf("Allocate went to the wrong plugin: new %d old %d", stub2.allocCount(), stub.allocCount())
	}
	waitCounts(t, m, 3, 3)
}

func TestGracePeriod(t *testing.T) {
	dir := tempDir(t)
	m := startManager(t, dir, func(m *Manager) { m.gracePeriod = 100 * time.Millisecond })
	stub := startStub(t, dir, "stub.sock", nil, devs(2)...)
	stub.mustRegister(t)
	waitCounts(t, m, 2, 2)
	stub.stop()
	waitCounts(t, m, 0, 0)
	c, _ := m.Resources()
	if _, ok := c[stubResource]; !ok {
		t.Errorf("expired resource missing from capacity; want it reported as 0")
	}
}

func TestManagerRestartKeepsAssignments(t *testing.T) {
	dir := tempDir(t)
	m1 := New(Options{Dir: dir})
	t.Cleanup(m1.Stop)
	if err := m1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stub := startStub(t, dir, "stub.sock", nil, devs(4)...)
	stub.mustRegister(t)
	waitCounts(t, m1, 4, 4)
	a := mustAllocate(t, m1, "pod-a", "c1", 2)
	m1.Stop()
	raw, err := os.ReadFile(filepath.Join(dir, DefaultCheckpointName))
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	var cp checkpointData
	if err := json.Unmarshal(raw, &cp); err != nil || len(cp.Entries) != 1 || cp.Entries[0].PodUID != "pod-a" ||
		!slices.Equal(cp.Entries[0].DeviceIDs, a.DeviceIDs[stubResource]) || len(cp.RegisteredDevices[stubResource]) != 4 {
		t.Fatalf("checkpoint content (err %v):\n%s", err, raw)
	}

	m2 := startManager(t, dir)
	// From the checkpoint, before the plugin registers again.
	if c, al := counts(m2, stubResource); c != 4 || al != 0 {
		t.Errorf("after restart: capacity %d allocatable %d, want 4 and 0", c, al)
	}
	again := mustAllocate(t, m2, "pod-a", "c1", 2)
	if !slices.Equal(again.DeviceIDs[stubResource], a.DeviceIDs[stubResource]) ||
		again.Envs["STUB_DEVICES"] != a.Envs["STUB_DEVICES"] || len(again.Devices) != 2 || len(again.Mounts) != 1 {
		t.Fatalf("after restart re-allocation = %+v, want %+v", again, a)
	}

	stub.mustRegister(t)
	waitCounts(t, m2, 4, 4)
	b := mustAllocate(t, m2, "pod-b", "c1", 2)
	if !disjoint(a.DeviceIDs[stubResource], b.DeviceIDs[stubResource]) {
		t.Fatalf("devices in use reassigned after manager restart: %v %v", a.DeviceIDs, b.DeviceIDs)
	}
	if _, err := m2.Allocate(context.Background(), "pod-c", "c1", req(1)); !errors.Is(err, ErrNotEnoughDevices) {
		t.Fatalf("err = %v, want ErrNotEnoughDevices", err)
	}

	// Only pod-b survived the restart.
	m2.Retain(func(uid string) bool { return uid == "pod-b" })
	c := mustAllocate(t, m2, "pod-c", "c1", 2)
	if !slices.Equal(c.DeviceIDs[stubResource], a.DeviceIDs[stubResource]) {
		t.Errorf("after Retain got %v, want pod-a's %v", c.DeviceIDs[stubResource], a.DeviceIDs[stubResource])
	}
}

func TestCorruptCheckpoint(t *testing.T) {
	dir := tempDir(t)
	if err := os.WriteFile(filepath.Join(dir, DefaultCheckpointName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := New(Options{Dir: dir})
	defer m.Stop()
	if err := m.Start(context.Background()); err == nil || !strings.Contains(err.Error(), DefaultCheckpointName) {
		t.Fatalf("Start with corrupt checkpoint: err = %v", err)
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.Dir != DefaultDir || o.SocketName != filepath.Base(pluginapi.KubeletSocket) || o.CheckpointFile != filepath.Join(DefaultDir, "kplex_checkpoint") {
		t.Errorf("defaults = %+v", o)
	}
	o = Options{Dir: "/x"}.withDefaults()
	if o.CheckpointFile != "/x/kplex_checkpoint" {
		t.Errorf("checkpoint default = %q", o.CheckpointFile)
	}
}
