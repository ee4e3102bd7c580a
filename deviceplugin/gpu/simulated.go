package gpu

import (
	"context"
	"crypto/sha256"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxb200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// simModel is one simulated DGX system: its GPU, the go-nvml mock that
// builds it, and how its NVLinks are wired (every GPU link ends at an
// NVSwitch, as on HGX boards).
type simModel struct {
	name      string
	gpu       gpus.Config
	newServer func(...gpus.Config) *server.Server
	links     int // NVLinks per GPU
	switches  int // NVSwitch chips
}

func simModels() map[string]simModel {
	a100 := gpus.A100_SXM4_40GB
	a100.Name = strings.TrimPrefix(a100.Name, "Mock ") // go-nvml calls it "Mock NVIDIA A100-SXM4-40GB"
	return map[string]simModel{
		"h100": {"h100", gpus.H100_SXM5_80GB, dgxh100.NewWithGPUs, 18, 4},
		"h200": {"h200", gpus.H200_SXM5_141GB, dgxh200.NewWithGPUs, 18, 4},
		"b200": {"b200", gpus.B200_SXM5_180GB, dgxb200.NewWithGPUs, 18, 2},
		"a100": {"a100", a100, func(c ...gpus.Config) *server.Server { return dgxa100.NewWithGPUs(c...) }, 12, 6},
	}
}

// The PCI buses of a DGX H100's GPUs, used for every simulated model.
var simBuses = []uint32{0x1b, 0x43, 0x52, 0x61, 0x9d, 0xc3, 0xd1, 0xdf}

var simSpecRE = regexp.MustCompile(`^(h100|h200|b200|a100)(?:x([0-9]+))?$`)

// SimulatedSpecs lists the GPU models NewSimulated accepts.
func SimulatedSpecs() []string {
	var s []string
	for name := range simModels() {
		s = append(s, name+"x8")
	}
	slices.Sort(s)
	return s
}

// NewSimulated returns a Backend over go-nvml's mock of a DGX system, and
// the Simulator that injects faults into it. spec is "<model>x<N>": model
// h100 (DGX H100: NVIDIA H100 80GB HBM3, compute 9.0), h200, b200 or a100
// (DGX A100, 40 GB), N from 1 to 8 (the first N GPUs of the system; "h100"
// alone is h100x8). The Backend is NewNVML over the mock, the same code as
// on a real node.
//
// The mock is completed where go-nvml leaves it empty: events (an event set
// that returns injected events or times out), PCI bus IDs, NUMA nodes (GPUs
// 0-3 on node 0, 4-7 on node 1), temperatures, and NVLinks (all to
// NVSwitches: 18 per GPU on H100/H200/B200, 12 on A100, so NVLinks(a, b)
// is 18 or 12 for any two GPUs). UUIDs are derived from the model and the
// index, so they are the same in every run and h100x4's are h100x8's
// first four.
func NewSimulated(spec string, opts ...Option) (Backend, *Simulator, error) {
	m := simSpecRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(spec)))
	if m == nil {
		return nil, nil, fmt.Errorf("simulated GPUs %q: want <model>x<count>, model one of h100, h200, b200, a100, e.g. h100x8", spec)
	}
	model := simModels()[m[1]]
	n := 8
	if m[2] != "" {
		n, _ = strconv.Atoi(m[2])
	}
	if n < 1 || n > len(simBuses) {
		return nil, nil, fmt.Errorf("simulated GPUs %q: count must be 1 to %d", spec, len(simBuses))
	}
	srv := model.newServer(gpus.Multiple(n, model.gpu)...)
	sim := &Simulator{Server: srv, model: model, sets: map[*simEventSet]struct{}{}}
	srv.EventSetCreateFunc = sim.eventSetCreate
	for i, d := range srv.Devices {
		sd := &simDevice{Device: d.(*server.Device), index: i}
		sim.devs = append(sim.devs, sd)
		sim.setup(sd)
	}
	return NewNVML(srv, opts...), sim, nil
}

// Simulator drives simulated GPUs: it injects health events, makes a
// device stop and resume answering, and switches MIG mode. It is safe for
// concurrent use.
type Simulator struct {
	// Server is the go-nvml mock the Backend reads. Tests may replace its
	// (or its Devices') ...Func fields before the Backend uses them.
	Server *server.Server

	model simModel
	devs  []*simDevice

	mu   sync.Mutex
	sets map[*simEventSet]struct{}
}

type simDevice struct {
	*server.Device
	index   int
	faulted atomic.Bool
}

type simEventSet struct {
	mock.EventSet
	ch     chan nvml.EventData
	waited atomic.Bool
	freed  atomic.Bool

	mu    sync.Mutex
	masks map[*server.Device]uint64
}

