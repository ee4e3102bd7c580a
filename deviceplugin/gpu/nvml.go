package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNoDriver is wrapped by Init's error when the node has no usable NVIDIA
// driver: libnvidia-ml.so.1 cannot be loaded, or the kernel module is not
// loaded. Test it with errors.Is.
var ErrNoDriver = errors.New("no NVIDIA driver on this node")

// Defaults of the NVML backend; see the With... options.
const (
	// DefaultRecheckInterval is how long a device must stay free of new
	// errors, and answer, before it is reported healthy again.
	DefaultRecheckInterval = 30 * time.Second
	// DefaultEventTimeout is how long one EventSet.Wait blocks; it bounds
	// how long WatchHealth takes to return after its context ends.
	DefaultEventTimeout = 5 * time.Second
)

// The events WatchHealth registers for on each device.
const healthEventMask = uint64(nvml.EventTypeXidCriticalError |
	nvml.EventTypeDoubleBitEccError |
	nvml.EventTypeSingleBitEccError)

// Option configures the NVML backend.
type Option func(*nvmlBackend)

// WithHealthChecks sets which health checks run; the default is read from
// the environment (HealthChecksFromEnv) when the backend is made, and when
// the environment cannot be parsed the defaults (all checks, NVIDIA's
// ignored Xids) are used.
func WithHealthChecks(h HealthChecks) Option {
	return func(b *nvmlBackend) { b.health = h }
}

// WithRecheckInterval sets the recovery window (DefaultRecheckInterval when
// 0): a device that turned unhealthy is re-checked once the last error on
// it is that old, and then every interval, and reported healthy again when
// it answers. A negative interval disables recovery: unhealthy devices stay
// unhealthy until the process restarts.
func WithRecheckInterval(d time.Duration) Option {
	return func(b *nvmlBackend) { b.recheck = d }
}

// WithEventTimeout sets how long one EventSet.Wait blocks
// (DefaultEventTimeout when 0).
func WithEventTimeout(d time.Duration) Option {
	return func(b *nvmlBackend) { b.eventTimeout = d }
}

// WithLogger sets the logger (slog.Default() when nil or unset).
func WithLogger(l *slog.Logger) Option {
	return func(b *nvmlBackend) { b.log = l }
}

// NewNVML returns the Backend over an NVML library: nvml.New() on a real
// node, or one of go-nvml's mocks (NewSimulated uses this same code over
// the mock).
func NewNVML(lib nvml.Interface, opts ...Option) Backend {
	b := &nvmlBackend{lib: lib}
	if h, err := HealthChecksFromEnv(); err == nil {
		b.health = h
	} else {
		b.health = DefaultHealthChecks()
	}
	for _, o := range opts {
		o(b)
	}
	if b.recheck == 0 {
		b.recheck = DefaultRecheckInterval
	}
	if b.eventTimeout <= 0 {
		b.eventTimeout = DefaultEventTimeout
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	return b
}

type nvmlBackend struct {
	lib          nvml.Interface
	health       HealthChecks
	recheck      time.Duration
	eventTimeout time.Duration
	log          *slog.Logger

	mu      sync.Mutex
	nvlinks map[[2]int]int // NVLinks' answers: the topology does not change while NVML runs
}

var _ Backend = (*nvmlBackend)(nil)

// Init loads and initialises NVML.
func (b *nvmlBackend) Init() error {
	b.mu.Lock()
	b.nvlinks = nil
	b.mu.Unlock()
	ret := b.lib.Init()
	switch ret {
	case nvml.SUCCESS:
		return nil
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return fmt.Errorf("NVML not found: %w (libnvidia-ml.so.1): %v", ErrNoDriver, ret)
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return fmt.Errorf("NVML: %w: the NVIDIA kernel module is not loaded: %v", ErrNoDriver, ret)
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return fmt.Errorf("NVML: the NVIDIA driver and libnvidia-ml.so.1 versions differ (reload the kernel module or reboot): %v", ret)
	case nvml.ERROR_NO_PERMISSION:
		return fmt.Errorf("NVML: no permission to open the NVIDIA devices: %v", ret)
	default:
		return fmt.Errorf("NVML init: %v", ret)
	}
}

func (b *nvmlBackend) Shutdown() error {
	if ret := b.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("NVML shutdown: %v", ret)
	}
	return nil
}

// Info returns the driver version and the driver's CUDA version, as
// "<major>.<minor>" (NVML reports 12040 for 12.4).
func (b *nvmlBackend) Info() (Info, error) {
	drv, ret := b.lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		return Info{}, fmt.Errorf("NVML driver version: %v", ret)
	}
	cuda, ret := b.lib.SystemGetCudaDriverVersion()
	if ret != nvml.SUCCESS {
		return Info{}, fmt.Errorf("NVML CUDA driver version: %v", ret)
	}
	return Info{DriverVersion: drv, CUDAVersion: FormatCUDAVersion(cuda)}, nil
}

