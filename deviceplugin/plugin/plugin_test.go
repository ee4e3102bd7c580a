package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/kplex/kplex/deviceplugin/config"
	"github.com/kplex/kplex/deviceplugin/gpu"
)

func uuid(i int) string { return fmt.Sprintf("GPU-00000000-0000-0000-0000-00000000000%d", i) }

func timeSliced(replicas int, rename bool, failGreaterThanOne bool) *config.Config {
	c := config.Default()
	c.Sharing.TimeSlicing = config.ReplicatedResources{
		RenameByDefault:            rename,
		FailRequestsGreaterThanOne: failGreaterThanOne,
		Resources:                  []config.ReplicatedResource{{Name: config.GPUResource, Replicas: replicas}},
	}
	return c
}

func ids(devs []*pluginapi.Device) []string {
	var out []string
	for _, d := range devs {
		out = append(out, d.ID)
	}
	return out
}

func healthOf(devs []*pluginapi.Device) map[string]string {
	out := map[string]string{}
	for _, d := range devs {
		out[d.ID] = d.Health
	}
	return out
}

func TestRegisterAndListAndWatch(t *testing.T) {
	h := newHarness(t, nil, newFakeBackend())
	req := h.kubelet.registration(t)
	if req.Version != pluginapi.Version || req.ResourceName != "nvidia.com/gpu" || req.Endpoint != "kplex-nvidia-gpu.sock" ||
		!req.GetOptions().GetGetPreferredAllocationAvailable() {
		t.Errorf("registration = %+v", req)
	}
	c := h.client(t, req)
	opts, err := c.GetDevicePluginOptions(context.Background(), &pluginapi.Empty{})
	if err != nil || opts.PreStartRequired || !opts.GetPreferredAllocationAvailable {
		t.Errorf("GetDevicePluginOptions = %+v, %v", opts, err)
	}
	devs := next(t, watch(t, c))
	if len(devs) != 8 {
		t.Fatalf("ListAndWatch sent %d devices, want 8", len(devs))
	}
	for i, d := range devs {
		if d.ID != uuid(i) || d.Health != pluginapi.Healthy || d.Topology.GetNodes()[0].GetID() != int64(i/4) {
			t.Errorf("device %d = %+v", i, d)
		}
	}
	if got := h.plugin.Devices(); len(got) != 8 {
		t.Errorf("Devices() = %d GPUs", len(got))
	}
	if s, r, renamed := h.plugin.Sharing(); s != SharingNone || r != 1 || renamed {
		t.Errorf("Sharing() = %q, %d, %v", s, r, renamed)
	}
}

func TestTimeSlicing(t *testing.T) {
	for _, tc := range []struct {
		rename           bool
		resource, socket string
	}{
		{false, "nvidia.com/gpu", "kplex-nvidia-gpu.sock"},
		{true, "nvidia.com/gpu.shared", "kplex-nvidia-gpu.shared.sock"},
	} {
		t.Run(tc.resource, func(t *testing.T) {
			h := newHarness(t, timeSliced(4, tc.rename, false), newFakeBackend())
			req := h.kubelet.registration(t)
			if req.ResourceName != tc.resource || req.Endpoint != tc.socket {
				t.Errorf("registered %s at %s, want %s at %s", req.ResourceName, req.Endpoint, tc.resource, tc.socket)
			}
			devs := next(t, watch(t, h.client(t, req)))
			var want []string
			for g := range 8 {
				for n := range 4 {
					want = append(want, fmt.Sprintf("%s::%d", uuid(g), n))
				}
			}
			if got := ids(devs); !slices.Equal(got, want) {
				t.Errorf("ListAndWatch IDs = %v\nwant %v", got, want)
			}
			if s, r, renamed := h.plugin.Sharing(); s != SharingTimeSlicing || r != 4 || renamed != tc.rename {
				t.Errorf("Sharing() = %q, %d, %v", s, r, renamed)
			}
		})
	}
}

func allocate(t *testing.T, c pluginapi.DevicePluginClient, ids ...string) (*pluginapi.ContainerAllocateResponse, error) {
	t.Helper()
	resp, err := c.Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}},
	})
	if err != nil {
		return nil, err
	}
	return resp.ContainerResponses[0], nil
}

