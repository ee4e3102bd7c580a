// Package devices is the node agent's device-plugin manager: the part of the
// kubelet that device plugins (GPUs, NICs, FPGAs, ...) talk to, written for
// kplex against the kubelet device plugin API
// k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1.
//
// # Plugin side
//
// After Start, the manager serves the v1beta1 Registration service on the
// unix socket Options.Dir/Options.SocketName (by default
// /var/lib/kubelet/device-plugins/kubelet.sock, the path plugins expect).
// A plugin calls Register with Version v1beta1.Version, an extended resource
// name (domain-prefixed, e.g. "example.com/gpu", not in the kubernetes.io
// namespace) and the base name of its own socket in the same directory.
// Register answers at once; the manager then connects to the plugin, calls
// GetDevicePluginOptions and keeps a ListAndWatch stream open. Every
// ListAndWatch message replaces the resource's device list. A new
// registration for the same resource replaces the previous connection
// (plugin restart). When the stream ends (plugin gone), the resource's
// allocatable count drops to 0 at once; its capacity is kept until the
// plugin registers again or for a 5 minute grace period, after which the
// resource is reported with capacity 0.
//
// # Agent side
//
//   - New(opts) then Start(ctx) when the agent starts. Start reads the
//     checkpoint (Options.CheckpointFile) so that devices already assigned
//     to containers before an agent restart stay assigned; resources listed
//     in the checkpoint are reported with allocatable 0 until their plugins
//     register again. Start does not block; cancelling ctx or calling Stop
//     shuts the manager down.
//   - Resources() whenever the agent builds the Node status (capacity and
//     allocatable of every device-plugin resource), and again each time
//     Changes() fires.
//   - Allocate(ctx, podUID, containerName, requests) before creating each
//     container (also on container restart: it is idempotent and returns the
//     cached result for devices the container already has). The agent injects
//     the returned envs, mounts, device nodes, annotations and CDI devices
//     into the container config. An error means the pod cannot run here:
//     the agent fails the pod with reason UnexpectedAdmissionError, as the
//     kubelet does. Requests for cpu, memory, ephemeral-storage, pods,
//     hugepages-* and other non-extended names are ignored.
//   - Release(podUID) once a pod is gone (all its containers are dead and
//     will not be restarted), so its devices can be given to other pods.
//   - Retain(live) once after an agent restart, when the agent knows which
//     pods it still runs: assignments of every other pod are dropped.
//   - Stop() when the agent exits.
//
// Assignments (pod, container, resource -> device IDs plus the plugin's
// Allocate response) are written to the checkpoint file atomically on every
// change, so neither an agent restart nor a plugin restart hands a device
// that is in use to another pod.
package devices