// FormatCUDAVersion turns NVML's CUDA version number (1000*major +
// 10*minor, e.g. 12040) into "12.4".
func FormatCUDAVersion(v int) string {
	return fmt.Sprintf("%d.%d", v/1000, (v%1000)/10)
}

// Devices lists the GPUs in NVML's index order. UUID, name, memory, compute
// capability and minor number must be readable; MIG mode (off and not
// capable when the device does not support it) and the NUMA node (-1 when
// unknown) are best effort.
func (b *nvmlBackend) Devices() ([]Device, error) {
	n, ret := b.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("NVML device count: %v", ret)
	}
	devs := make([]Device, 0, n)
	for i := 0; i < n; i++ {
		d, err := b.device(i)
		if err != nil {
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, nil
}

func (b *nvmlBackend) device(i int) (Device, error) {
	h, ret := b.lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return Device{}, fmt.Errorf("NVML device %d: handle: %v", i, ret)
	}
	d := Device{Index: i, NUMANode: -1}
	if d.UUID, ret = h.GetUUID(); ret != nvml.SUCCESS {
		return Device{}, fmt.Errorf("NVML device %d: UUID: %v", i, ret)
	}
	if d.Name, ret = h.GetName(); ret != nvml.SUCCESS {
		return Device{}, fmt.Errorf("NVML device %d (%s): name: %v", i, d.UUID, ret)
	}
	mem, ret := h.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return Device{}, fmt.Errorf("NVML device %d (%s): memory: %v", i, d.UUID, ret)
	}
	d.MemoryMiB = mem.Total / (1024 * 1024)
	if d.ComputeMajor, d.ComputeMinor, ret = h.GetCudaComputeCapability(); ret != nvml.SUCCESS {
		return Device{}, fmt.Errorf("NVML device %d (%s): compute capability: %v", i, d.UUID, ret)
	}
	if d.Minor, ret = h.GetMinorNumber(); ret != nvml.SUCCESS {
		return Device{}, fmt.Errorf("NVML device %d (%s): minor number: %v", i, d.UUID, ret)
	}
	d.Path = fmt.Sprintf("/dev/nvidia%d", d.Minor)
	if cur, _, ret := h.GetMigMode(); ret == nvml.SUCCESS {
		d.MIGCapable = true
		d.MIGEnabled = cur == nvml.DEVICE_MIG_ENABLE
	}
	d.NUMANode = b.numaNode(h)
	return d, nil
}

// hasSymbol says whether the library has a function: calling one that an
// older driver lacks would abort the process.
func (b *nvmlBackend) hasSymbol(name string) bool {
	ext := b.lib.Extensions()
	if ext == nil {
		return true
	}
	return ext.LookupSymbol(name) == nil
}

