package plugin

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// visibleDevicesEnv tells NVIDIA's container toolkit and CUDA which GPUs a
// container has.
const visibleDevicesEnv = "NVIDIA_VISIBLE_DEVICES"

// controlDevices are the driver's device nodes every GPU container needs
// (passed only when they exist).
var controlDevices = []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"}

// Allocate gives each container the GPUs behind its device IDs.
func (s *server) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, creq := range req.GetContainerRequests() {
		cresp, err := s.allocate(creq.GetDevicesIds())
		if err != nil {
			return nil, err
		}
		resp.ContainerResponses = append(resp.ContainerResponses, cresp)
	}
	return resp, nil
}

func (s *server) allocate(ids []string) (*pluginapi.ContainerAllocateResponse, error) {
	res, cfg := s.res, s.p.cfg
	// More than one replica gives no more GPU time, only a second reference
	// to the same or another shared GPU; refuse when the config says so.
	// The message is NVIDIA's.
	if res.replicas > 1 && cfg.Sharing.TimeSlicing.FailRequestsGreaterThanOne && len(ids) > 1 {
		return nil, status.Errorf(codes.InvalidArgument,
			"request for '%s: %d' too large: maximum request size for shared resources is 1", res.name, len(ids))
	}
	gpus, err := res.lookup(ids)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid allocation request for '%s': %v", res.name, err)
	}
	uuids := make([]string, len(gpus))
	paths := make([]string, 0, len(gpus)+len(controlDevices))
	for i, g := range gpus {
		uuids[i] = res.gpus[g].UUID
		if p := res.gpus[g].Path; p != "" {
			paths = append(paths, p)
		}
	}
	cresp := &pluginapi.ContainerAllocateResponse{
		Envs: map[string]string{visibleDevicesEnv: strings.Join(uuids, ",")},
	}
	if cfg.Flags.Plugin.PassDeviceSpecs {
		cresp.Devices = deviceSpecs(cfg.DevRoot(), append(paths, controlDevices...))
	}
	s.p.logger.Info("Allocated GPUs", "resource", res.name, "deviceIDs", ids, "uuids", uuids)
	return cresp, nil
}

// deviceSpecs passes the device nodes that exist under devRoot (simulated
// GPUs have none).
func deviceSpecs(devRoot string, paths []string) []*pluginapi.DeviceSpec {
	var specs []*pluginapi.DeviceSpec
	for _, p := range paths {
		host := filepath.Join(devRoot, p)
		if _, err := os.Stat(host); err != nil {
			continue
		}
		specs = append(specs, &pluginapi.DeviceSpec{ContainerPath: p, HostPath: host, Permissions: "rw"})
	}
	return specs
}
