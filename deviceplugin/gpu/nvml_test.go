package gpu_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/kplex/kplex/deviceplugin/gpu"
)

const noDriver = "NVML not found: no NVIDIA driver on this node (libnvidia-ml.so.1): "

// Short intervals keep the health tests fast.
const (
	recheck      = 150 * time.Millisecond
	eventTimeout = 20 * time.Millisecond
)

func newSim(t *testing.T, spec string, opts ...gpu.Option) (gpu.Backend, *gpu.Simulator) {
	t.Helper()
	b, sim, err := gpu.NewSimulated(spec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Shutdown() })
	return b, sim
}

func devices(t *testing.T, b gpu.Backend) []gpu.Device {
	t.Helper()
	devs, err := b.Devices()
	if err != nil {
		t.Fatal(err)
	}
	return devs
}

func TestSimulatedH100Devices(t *testing.T) {
	b, sim := newSim(t, "h100x8")
	devs := devices(t, b)
	if len(devs) != 8 {
		t.Fatalf("got %d devices, want 8", len(devs))
	}
	seen := map[string]bool{}
	for i, d := range devs {
		if seen[d.UUID] || !strings.HasPrefix(d.UUID, "GPU-") || len(d.UUID) != len("GPU-")+36 {
			t.Errorf("device %d: UUID %q repeated or malformed", i, d.UUID)
		}
		seen[d.UUID] = true
		if d.Index != i || d.Minor != i || d.Path != "/dev/nvidia"+string(rune('0'+i)) {
			t.Errorf("device %d: index %d minor %d path %q", i, d.Index, d.Minor, d.Path)
		}
		if !strings.Contains(d.Name, "H100") || d.Name != "NVIDIA H100 80GB HBM3" {
			t.Errorf("device %d: name %q", i, d.Name)
		}
		if d.MemoryMiB != 81920 { // what go-nvml's mock says (a real H100 80GB reports 81559)
			t.Errorf("device %d: memory %d MiB", i, d.MemoryMiB)
		}
		if d.ComputeMajor != 9 || d.ComputeMinor != 0 {
			t.Errorf("device %d: compute %d.%d, want 9.0", i, d.ComputeMajor, d.ComputeMinor)
		}
		if !d.MIGCapable || d.MIGEnabled {
			t.Errorf("device %d: MIG capable %v enabled %v, want capable and off", i, d.MIGCapable, d.MIGEnabled)
		}
		if want := i / 4; d.NUMANode != want {
			t.Errorf("device %d: NUMA node %d, want %d", i, d.NUMANode, want)
		}
	}
	if got := sim.UUIDs(); strings.Join(got, ",") != strings.Join(uuids(devs), ",") {
		t.Errorf("Simulator.UUIDs() = %v, want %v", got, uuids(devs))
	}

	// UUIDs are stable: another simulator has the same, and h100x3 the
	// first three.
	b2, _ := newSim(t, "H100x8")
	if a, b := uuids(devs), uuids(devices(t, b2)); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("UUIDs differ between runs: %v vs %v", a, b)
	}
	b3, _ := newSim(t, "h100x3")
	if a, b := uuids(devs)[:3], uuids(devices(t, b3)); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("h100x3 UUIDs %v, want %v", b, a)
	}
}

func uuids(devs []gpu.Device) []string {
	var u []string
	for _, d := range devs {
		u = append(u, d.UUID)
	}
	return u
}

func TestSimulatedInfo(t *testing.T) {
	b, _ := newSim(t, "h100x8")
	info, err := b.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.DriverVersion != "550.54.15" || info.CUDAVersion != "12.4" {
		t.Errorf("Info() = %+v, want driver 550.54.15, CUDA 12.4", info)
	}
}

func TestFormatCUDAVersion(t *testing.T) {
	for v, want := range map[int]string{12040: "12.4", 12020: "12.2", 11080: "11.8", 13000: "13.0", 12090: "12.9"} {
		if got := gpu.FormatCUDAVersion(v); got != want {
			t.Errorf("FormatCUDAVersion(%d) = %q, want %q", v, got, want)
		}
	}
}