func TestAllocate(t *testing.T) {
	h := newHarness(t, nil, newFakeBackend())
	c := h.client(t, h.kubelet.registration(t))

	resp, err := allocate(t, c, uuid(3), uuid(7))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Envs["NVIDIA_VISIBLE_DEVICES"], uuid(3)+","+uuid(7); got != want {
		t.Errorf("NVIDIA_VISIBLE_DEVICES = %q, want %q", got, want)
	}
	// nvidia7, nvidia-uvm and the rest do not exist under the dev root.
	var specs []string
	for _, d := range resp.Devices {
		specs = append(specs, d.ContainerPath+"="+d.HostPath+":"+d.Permissions)
	}
	want := []string{
		"/dev/nvidia3=" + filepath.Join(h.devRoot, "dev/nvidia3") + ":rw",
		"/dev/nvidiactl=" + filepath.Join(h.devRoot, "dev/nvidiactl") + ":rw",
	}
	if !slices.Equal(specs, want) {
		t.Errorf("device specs = %v, want %v", specs, want)
	}

	two, err := c.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{uuid(1)}}, {DevicesIds: []string{uuid(0)}},
	}})
	if err != nil || len(two.ContainerResponses) != 2 || two.ContainerResponses[1].Envs["NVIDIA_VISIBLE_DEVICES"] != uuid(0) {
		t.Errorf("Allocate for two containers = %v, %v", two, err)
	}

	if _, err := allocate(t, c, uuid(1), "GPU-nope"); err == nil || !strings.Contains(err.Error(), "unknown device: GPU-nope") {
		t.Errorf("Allocate of an unknown ID: %v", err)
	}
	if _, err := allocate(t, c, uuid(1)+"::0"); err == nil {
		t.Error("Allocate of a replica ID without time-slicing succeeded")
	}
}

func TestAllocateWithoutDeviceSpecs(t *testing.T) {
	cfg := config.Default()
	cfg.Flags.Plugin.PassDeviceSpecs = false
	h := newHarness(t, cfg, newFakeBackend())
	resp, err := allocate(t, h.client(t, h.kubelet.registration(t)), uuid(0))
	if err != nil || len(resp.Devices) != 0 || resp.Envs["NVIDIA_VISIBLE_DEVICES"] != uuid(0) {
		t.Errorf("Allocate = %+v, %v", resp, err)
	}
}

func TestAllocateReplicas(t *testing.T) {
	h := newHarness(t, timeSliced(4, false, false), newFakeBackend())
	c := h.client(t, h.kubelet.registration(t))
	resp, err := allocate(t, c, uuid(2)+"::1", uuid(2)+"::3")
	if err != nil || resp.Envs["NVIDIA_VISIBLE_DEVICES"] != uuid(2) {
		t.Errorf("two replicas of one GPU: %v, %v", resp.GetEnvs(), err)
	}
	resp, err = allocate(t, c, uuid(5)+"::0", uuid(2)+"::0", uuid(5)+"::1")
	if err != nil || resp.Envs["NVIDIA_VISIBLE_DEVICES"] != uuid(5)+","+uuid(2) {
		t.Errorf("replicas of two GPUs: %v, %v", resp.GetEnvs(), err)
	}
	if _, err := allocate(t, c, uuid(2)); err == nil {
		t.Error("Allocate of a bare UUID under time-slicing succeeded")
	}
}

func TestFailRequestsGreaterThanOne(t *testing.T) {
	h := newHarness(t, timeSliced(4, true, true), newFakeBackend())
	c := h.client(t, h.kubelet.registration(t))
	_, err := allocate(t, c, uuid(0)+"::0", uuid(0)+"::1")
	if want := "request for 'nvidia.com/gpu.shared: 2' too large: maximum request size for shared resources is 1"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Allocate 2: %v, want %q", err, want)
	}
	if resp, err := allocate(t, c, uuid(0)+"::1"); err != nil || resp.Envs["NVIDIA_VISIBLE_DEVICES"] != uuid(0) {
		t.Errorf("Allocate 1: %v, %v", resp.GetEnvs(), err)
	}
}

