// Package plugin is kplex-deviceplugin's kubelet device plugin for NVIDIA
// GPUs, on the kubelet device-plugin API
// (k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1), behaving like NVIDIA's
// k8s-device-plugin with the "none" MIG strategy and the envvar device
// list strategy.
//
// Run initialises the GPU backend, serves a DevicePlugin gRPC service per
// advertised resource on a unix socket in Options.Dir and registers it
// with the kubelet (in kplex, the node agent) through Dir/kubelet.sock.
// When kubelet.sock is recreated (the agent restarted and forgot its
// plugins) the plugin serves a fresh socket and registers again.
//
// Time-slicing (sharing.timeSlicing in the config) advertises each GPU
// replicas times, as device IDs <uuid>::<n>, under nvidia.com/gpu or, when
// renamed, nvidia.com/gpu.shared (or the configured name). Allocate maps
// device IDs back to GPUs and answers NVIDIA_VISIBLE_DEVICES=<uuid>,... and,
// with passDeviceSpecs, the GPUs' device nodes.
package plugin
