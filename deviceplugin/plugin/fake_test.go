package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/kplex/kplex/deviceplugin/config"
	"github.com/kplex/kplex/deviceplugin/gpu"
)

// fakeBackend is 8 GPUs whose NVLinks are: 0-1 2, 2-3 2, 4-5 12, 6-7 2.
type fakeBackend struct {
	devices []gpu.Device
	events  chan gpu.HealthEvent

	mu            sync.Mutex
	initErr       error
	initCalls     int
	watchFailures int // WatchHealth fails this many times first
}

func newFakeBackend() *fakeBackend {
	b := &fakeBackend{events: make(chan gpu.HealthEvent)}
	for i := range 8 {
		b.devices = append(b.devices, gpu.Device{
			Index: i, Minor: i, Path: fmt.Sprintf("/dev/nvidia%d", i),
			UUID:      fmt.Sprintf("GPU-00000000-0000-0000-0000-00000000000%d", i),
			Name:      "NVIDIA H100 80GB HBM3",
			MemoryMiB: 81559, ComputeMajor: 9, NUMANode: i / 4,
		})
	}
	return b
}

func (b *fakeBackend) setInitErr(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.initErr = err
}

func (b *fakeBackend) Init() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.initCalls++
	return b.initErr
}

func (b *fakeBackend) Shutdown() error { return nil }
func (b *fakeBackend) Info() (gpu.Info, error) {
	return gpu.Info{DriverVersion: "550.54.15", CUDAVersion: "12.4"}, nil
}
func (b *fakeBackend) Devices() ([]gpu.Device, error) { return b.devices, nil }

func (b *fakeBackend) NVLinks(x, y int) int {
	if x > y {
		x, y = y, x
	}
	switch {
	case x == 4 && y == 5:
		return 12
	case x%2 == 0 && y == x+1:
		return 2
	}
	return 0
}

func (b *fakeBackend) WatchHealth(ctx context.Context, _ []gpu.Device, out chan<- gpu.HealthEvent) error {
	b.mu.Lock()
	fail := b.watchFailures > 0
	b.watchFailures--
	b.mu.Unlock()
	if fail {
		return errors.New("NVML event set: not supported")
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-b.events:
			select {
			case out <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// fakeKubelet serves the Registration service on dir/kubelet.sock.
type fakeKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	srv  *grpc.Server
	regs chan *pluginapi.RegisterRequest
}

func startKubelet(t *testing.T, dir string) *fakeKubelet {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(dir, kubeletSocket))
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKubelet{srv: grpc.NewServer(), regs: make(chan *pluginapi.RegisterRequest, 10)}
	pluginapi.RegisterRegistrationServer(k.srv, k)
	go k.srv.Serve(l)
	t.Cleanup(k.srv.Stop)
	return k
}

func (k *fakeKubelet) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.regs <- req
	return &pluginapi.Empty{}, nil
}

func (k *fakeKubelet) registration(t *testing.T) *pluginapi.RegisterRequest {
	t.Helper()
	select {
	case req := <-k.regs:
		return req
	case <-time.After(10 * time.Second):
		t.Fatal("no registration")
		return nil
	}
}

// harness runs a Plugin against a fakeKubelet in a temp dir (short, for
// the 108-byte limit of unix socket paths).
type harness struct {
	dir     string
	devRoot string
	backend *fakeBackend
	kubelet *fakeKubelet
	plugin  *Plugin
	cancel  context.CancelFunc
	done    chan error
}

func newHarness(t *testing.T, cfg *config.Config, backend *fakeBackend) *harness {
	t.Helper()
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if cfg == nil {
		cfg = config.Default()
	}
	// Device nodes: every GPU's but nvidia7's, and nvidiactl only.
	devRoot := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(devRoot, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"nvidia0", "nvidia1", "nvidia2", "nvidia3", "nvidia4", "nvidia5", "nvidia6", "nvidiactl"} {
		if err := os.WriteFile(filepath.Join(devRoot, "dev", n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Flags.NvidiaDevRoot = devRoot
	h := &harness{dir: dir, devRoot: devRoot, backend: backend, kubelet: startKubelet(t, dir), done: make(chan error, 1)}
	h.plugin, err = New(Options{
		Dir: dir, Config: cfg, Backend: backend,
		InitRetryInterval: 50 * time.Millisecond, HealthRetryInterval: 50 * time.Millisecond, WatchInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.plugin.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return h
}

// client connects to the plugin endpoint named in req.
func (h *harness) client(t *testing.T, req *pluginapi.RegisterRequest) pluginapi.DevicePluginClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+filepath.Join(h.dir, req.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pluginapi.NewDevicePluginClient(conn)
}

// watch opens ListAndWatch and returns its messages on a channel.
func watch(t *testing.T, c pluginapi.DevicePluginClient) <-chan []*pluginapi.Device {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := c.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan []*pluginapi.Device, 10)
	go func() {
		defer close(out)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			out <- resp.Devices
		}
	}()
	return out
}

func next(t *testing.T, ch <-chan []*pluginapi.Device) []*pluginapi.Device {
	t.Helper()
	select {
	case devs, ok := <-ch:
		if !ok {
			t.Fatal("ListAndWatch stream ended")
		}
		return devs
	case <-time.After(10 * time.Second):
		t.Fatal("no ListAndWatch message")
		return nil
	}
}

var errNoDriver = errors.New("ERROR_LIBRARY_NOT_FOUND")