func TestSimulatedModels(t *testing.T) {
	for _, tc := range []struct {
		spec         string
		n            int
		name         string
		major, minor int
		nvlinks      int
	}{
		{"h100", 8, "NVIDIA H100 80GB HBM3", 9, 0, 18},
		{"h100x1", 1, "NVIDIA H100 80GB HBM3", 9, 0, 0},
		{"h200x2", 2, "NVIDIA H200 141GB HBM3e", 9, 0, 18},
		{"b200x4", 4, "NVIDIA B200 180GB HBM3e", 10, 0, 18},
		{"a100x8", 8, "NVIDIA A100-SXM4-40GB", 8, 0, 12},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			b, _ := newSim(t, tc.spec)
			devs := devices(t, b)
			if len(devs) != tc.n {
				t.Fatalf("%d devices, want %d", len(devs), tc.n)
			}
			d := devs[0]
			if d.Name != tc.name || d.ComputeMajor != tc.major || d.ComputeMinor != tc.minor {
				t.Errorf("device 0: %q %d.%d, want %q %d.%d", d.Name, d.ComputeMajor, d.ComputeMinor, tc.name, tc.major, tc.minor)
			}
			if got := b.NVLinks(0, len(devs)-1); got != tc.nvlinks {
				t.Errorf("NVLinks(0, %d) = %d, want %d", len(devs)-1, got, tc.nvlinks)
			}
		})
	}
	for _, spec := range []string{"", "h100x0", "h100x9", "v100x8", "h100x", "x8", "h100x8x"} {
		if _, _, err := gpu.NewSimulated(spec); err == nil {
			t.Errorf("NewSimulated(%q): no error", spec)
		}
	}
}

func TestNVLinks(t *testing.T) {
	b, _ := newSim(t, "h100x8")
	if got := b.NVLinks(0, 1); got != 18 {
		t.Errorf("NVLinks(0, 1) = %d, want 18 (all links through NVSwitches)", got)
	}
	if got := b.NVLinks(7, 2); got != 18 {
		t.Errorf("NVLinks(7, 2) = %d, want 18", got)
	}
	for _, p := range [][2]int{{0, 0}, {0, 8}, {-1, 0}} {
		if got := b.NVLinks(p[0], p[1]); got != 0 {
			t.Errorf("NVLinks(%d, %d) = %d, want 0", p[0], p[1], got)
		}
	}
}