// numaNode asks NVML (newer drivers), then sysfs by PCI bus ID; -1 when
// neither knows.
func (b *nvmlBackend) numaNode(h nvml.Device) int {
	if b.hasSymbol("nvmlDeviceGetNumaNodeId") {
		if n, ret := h.GetNumaNodeId(); ret == nvml.SUCCESS {
			return n
		}
	}
	pci, ret := h.GetPciInfo()
	if ret != nvml.SUCCESS {
		return -1
	}
	id := sysfsBusID(busID(pci))
	if id == "" {
		return -1
	}
	raw, err := os.ReadFile(filepath.Join("/sys/bus/pci/devices", id, "numa_node"))
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// busID is NVML's PCI bus ID string, e.g. "00000000:1B:00.0".
func busID(p nvml.PciInfo) string {
	var sb strings.Builder
	for _, c := range p.BusId {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// sysfsBusID turns NVML's "00000000:1B:00.0" into sysfs's "0000:1b:00.0".
func sysfsBusID(id string) string {
	id = strings.ToLower(id)
	domain, rest, ok := strings.Cut(id, ":")
	if !ok {
		return ""
	}
	if len(domain) > 4 {
		domain = domain[len(domain)-4:]
	}
	return domain + ":" + rest
}

// NVLinks counts the NVLinks between devices a and b (NVML indexes): for
// each enabled link of a (GetNvLinkState), a link whose remote end
// (GetNvLinkRemotePciInfo) is b counts directly; on NVSwitch systems (HGX
// H100 and the like, where every GPU link ends at a switch, as
// GetNvLinkRemoteDeviceType tells) all GPUs on the fabric reach each other
// at full width, so the count is min(a's switch links, b's switch links).
// 0 when either device has no NVLink, NVML does not support the queries,
// or the indexes are unknown. Answers are cached until the next Init.
func (b *nvmlBackend) NVLinks(a, bi int) int {
	if a == bi {
		return 0
	}
	key := [2]int{min(a, bi), max(a, bi)}
	b.mu.Lock()
	n, ok := b.nvlinks[key]
	b.mu.Unlock()
	if ok {
		return n
	}
	n, ok = b.countNVLinks(a, bi)
	if !ok {
		return 0
	}
	b.mu.Lock()
	if b.nvlinks == nil {
		b.nvlinks = map[[2]int]int{}
	}
	b.nvlinks[key] = n
	b.mu.Unlock()
	return n
}

// countNVLinks asks NVML; false when it cannot (no such device).
func (b *nvmlBackend) countNVLinks(a, bi int) (int, bool) {
	da, ret := b.lib.DeviceGetHandleByIndex(a)
	if ret != nvml.SUCCESS {
		return 0, false
	}
	db, ret := b.lib.DeviceGetHandleByIndex(bi)
	if ret != nvml.SUCCESS {
		return 0, false
	}
	pb, ret := db.GetPciInfo()
	if ret != nvml.SUCCESS {
		return 0, false
	}
	target := strings.ToLower(busID(pb))
	direct, switchA := b.links(da, target)
	if switchA == 0 {
		return direct, true
	}
	_, switchB := b.links(db, "")
	return direct + min(switchA, switchB), true
}

// links counts dev's enabled NVLinks that end at the GPU with PCI bus ID
// target, and those that end at an NVSwitch.
func (b *nvmlBackend) links(dev nvml.Device, target string) (direct, toSwitch int) {
	haveType := b.hasSymbol("nvmlDeviceGetNvLinkRemoteDeviceType")
	for l := 0; l < nvml.NVLINK_MAX_LINKS; l++ {
		state, ret := dev.GetNvLinkState(l)
		if ret == nvml.ERROR_NOT_SUPPORTED && l == 0 {
			return 0, 0 // no NVLink on this device
		}
		if ret != nvml.SUCCESS || state != nvml.FEATURE_ENABLED {
			continue
		}
		if haveType {
			if t, ret := dev.GetNvLinkRemoteDeviceType(l); ret == nvml.SUCCESS && t == nvml.NVLINK_DEVICE_TYPE_SWITCH {
				toSwitch++
				continue
			}
		}
		if target == "" {
			continue
		}
		remote, ret := dev.GetNvLinkRemotePciInfo(l)
		if ret == nvml.SUCCESS && strings.ToLower(busID(remote)) == target {
			direct++
		}
	}
	return direct, toSwitch
}

// WatchHealth watches NVML events until ctx ends.
//
// It registers for critical Xid and ECC events on every device (a device
// that does not support events is skipped: it is never reported unhealthy),
// then waits for events:
//   - a critical Xid (one not ignored by the HealthChecks) or a double-bit
//     ECC error turns the device unhealthy; single-bit ECC errors are
//     corrected by the hardware and ignored;
//   - an event without a usable device (nil, or whose UUID cannot be read),
//     and a lost GPU reported by the event set itself, turn every device
//     unhealthy; events of devices not in the list are ignored;
//   - recovery: NVML has no "recovered" event, so an unhealthy device is
//     re-checked once its last error is one recheck interval old, and then
//     every interval; it is reported healthy again when it answers (GetUUID
//     returns its UUID and GetTemperature answers or is not supported). An
//     error in the meantime restarts the window.
//
// Only changes are sent: a device already unhealthy is not reported again.
// When health checks are disabled (DP_DISABLE_HEALTHCHECKS=all) it sends
// nothing and returns when ctx ends, as a watch that saw nothing would.
func (b *nvmlBackend) WatchHealth(ctx context.Context, devices []Device, events chan<- HealthEvent) error {
	if b.health.Disabled {
		b.log.Info("GPU health checks disabled")
		<-ctx.Done()
		return nil
	}
	set, ret := b.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("NVML event set: %v", ret)
	}
	defer set.Free()

	w := &watcher{b: b, events: events, byUUID: map[string]*watched{}}
	for _, d := range devices {
		h, ret := b.lib.DeviceGetHandleByUUID(d.UUID)
		if ret != nvml.SUCCESS {
			return fmt.Errorf("NVML device %s: %v", d.UUID, ret)
		}
		wd := &watched{uuid: d.UUID, handle: h, healthy: true}
		w.all = append(w.all, wd)
		w.byUUID[d.UUID] = wd

		mask := healthEventMask
		if supported, ret := h.GetSupportedEventTypes(); ret == nvml.SUCCESS {
			mask &= supported
		}
		if mask == 0 {
			b.log.Warn("GPU does not support health events; its health is not watched", "uuid", d.UUID)
			continue
		}
		switch ret := h.RegisterEvents(mask, set); ret {
		case nvml.SUCCESS:
		case nvml.ERROR_NOT_SUPPORTED:
			b.log.Warn("GPU does not support health events; its health is not watched", "uuid", d.UUID)
		default:
			return fmt.Errorf("NVML device %s: register events: %v", d.UUID, ret)
		}
	}

	timeout := b.eventTimeout
	if b.recheck > 0 && b.recheck < timeout {
		timeout = b.recheck
	}
	ms := uint32(max(timeout.Milliseconds(), 1))
	for ctx.Err() == nil {
		e, ret := set.Wait(ms)
		switch ret {
		case nvml.SUCCESS:
			if !w.handle(ctx, e) {
				return nil
			}
		case nvml.ERROR_TIMEOUT:
		case nvml.ERROR_GPU_IS_LOST:
			if !w.faultAll(ctx, "GPU lost (NVML event wait: ERROR_GPU_IS_LOST)") {
				return nil
			}
			sleep(ctx, timeout)
		default:
			b.log.Warn("NVML event wait failed", "error", ret)
			sleep(ctx, timeout)
		}
		if !w.recheckDue(ctx) {
			return nil
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(min(d, time.Second))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

type watched struct {
	uuid      string
	handle    nvml.Device
	healthy   bool
	lastFault time.Time
	lastProbe time.Time
}

type watcher struct {
	b      *nvmlBackend
	events chan<- HealthEvent
	all    []*watched
	byUUID map[string]*watched
}

// handle acts on one event; false when ctx ended while sending.
func (w *watcher) handle(ctx context.Context, e nvml.EventData) bool {
	var reason string
	switch {
	case e.EventType&nvml.EventTypeXidCriticalError != 0:
		if !w.b.health.Critical(e.EventData) {
			w.b.log.Info("ignoring application Xid", "xid", e.EventData)
			return true
		}
		reason = fmt.Sprintf("Xid %d", e.EventData)
	case e.EventType&nvml.EventTypeDoubleBitEccError != 0:
		reason = "double-bit ECC error"
	default:
		// Single-bit ECC errors are corrected; nothing else is registered.
		return true
	}
	if e.Device == nil {
		return w.faultAll(ctx, reason+" on an unknown device")
	}
	uuid, ret := e.Device.GetUUID()
	if ret != nvml.SUCCESS {
		return w.faultAll(ctx, fmt.Sprintf("%s on a device whose UUID cannot be read (%v)", reason, ret))
	}
	d, ok := w.byUUID[uuid]
	if !ok {
		w.b.log.Info("ignoring health event of an unwatched GPU", "uuid", uuid, "reason", reason)
		return true
	}
	return w.fault(ctx, d, reason)
}

func (w *watcher) faultAll(ctx context.Context, reason string) bool {
	for _, d := range w.all {
		if !w.fault(ctx, d, reason) {
			return false
		}
	}
	return true
}

func (w *watcher) fault(ctx context.Context, d *watched, reason string) bool {
	d.lastFault = time.Now()
	if !d.healthy {
		return true
	}
	d.healthy = false
	w.b.log.Warn("GPU unhealthy", "uuid", d.uuid, "reason", reason)
	return w.send(ctx, HealthEvent{UUID: d.uuid, Healthy: false, Reason: reason})
}

// recheckDue probes the unhealthy devices whose window has passed.
func (w *watcher) recheckDue(ctx context.Context) bool {
	if w.b.recheck <= 0 {
		return true
	}
	now := time.Now()
	for _, d := range w.all {
		if d.healthy || now.Sub(d.lastFault) < w.b.recheck || now.Sub(d.lastProbe) < w.b.recheck {
			continue
		}
		d.lastProbe = now
		if err := w.probe(d); err != nil {
			w.b.log.Info("GPU still not answering", "uuid", d.uuid, "error", err)
			continue
		}
		d.healthy = true
		reason := fmt.Sprintf("no error for %v and the device answers", w.b.recheck)
		w.b.log.Info("GPU healthy again", "uuid", d.uuid)
		if !w.send(ctx, HealthEvent{UUID: d.uuid, Healthy: true, Reason: reason}) {
			return false
		}
	}
	return true
}

// probe is the cheap check of a device's recovery.
func (w *watcher) probe(d *watched) error {
	uuid, ret := d.handle.GetUUID()
	if ret != nvml.SUCCESS {
		return ret
	}
	if uuid != d.uuid {
		return fmt.Errorf("UUID changed to %s", uuid)
	}
	if !w.b.hasSymbol("nvmlDeviceGetTemperature") {
		return nil
	}
	if _, ret := d.handle.GetTemperature(nvml.TEMPERATURE_GPU); ret != nvml.SUCCESS && ret != nvml.ERROR_NOT_SUPPORTED {
		return ret
	}
	return nil
}

func (w *watcher) send(ctx context.Context, e HealthEvent) bool {
	select {
	case w.events <- e:
		return true
	case <-ctx.Done():
		return false
	}
}