func TestGetPreferredAllocationRPC(t *testing.T) {
	h := newHarness(t, timeSliced(4, false, false), newFakeBackend())
	c := h.client(t, h.kubelet.registration(t))
	devs := next(t, watch(t, c))
	resp, err := c.GetPreferredAllocation(context.Background(), &pluginapi.PreferredAllocationRequest{
		ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs:   ids(devs),
			MustIncludeDeviceIDs: []string{uuid(6) + "::2"},
			AllocationSize:       3,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{uuid(6) + "::2", uuid(6) + "::0", uuid(6) + "::1"}
	if got := resp.ContainerResponses[0].DeviceIDs; !slices.Equal(got, want) {
		t.Errorf("preferred = %v, want %v", got, want)
	}
}

func TestHealth(t *testing.T) {
	b := newFakeBackend()
	b.watchFailures = 1 // health is watched again after a failure
	h := newHarness(t, timeSliced(4, false, false), b)
	stream := watch(t, h.client(t, h.kubelet.registration(t)))
	next(t, stream)

	b.events <- gpu.HealthEvent{UUID: uuid(2), Healthy: false, Reason: "Xid 79"}
	devs := next(t, stream)
	for id, hl := range healthOf(devs) {
		want := pluginapi.Healthy
		if strings.HasPrefix(id, uuid(2)) {
			want = pluginapi.Unhealthy
		}
		if hl != want {
			t.Errorf("after Xid: %s is %s, want %s", id, hl, want)
		}
	}
	// A repeated event and one of an unknown GPU change nothing; the next
	// message must be the recovery.
	b.events <- gpu.HealthEvent{UUID: uuid(2), Healthy: false, Reason: "Xid 79"}
	b.events <- gpu.HealthEvent{UUID: "GPU-unknown", Healthy: false}
	b.events <- gpu.HealthEvent{UUID: uuid(2), Healthy: true}
	devs = next(t, stream)
	for id, hl := range healthOf(devs) {
		if hl != pluginapi.Healthy {
			t.Errorf("after recovery: %s is %s", id, hl)
		}
	}
	if len(devs) != 32 {
		t.Errorf("ListAndWatch sent %d devices, want 32", len(devs))
	}
}

func TestReregisterWhenKubeletRestarts(t *testing.T) {
	h := newHarness(t, nil, newFakeBackend())
	first := h.kubelet.registration(t)

	// The kubelet restarts: its socket goes away, and the new kubelet
	// deletes the plugins' sockets, as the real one does. GracefulStop
	// lets the first Register answer, so that the plugin sees it succeed
	// and only the new socket can make it register again.
	h.kubelet.srv.GracefulStop()
	os.Remove(filepath.Join(h.dir, kubeletSocket))
	time.Sleep(100 * time.Millisecond)
	os.Remove(filepath.Join(h.dir, first.Endpoint))
	k := startKubelet(t, h.dir)
	second := k.registration(t)
	if second.ResourceName != first.ResourceName || second.Endpoint != first.Endpoint {
		t.Errorf("re-registration %+v, want %+v", second, first)
	}
	if devs := next(t, watch(t, h.client(t, second))); len(devs) != 8 {
		t.Errorf("ListAndWatch after re-registration sent %d devices", len(devs))
	}
	select {
	case req := <-k.regs:
		t.Errorf("registered again without a kubelet restart: %+v", req)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestRegisterWhenKubeletStartsLater(t *testing.T) {
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	p, err := New(Options{Dir: dir, Backend: newFakeBackend(), WatchInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	k := startKubelet(t, dir)
	if req := k.registration(t); req.ResourceName != "nvidia.com/gpu" {
		t.Errorf("registration = %+v", req)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kplex-nvidia-gpu.sock")); err == nil {
		t.Error("plugin socket left behind after Run")
	}
}

func TestInitFailure(t *testing.T) {
	t.Run("failOnInitError", func(t *testing.T) {
		b := newFakeBackend()
		b.setInitErr(errNoDriver)
		p, err := New(Options{Dir: t.TempDir(), Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		err = p.Run(context.Background())
		if !errors.Is(err, errNoDriver) || !strings.Contains(err.Error(), "initialising NVML") {
			t.Errorf("Run = %v, want an error wrapping %v", err, errNoDriver)
		}
	})
	t.Run("keep running", func(t *testing.T) {
		b := newFakeBackend()
		b.setInitErr(errNoDriver)
		cfg := config.Default()
		cfg.Flags.FailOnInitError = false
		h := newHarness(t, cfg, b)
		select {
		case err := <-h.done:
			t.Fatalf("Run returned %v", err)
		case req := <-h.kubelet.regs:
			t.Fatalf("registered %+v without GPUs", req)
		case <-time.After(300 * time.Millisecond):
		}
		if d := h.plugin.Devices(); d != nil {
			t.Errorf("Devices() = %v", d)
		}
		// The driver shows up: the next retry advertises the GPUs.
		b.setInitErr(nil)
		if req := h.kubelet.registration(t); req.ResourceName != "nvidia.com/gpu" {
			t.Errorf("registration = %+v", req)
		}
		b.mu.Lock()
		calls := b.initCalls
		b.mu.Unlock()
		if calls < 2 {
			t.Errorf("Init called %d times", calls)
		}
	})
}

func TestNew(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a backend succeeded")
	}
	bad := config.Default()
	bad.Version = "v2"
	if _, err := New(Options{Backend: newFakeBackend(), Config: bad}); err == nil {
		t.Error("New with an invalid config succeeded")
	}
	p, err := New(Options{Backend: newFakeBackend()})
	if err != nil {
		t.Fatal(err)
	}
	if p.opts.Dir != pluginapi.DevicePluginPath || !p.cfg.Flags.FailOnInitError {
		t.Errorf("defaults: %+v", p.opts)
	}
}