// Model is the simulated GPU model, e.g. "h100".
func (s *Simulator) Model() string { return s.model.name }

// UUIDs lists the simulated GPUs' UUIDs in index order.
func (s *Simulator) UUIDs() []string {
	u := make([]string, len(s.devs))
	for i, d := range s.devs {
		u[i] = d.UUID
	}
	return u
}

// InjectXid sends a critical-Xid event for the GPU (an empty uuid sends one
// without a device, which NVIDIA's plugin, and this one, take as a fault of
// every GPU). Unless the Xid is one of the application Xids ignored by
// default, the GPU also stops answering (GetTemperature fails with
// ERROR_GPU_IS_LOST) until Recover.
func (s *Simulator) InjectXid(uuid string, xid uint64) error {
	d, err := s.lookup(uuid)
	if err != nil {
		return err
	}
	if d != nil && !slices.Contains(defaultIgnoredXids, xid) {
		d.faulted.Store(true)
	}
	s.deliver(d, nvml.EventTypeXidCriticalError, xid)
	return nil
}

// InjectECC sends a double-bit ECC error event for the GPU, which then
// stops answering until Recover.
func (s *Simulator) InjectECC(uuid string) error {
	d, err := s.lookup(uuid)
	if err != nil {
		return err
	}
	if d != nil {
		d.faulted.Store(true)
	}
	s.deliver(d, nvml.EventTypeDoubleBitEccError, 0)
	return nil
}

// InjectEvent sends any NVML event (e.g. nvml.EventTypeSingleBitEccError)
// without changing the GPU's state.
func (s *Simulator) InjectEvent(uuid string, eventType, data uint64) error {
	d, err := s.lookup(uuid)
	if err != nil {
		return err
	}
	s.deliver(d, eventType, data)
	return nil
}

// Recover makes the GPU answer again; the Backend reports it healthy after
// its recheck interval.
func (s *Simulator) Recover(uuid string) error {
	d, err := s.lookup(uuid)
	if err != nil {
		return err
	}
	if d == nil {
		for _, d := range s.devs {
			d.faulted.Store(false)
		}
		return nil
	}
	d.faulted.Store(false)
	return nil
}

// SetMIG turns MIG mode on or off on the GPU with the index.
func (s *Simulator) SetMIG(index int, enabled bool) error {
	if index < 0 || index >= len(s.devs) {
		return fmt.Errorf("simulated GPU index %d: have %d GPUs", index, len(s.devs))
	}
	mode := nvml.DEVICE_MIG_DISABLE
	if enabled {
		mode = nvml.DEVICE_MIG_ENABLE
	}
	s.devs[index].SetMigMode(mode)
	return nil
}