// TestNVLinksDirect wires GPUs in pairs with direct links (NVLink bridges,
// as on PCIe cards): 0-1 share 4 links, 2-3 share 4, nothing else.
func TestNVLinksDirect(t *testing.T) {
	b, sim := newSim(t, "h100x4")
	devs := make([]*server.Device, 4)
	for i := range devs {
		devs[i] = sim.Server.Devices[i].(*server.Device)
	}
	for i, d := range devs {
		peer := devs[i^1]
		peerPci, _ := peer.GetPciInfo()
		d.GetNvLinkStateFunc = func(l int) (nvml.EnableState, nvml.Return) {
			if l >= 4 {
				return nvml.FEATURE_DISABLED, nvml.ERROR_INVALID_ARGUMENT
			}
			return nvml.FEATURE_ENABLED, nvml.SUCCESS
		}
		d.GetNvLinkRemoteDeviceTypeFunc = func(int) (nvml.IntNvLinkDeviceType, nvml.Return) {
			return nvml.NVLINK_DEVICE_TYPE_GPU, nvml.SUCCESS
		}
		d.GetNvLinkRemotePciInfoFunc = func(int) (nvml.PciInfo, nvml.Return) { return peerPci, nvml.SUCCESS }
	}
	for _, tc := range []struct{ a, b, want int }{{0, 1, 4}, {1, 0, 4}, {2, 3, 4}, {0, 2, 0}, {1, 3, 0}} {
		if got := b.NVLinks(tc.a, tc.b); got != tc.want {
			t.Errorf("NVLinks(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	// Answers are cached until the next Init; then a GPU without NVLink.
	devs[0].GetNvLinkStateFunc = func(int) (nvml.EnableState, nvml.Return) {
		return nvml.FEATURE_DISABLED, nvml.ERROR_NOT_SUPPORTED
	}
	if got := b.NVLinks(1, 0); got != 4 {
		t.Errorf("cached NVLinks(1, 0) = %d, want 4", got)
	}
	if err := b.Init(); err != nil {
		t.Fatal(err)
	}
	if got := b.NVLinks(0, 1); got != 0 {
		t.Errorf("NVLinks without NVLink = %d, want 0", got)
	}
}

func TestSimulatedMIG(t *testing.T) {
	b, sim := newSim(t, "h100x8")
	if err := sim.SetMIG(3, true); err != nil {
		t.Fatal(err)
	}
	for i, d := range devices(t, b) {
		if d.MIGEnabled != (i == 3) {
			t.Errorf("device %d: MIGEnabled %v", i, d.MIGEnabled)
		}
	}
	if err := sim.SetMIG(3, false); err != nil {
		t.Fatal(err)
	}
	if devices(t, b)[3].MIGEnabled {
		t.Error("device 3: MIG still enabled")
	}
	if err := sim.SetMIG(8, true); err == nil {
		t.Error("SetMIG(8): no error")
	}
}

func TestInitWithoutLibrary(t *testing.T) {
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	err := gpu.NewNVML(lib).Init()
	if err == nil || err.Error() != noDriver+"ERROR_LIBRARY_NOT_FOUND" || !errors.Is(err, gpu.ErrNoDriver) {
		t.Fatalf("Init() = %v, want %q wrapping ErrNoDriver", err, noDriver+"ERROR_LIBRARY_NOT_FOUND")
	}

	lib.InitFunc = func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }
	if err := gpu.NewNVML(lib).Init(); !errors.Is(err, gpu.ErrNoDriver) || !strings.Contains(err.Error(), "kernel module is not loaded") {
		t.Errorf("Init() without the kernel module = %v", err)
	}
	lib.InitFunc = func() nvml.Return { return nvml.ERROR_UNKNOWN }
	if err := gpu.NewNVML(lib).Init(); err == nil || errors.Is(err, gpu.ErrNoDriver) {
		t.Errorf("Init() with an unknown error = %v", err)
	}
}

// TestInitRealLibrary runs the real path: go-nvml dlopens libnvidia-ml.so.1,
// which is not on machines without an NVIDIA driver.
func TestInitRealLibrary(t *testing.T) {
	b := gpu.NewNVML(nvml.New())
	err := b.Init()
	if err == nil {
		b.Shutdown()
		t.Skip("this machine has an NVIDIA driver")
	}
	if !errors.Is(err, gpu.ErrNoDriver) || !strings.HasPrefix(err.Error(), noDriver) {
		t.Fatalf("Init() = %v, want %q...", err, noDriver)
	}
	t.Log(err)
}

func TestParseHealthChecks(t *testing.T) {
	for _, tc := range []struct {
		in       string
		disabled bool
		ignored  []uint64
		critical []uint64
		err      bool
	}{
		{in: "", ignored: []uint64{13, 31, 43, 45, 68, 109}, critical: []uint64{48, 63, 64, 74, 79, 94, 95}},
		{in: "all", disabled: true},
		{in: "xids", disabled: true},
		{in: "ALL", disabled: true},
		{in: "79, 94", ignored: []uint64{13, 79, 94}, critical: []uint64{48, 95}},
		{in: "79 94", ignored: []uint64{79, 94}},
		{in: "79,nope", err: true, ignored: []uint64{13}, critical: []uint64{79}},
	} {
		h, err := gpu.ParseHealthChecks(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseHealthChecks(%q): error %v", tc.in, err)
		}
		if h.Disabled != tc.disabled {
			t.Errorf("ParseHealthChecks(%q): disabled %v", tc.in, h.Disabled)
		}
		for _, x := range tc.ignored {
			if h.Critical(x) {
				t.Errorf("ParseHealthChecks(%q): Xid %d critical", tc.in, x)
			}
		}
		for _, x := range tc.critical {
			if !h.Critical(x) {
				t.Errorf("ParseHealthChecks(%q): Xid %d not critical", tc.in, x)
			}
		}
	}
}

// watch starts WatchHealth on all devices and waits until it listens.
func watch(t *testing.T, b gpu.Backend, sim *gpu.Simulator) (<-chan gpu.HealthEvent, []gpu.Device) {
	t.Helper()
	devs := devices(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan gpu.HealthEvent, 64)
	done := make(chan error, 1)
	go func() { done <- b.WatchHealth(ctx, devs, ch) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("WatchHealth: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Error("WatchHealth did not return after its context ended")
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := sim.WaitWatched(wctx); err != nil {
		select {
		case err := <-done:
			t.Fatalf("WatchHealth returned %v", err)
		default:
		}
		t.Fatal(err)
	}
	return ch, devs
}

func expectEvent(t *testing.T, ch <-chan gpu.HealthEvent, uuid string, healthy bool) gpu.HealthEvent {
	t.Helper()
	select {
	case e := <-ch:
		if e.UUID != uuid || e.Healthy != healthy {
			t.Fatalf("event %+v, want UUID %s healthy %v", e, uuid, healthy)
		}
		return e
	case <-time.After(3 * time.Second):
		t.Fatalf("no event for %s (healthy %v)", uuid, healthy)
	}
	return gpu.HealthEvent{}
}

func expectNone(t *testing.T, ch <-chan gpu.HealthEvent, d time.Duration) {
	t.Helper()
	select {
	case e := <-ch:
		t.Fatalf("unexpected event %+v", e)
	case <-time.After(d):
	}
}

func healthOpts() []gpu.Option {
	return []gpu.Option{
		gpu.WithHealthChecks(gpu.DefaultHealthChecks()),
		gpu.WithRecheckInterval(recheck),
		gpu.WithEventTimeout(eventTimeout),
	}
}

func TestHealthXid(t *testing.T) {
	b, sim := newSim(t, "h100x8", healthOpts()...)
	ch, devs := watch(t, b, sim)
	u := devs[2].UUID

	// An application Xid is not a device fault.
	if err := sim.InjectXid(u, 13); err != nil {
		t.Fatal(err)
	}
	expectNone(t, ch, 2*recheck)

	// Xid 79 (fallen off the bus): unhealthy, that device only, and it
	// stays so while the device does not answer.
	sim.InjectXid(u, 79)
	if e := expectEvent(t, ch, u, false); e.Reason != "Xid 79" {
		t.Errorf("reason %q", e.Reason)
	}
	// A second error on an unhealthy device is not a change.
	sim.InjectXid(u, 48)
	expectNone(t, ch, 3*recheck)

	// Once it answers again, it turns healthy after the window.
	start := time.Now()
	sim.Recover(u)
	expectEvent(t, ch, u, true)
	if d := time.Since(start); d > 2*recheck+500*time.Millisecond {
		t.Errorf("recovered after %v, want about %v", d, recheck)
	}
	expectNone(t, ch, 2*recheck)
}

func TestHealthRecoveryWaitsForTheWindow(t *testing.T) {
	const long = 600 * time.Millisecond
	b, sim := newSim(t, "h100x2", gpu.WithHealthChecks(gpu.DefaultHealthChecks()),
		gpu.WithRecheckInterval(long), gpu.WithEventTimeout(eventTimeout))
	ch, devs := watch(t, b, sim)
	u := devs[1].UUID
	start := time.Now()
	sim.InjectXid(u, 79)
	expectEvent(t, ch, u, false)
	sim.Recover(u) // answers at once, but the window has not passed
	expectEvent(t, ch, u, true)
	if d := time.Since(start); d < long {
		t.Errorf("healthy again after %v, before the %v window", d, long)
	}
}

func TestHealthECC(t *testing.T) {
	b, sim := newSim(t, "h100x8", healthOpts()...)
	ch, devs := watch(t, b, sim)
	u := devs[5].UUID

	// Single-bit errors are corrected: no event.
	sim.InjectEvent(u, nvml.EventTypeSingleBitEccError, 0)
	expectNone(t, ch, 2*recheck)

	sim.InjectECC(u)
	if e := expectEvent(t, ch, u, false); !strings.Contains(e.Reason, "double-bit ECC") {
		t.Errorf("reason %q", e.Reason)
	}
	expectNone(t, ch, 2*recheck)
	sim.Recover(u)
	expectEvent(t, ch, u, true)
}

func TestHealthUnknownDevice(t *testing.T) {
	b, sim := newSim(t, "h100x4", healthOpts()...)
	ch, devs := watch(t, b, sim)
	sim.InjectXid("", 79) // an event without a device: all are suspect
	got := map[string]bool{}
	for range devs {
		select {
		case e := <-ch:
			if e.Healthy {
				t.Fatalf("event %+v, want unhealthy", e)
			}
			got[e.UUID] = true
		case <-time.After(3 * time.Second):
			t.Fatalf("got %d unhealthy events, want %d", len(got), len(devs))
		}
	}
	if len(got) != len(devs) {
		t.Errorf("unhealthy: %v, want all %d", got, len(devs))
	}
	// The devices never stopped answering: all recover.
	for range devs {
		select {
		case e := <-ch:
			if !e.Healthy {
				t.Fatalf("event %+v, want healthy", e)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("devices did not recover")
		}
	}
	if err := sim.InjectXid("GPU-nope", 79); err == nil {
		t.Error("InjectXid for an unknown UUID: no error")
	}
}

func TestHealthIgnoredXidsAndUnsupportedDevices(t *testing.T) {
	h, err := gpu.ParseHealthChecks("79")
	if err != nil {
		t.Fatal(err)
	}
	b, sim := newSim(t, "h100x4", gpu.WithHealthChecks(h), gpu.WithRecheckInterval(recheck), gpu.WithEventTimeout(eventTimeout))
	// Device 3 does not support events: it is skipped, not an error.
	sim.Server.Devices[3].(*server.Device).RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return {
		return nvml.ERROR_NOT_SUPPORTED
	}
	ch, devs := watch(t, b, sim)
	sim.InjectXid(devs[0].UUID, 79) // ignored by configuration
	sim.InjectXid(devs[3].UUID, 48) // nobody registered: lost
	expectNone(t, ch, 2*recheck)
	sim.InjectXid(devs[1].UUID, 48)
	expectEvent(t, ch, devs[1].UUID, false)
}

func TestHealthDisabled(t *testing.T) {
	t.Setenv(gpu.DisableHealthChecksEnv, "all")
	b, sim := newSim(t, "h100x8")
	devs := devices(t, b)
	ch := make(chan gpu.HealthEvent, 8)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- b.WatchHealth(ctx, devs, ch) }()
	// It watches nothing, quietly, until its context ends.
	sim.InjectXid(devs[0].UUID, 79)
	expectNone(t, ch, 100*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("WatchHealth with health checks disabled returned %v before its context ended", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WatchHealth = %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WatchHealth with health checks disabled did not return after its context ended")
	}
}

func TestHealthStopsWithContext(t *testing.T) {
	// With the default 5 s event wait, WatchHealth still ends within one
	// wait of its context ending; with a short one, quickly.
	b, sim := newSim(t, "h100x1", healthOpts()...)
	devs := devices(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.WatchHealth(ctx, devs, make(chan gpu.HealthEvent)) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := sim.WaitWatched(wctx); err != nil {
		t.Fatal(err)
	}
	// An event nobody reads must not block the return either.
	sim.InjectXid(devs[0].UUID, 79)
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("WatchHealth did not return")
	}
}

func TestWatchHealthUnknownUUID(t *testing.T) {
	b, _ := newSim(t, "h100x1", healthOpts()...)
	err := b.WatchHealth(context.Background(), []gpu.Device{{UUID: "GPU-nope"}}, make(chan gpu.HealthEvent))
	if err == nil {
		t.Fatal("WatchHealth of an unknown device: no error")
	}
}