// WaitWatched blocks until a WatchHealth has registered its events and is
// waiting for them (events injected before are lost, as with NVML), or ctx
// ends.
func (s *Simulator) WaitWatched(ctx context.Context) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		for set := range s.sets {
			if set.waited.Load() {
				s.mu.Unlock()
				return nil
			}
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// lookup finds a GPU by UUID; "" is no GPU (nil).
func (s *Simulator) lookup(uuid string) (*simDevice, error) {
	if uuid == "" {
		return nil, nil
	}
	for _, d := range s.devs {
		if d.UUID == uuid {
			return d, nil
		}
	}
	return nil, fmt.Errorf("no simulated GPU %s", uuid)
}

// deliver queues an event on every event set registered for it on the
// device (or, without a device, on every set with registrations).
func (s *Simulator) deliver(d *simDevice, eventType, data uint64) {
	e := nvml.EventData{EventType: eventType, EventData: data}
	if d != nil {
		e.Device = d.Device
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for set := range s.sets {
		set.mu.Lock()
		var registered bool
		if d == nil {
			for _, m := range set.masks {
				registered = registered || m&eventType != 0
			}
		} else {
			registered = set.masks[d.Device]&eventType != 0
		}
		set.mu.Unlock()
		if !registered {
			continue
		}
		select {
		case set.ch <- e:
		default: // full: lost, as NVML drops events nobody reads
		}
	}
}

func (s *Simulator) eventSetCreate() (nvml.EventSet, nvml.Return) {
	set := &simEventSet{ch: make(chan nvml.EventData, 256), masks: map[*server.Device]uint64{}}
	set.WaitFunc = func(ms uint32) (nvml.EventData, nvml.Return) {
		if set.freed.Load() {
			return nvml.EventData{}, nvml.ERROR_UNINITIALIZED
		}
		set.waited.Store(true)
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case e := <-set.ch:
			return e, nvml.SUCCESS
		case <-t.C:
			return nvml.EventData{}, nvml.ERROR_TIMEOUT
		}
	}
	set.FreeFunc = func() nvml.Return {
		set.freed.Store(true)
		s.mu.Lock()
		delete(s.sets, set)
		s.mu.Unlock()
		return nvml.SUCCESS
	}
	s.mu.Lock()
	s.sets[set] = struct{}{}
	s.mu.Unlock()
	return set, nvml.SUCCESS
}

// simUUID is a GPU UUID derived from the model and index.
func simUUID(model string, index int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("kplex simulated GPU %s %d", model, index)))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("GPU-%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func simBusID(bus uint32) string { return fmt.Sprintf("00000000:%02X:00.0", bus) }

func pciInfo(busID string, bus, deviceID uint32) nvml.PciInfo {
	p := nvml.PciInfo{Bus: bus, PciDeviceId: deviceID}
	for i := 0; i < len(busID) && i < len(p.BusId)-1; i++ {
		p.BusId[i] = int8(busID[i])
	}
	for i := 0; i < len(busID) && i < len(p.BusIdLegacy)-1; i++ {
		p.BusIdLegacy[i] = int8(busID[i])
	}
	return p
}

// setup fills the ...Func fields go-nvml's mock device leaves nil, and
// makes its UUID and bus ID stable.
func (s *Simulator) setup(d *simDevice) {
	model := s.model
	d.UUID = simUUID(model.name, d.index)
	bus := simBuses[d.index]
	d.PciBusID = simBusID(bus)
	pci := pciInfo(d.PciBusID, bus, model.gpu.PciDeviceId)
	numa := d.index * 2 / len(simBuses)

	d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) { return pci, nvml.SUCCESS }
	d.GetNumaNodeIdFunc = func() (int, nvml.Return) { return numa, nvml.SUCCESS }
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) {
		if d.faulted.Load() {
			return 0, nvml.ERROR_GPU_IS_LOST
		}
		return uint32(33 + d.index), nvml.SUCCESS
	}
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
		return nvml.EventTypeSingleBitEccError | nvml.EventTypeDoubleBitEccError |
			nvml.EventTypePState | nvml.EventTypeXidCriticalError | nvml.EventTypeClock, nvml.SUCCESS
	}
	d.RegisterEventsFunc = func(mask uint64, es nvml.EventSet) nvml.Return {
		set, ok := es.(*simEventSet)
		if !ok || set.freed.Load() {
			return nvml.ERROR_INVALID_ARGUMENT
		}
		set.mu.Lock()
		set.masks[d.Device] |= mask
		set.mu.Unlock()
		return nvml.SUCCESS
	}

	// NVLinks: links 0..model.links-1 are up, spread over the NVSwitches,
	// whose bus IDs are made up.
	d.GetNvLinkStateFunc = func(link int) (nvml.EnableState, nvml.Return) {
		if link < 0 || link >= model.links {
			return nvml.FEATURE_DISABLED, nvml.ERROR_INVALID_ARGUMENT
		}
		return nvml.FEATURE_ENABLED, nvml.SUCCESS
	}
	d.GetNvLinkVersionFunc = func(link int) (uint32, nvml.Return) {
		if link < 0 || link >= model.links {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		return 4, nvml.SUCCESS
	}
	d.GetNvLinkRemoteDeviceTypeFunc = func(link int) (nvml.IntNvLinkDeviceType, nvml.Return) {
		if link < 0 || link >= model.links {
			return nvml.NVLINK_DEVICE_TYPE_UNKNOWN, nvml.ERROR_INVALID_ARGUMENT
		}
		return nvml.NVLINK_DEVICE_TYPE_SWITCH, nvml.SUCCESS
	}
	d.GetNvLinkRemotePciInfoFunc = func(link int) (nvml.PciInfo, nvml.Return) {
		if link < 0 || link >= model.links {
			return nvml.PciInfo{}, nvml.ERROR_INVALID_ARGUMENT
		}
		sw := uint32(0xe0 + link%model.switches)
		return pciInfo(simBusID(sw), sw, 0x22a310de), nvml.SUCCESS
	}
	d.GetTopologyCommonAncestorFunc = func(other nvml.Device) (nvml.GpuTopologyLevel, nvml.Return) {
		o, ok := other.(*server.Device)
		if !ok {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		switch {
		case o == d.Device:
			return nvml.TOPOLOGY_INTERNAL, nvml.SUCCESS
		case o.Index*2/len(simBuses) == numa:
			return nvml.TOPOLOGY_NODE, nvml.SUCCESS
		default:
			return nvml.TOPOLOGY_SYSTEM, nvml.SUCCESS
		}
	}
	d.GetP2PStatusFunc = func(nvml.Device, nvml.GpuP2PCapsIndex) (nvml.GpuP2PStatus, nvml.Return) {
		return nvml.P2P_STATUS_OK, nvml.SUCCESS
	}
}
