package nodeagent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	resourcehelper "k8s.io/kubernetes/pkg/api/v1/resource"
	"k8s.io/kubernetes/pkg/fieldpath"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"

	"github.com/kplex/kplex/nodeagent/runtime/simulated"
	"github.com/kplex/kplex/tenant"
)

// containerConfig turns a container of the pod into what CRI creates.
func (w *podWorker) containerConfig(ctx context.Context, pod *v1.Pod, c *v1.Container, attempt uint32, init bool) (*runtimeapi.ContainerConfig, error) {
	// First, so that a container refused for its security context holds
	// no devices.
	security, err := w.securityContext(ctx, pod, c)
	if err != nil {
		return nil, err
	}
	env, err := w.env(ctx, pod, c)
	if err != nil {
		return nil, err
	}
	mounts, err := w.mounts(ctx, pod, c, expansion.MappingFuncFor(envMap(env)))
	if err != nil {
		return nil, err
	}
	var devices []*runtimeapi.Device
	var cdi []*runtimeapi.CDIDevice
	var deviceAnnotations map[string]string
	if w.agent.devices != nil && hasExtended(c.Resources) {
		alloc, err := w.agent.devices.Allocate(ctx, string(pod.UID), c.Name, extendedOf(c.Resources))
		if err != nil {
			// Pods deleted a moment ago may still hold devices their workers
			// have not given back: reclaim them first, as the kubelet does.
			w.agent.devices.Retain(w.agent.isLive)
			alloc, err = w.agent.devices.Allocate(ctx, string(pod.UID), c.Name, extendedOf(c.Resources))
		}
		if err != nil {
			return nil, admissionError{fmt.Errorf("allocating devices: %w", err)}
		}
		for k, v := range alloc.Envs {
			env = append(env, &runtimeapi.KeyValue{Key: k, Value: []byte(v)})
		}
		mounts = append(mounts, alloc.Mounts...)
		devices = alloc.Devices
		cdi = alloc.CDIDevices
		deviceAnnotations = alloc.Annotations
	}
	mapping := expansion.MappingFuncFor(envMap(env))
	expand := func(in []string) []string {
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = expansion.Expand(s, mapping)
		}
		return out
	}
	labels := w.labels(pod)
	labels[labelContainer] = c.Name
	if init {
		labels[labelInit] = "true"
	}
	annotations := simulatedAnnotations(pod)
	for k, v := range deviceAnnotations {
		annotations[k] = v
	}
	annotations["io.kubernetes.container.restartCount"] = itoa(int(attempt))
	cfg := &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:       &runtimeapi.ImageSpec{Image: c.Image},
		Command:     expand(c.Command),
		Args:        expand(c.Args),
		WorkingDir:  c.WorkingDir,
		Envs:        env,
		Mounts:      mounts,
		Devices:     devices,
		CDIDevices:  cdi,
		Labels:      labels,
		Annotations: annotations,
		LogPath:     filepath.Join(c.Name, itoa(int(attempt))+".log"),
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Linux:       &runtimeapi.LinuxContainerConfig{Resources: linuxResources(c.Resources), SecurityContext: security},
	}
	return cfg, nil
}

// admissionError means the pod cannot run on this node at all: the kubelet
// fails such a pod (UnexpectedAdmissionError) so that its controller
// places a new one, rather than retrying here.
type admissionError struct{ error }

func (e admissionError) Unwrap() error { return e.error }

func hasExtended(r v1.ResourceRequirements) bool { return len(extendedOf(r)) > 0 }

// extendedOf are the requests a device plugin serves: domain-qualified
// names outside kubernetes.io, as the kubelet's.
func extendedOf(r v1.ResourceRequirements) v1.ResourceList {
	out := v1.ResourceList{}
	for name, q := range r.Limits {
		n := string(name)
		if strings.Contains(n, "/") && !strings.HasPrefix(n, "requests.") && !strings.Contains(n, "kubernetes.io/") && !q.IsZero() {
			out[name] = q
		}
	}
	return out
}

func envMap(env []*runtimeapi.KeyValue) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		m[kv.Key] = string(kv.Value)
	}
	return m
}

// linuxResources maps requests and limits to cgroup settings, as the
// kubelet does: shares from the CPU request, a CFS quota from its limit.
func linuxResources(r v1.ResourceRequirements) *runtimeapi.LinuxContainerResources {
	out := &runtimeapi.LinuxContainerResources{CpuShares: 2}
	if q, ok := r.Requests[v1.ResourceCPU]; ok {
		out.CpuShares = max(2, q.MilliValue()*1024/1000)
	} else if q, ok := r.Limits[v1.ResourceCPU]; ok {
		out.CpuShares = max(2, q.MilliValue()*1024/1000)
	}
	if q, ok := r.Limits[v1.ResourceCPU]; ok {
		out.CpuPeriod = 100000
		out.CpuQuota = max(1000, q.MilliValue()*100000/1000)
	}
	if q, ok := r.Limits[v1.ResourceMemory]; ok {
		out.MemoryLimitInBytes = q.Value()
	}
	return out
}

// get reads an object of the pod's own tenant: env and volumes come from
// there and nowhere else.
func (w *podWorker) get(ctx context.Context, namespace, resource, name string, into any) error {
	raw, err := w.agent.tenants.Get().AbsPath(tenant.Path(w.tenant), "api/v1/namespaces", namespace, resource, name).DoRaw(ctx)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, into)
}

func (w *podWorker) configMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error) {
	var cm v1.ConfigMap
	if err := w.get(ctx, namespace, "configmaps", name, &cm); err != nil {
		return nil, err
	}
	return &cm, nil
}

func (w *podWorker) secret(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	var s v1.Secret
	if err := w.get(ctx, namespace, "secrets", name, &s); err != nil {
		return nil, err
	}
	return s.Data, nil
}

// env resolves a container's environment: envFrom, then env in order, with
// $(VAR) references to earlier variables expanded.
func (w *podWorker) env(ctx context.Context, pod *v1.Pod, c *v1.Container) ([]*runtimeapi.KeyValue, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	svcEnv, err := w.serviceEnv(ctx, pod)
	if err != nil {
		return nil, err
	}
	for _, e := range svcEnv {
		set(e.Name, e.Value)
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := w.configMap(ctx, pod.Namespace, from.ConfigMapRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("envFrom configmap %q: %w", from.ConfigMapRef.Name, err)
			}
			for k, v := range cm.Data {
				set(from.Prefix+k, v)
			}
		case from.SecretRef != nil:
			data, err := w.secret(ctx, pod.Namespace, from.SecretRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(from.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("envFrom secret %q: %w", from.SecretRef.Name, err)
			}
			for k, v := range data {
				set(from.Prefix+k, string(v))
			}
		}
	}
	mapping := expansion.MappingFuncFor(vars)
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expansion.Expand(e.Value, mapping))
			continue
		}
		v, ok, err := w.envValue(ctx, pod, c, e)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	out := make([]*runtimeapi.KeyValue, 0, len(order))
	for _, k := range order {
		out = append(out, &runtimeapi.KeyValue{Key: k, Value: []byte(vars[k])})
	}
	return out, nil
}

func optional(b *bool) bool { return b != nil && *b }

func (w *podWorker) envValue(ctx context.Context, pod *v1.Pod, c *v1.Container, e v1.EnvVar) (string, bool, error) {
	from := e.ValueFrom
	switch {
	case from.FieldRef != nil:
		switch from.FieldRef.FieldPath {
		case "spec.nodeName":
			return pod.Spec.NodeName, true, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, true, nil
		case "status.hostIP", "status.hostIPs":
			return w.agent.cfg.NodeIP, true, nil
		case "status.podIP":
			return w.podAddress(pod), true, nil
		case "status.podIPs":
			var ips []string
			for _, ip := range w.ips(pod) {
				ips = append(ips, ip.IP)
			}
			return strings.Join(ips, ","), true, nil
		}
		v, err := fieldpath.ExtractFieldPathAsString(pod, from.FieldRef.FieldPath)
		return v, err == nil, err
	case from.ResourceFieldRef != nil:
		v, err := w.resourceValue(pod, c.Name, from.ResourceFieldRef)
		return v, err == nil, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := w.configMap(ctx, pod.Namespace, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %q: %w", ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok && !optional(ref.Optional) {
			return "", false, fmt.Errorf("configmap %q has no key %q", ref.Name, ref.Key)
		}
		return v, ok, nil
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		data, err := w.secret(ctx, pod.Namespace, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %q: %w", ref.Name, err)
		}
		v, ok := data[ref.Key]
		if !ok && !optional(ref.Optional) {
			return "", false, fmt.Errorf("secret %q has no key %q", ref.Name, ref.Key)
		}
		return string(v), ok, nil
	}
	return "", false, nil
}

func volumesDir(rootDir string, uid types.UID) string {
	return filepath.Join(rootDir, "pods", string(uid), "volumes")
}

func removeVolumes(rootDir string, uid types.UID) {
	// Memory-backed emptyDirs are tmpfs mounts: unmounted first, or their
	// files would stay (and RemoveAll fail on the mount point).
	if entries, err := os.ReadDir(volumesDir(rootDir, uid)); err == nil {
		for _, e := range entries {
			_ = unix.Unmount(filepath.Join(volumesDir(rootDir, uid), e.Name()), unix.MNT_DETACH)
		}
	}
	removeAll(filepath.Join(rootDir, "pods", string(uid)))
}

func removeAll(path string) { _ = os.RemoveAll(path) }

// mounts prepares the pod's volumes that c mounts: emptyDir and hostPath
// directories, and files of configMap, secret, downwardAPI and projected
// volumes (service account tokens included), read from the pod's tenant.
func (w *podWorker) mounts(ctx context.Context, pod *v1.Pod, c *v1.Container, env func(string) string) ([]*runtimeapi.Mount, error) {
	var out []*runtimeapi.Mount
	for _, m := range c.VolumeMounts {
		var vol *v1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == m.Name {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol == nil {
			return nil, fmt.Errorf("volumeMount %q: no volume of this name", m.Name)
		}
		host, err := w.volume(ctx, pod, vol)
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", vol.Name, err)
		}
		subPath := m.SubPath
		if m.SubPathExpr != "" {
			// $(VAR) from the container's environment, as the kubelet's.
			subPath = expansion.Expand(m.SubPathExpr, env)
			if filepath.IsAbs(subPath) || slices.Contains(strings.Split(filepath.ToSlash(subPath), "/"), "..") {
				return nil, fmt.Errorf("volumeMount %q: subPathExpr %q expands to %q, which leaves the volume", m.Name, m.SubPathExpr, subPath)
			}
		}
		if subPath != "" {
			host = filepath.Join(host, subPath)
			// A subPath names a file of a configMap or secret volume, or a
			// directory to create.
			if _, err := os.Stat(host); os.IsNotExist(err) {
				if err := os.MkdirAll(host, 0o755); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, &runtimeapi.Mount{ContainerPath: m.MountPath, HostPath: host, Readonly: m.ReadOnly})
	}
	return out, nil
}

func (w *podWorker) volume(ctx context.Context, pod *v1.Pod, vol *v1.Volume) (string, error) {
	if vol.HostPath != nil {
		if vol.HostPath.Type != nil && (*vol.HostPath.Type == v1.HostPathDirectoryOrCreate) {
			if err := os.MkdirAll(vol.HostPath.Path, 0o755); err != nil {
				return "", err
			}
		}
		return vol.HostPath.Path, nil
	}
	dir := filepath.Join(volumesDir(w.agent.cfg.RootDir, pod.UID), vol.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if vol.EmptyDir != nil {
		return dir, w.emptyDir(dir, vol.EmptyDir)
	}
	files, err := w.volumeFiles(ctx, pod, vol, false)
	if err != nil {
		return "", err
	}
	if err := writeVolume(dir, files, false); err != nil {
		return "", err
	}
	return dir, nil
}

// emptyDir makes dir what the kubelet makes of an emptyDir: writable by
// every user of the pod (0777), and a tmpfs of sizeLimit for medium
// Memory (on a real runtime: a simulated one runs nothing in it).
func (w *podWorker) emptyDir(dir string, src *v1.EmptyDirVolumeSource) error {
	if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	if src.Medium != v1.StorageMediumMemory || w.agent.runtime.Scheme == simulated.RuntimeName {
		return nil
	}
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) == nil && unix.Stat(filepath.Dir(dir), &parent) == nil && st.Dev != parent.Dev {
		return nil // mounted already, for another container of the pod
	}
	opts := "mode=0777"
	if src.SizeLimit != nil && !src.SizeLimit.IsZero() {
		opts += fmt.Sprintf(",size=%d", src.SizeLimit.Value())
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mounting a tmpfs for emptyDir medium Memory: %w", err)
	}
	return nil
}

// volumeFiles reads the files of a configMap, secret, downwardAPI or
// projected volume from the pod's tenant. refreshing leaves out service
// account tokens, which are requested once per container start.
func (w *podWorker) volumeFiles(ctx context.Context, pod *v1.Pod, vol *v1.Volume, refreshing bool) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	switch {
	case vol.ConfigMap != nil:
		cm, err := w.configMap(ctx, pod.Namespace, vol.ConfigMap.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(vol.ConfigMap.Optional) {
				return files, nil
			}
			return nil, err
		}
		addKeys(files, stringBytes(cm.Data), cm.BinaryData, vol.ConfigMap.Items, fileMode(vol.ConfigMap.DefaultMode))
	case vol.Secret != nil:
		data, err := w.secret(ctx, pod.Namespace, vol.Secret.SecretName)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(vol.Secret.Optional) {
				return files, nil
			}
			return nil, err
		}
		addKeys(files, data, nil, vol.Secret.Items, fileMode(vol.Secret.DefaultMode))
	case vol.DownwardAPI != nil:
		if err := w.addDownward(files, pod, vol.DownwardAPI.Items, fileMode(vol.DownwardAPI.DefaultMode)); err != nil {
			return nil, err
		}
	case vol.Projected != nil:
		for _, src := range vol.Projected.Sources {
			if refreshing && src.ServiceAccountToken != nil {
				files[src.ServiceAccountToken.Path] = volumeFile{keep: true}
				continue
			}
			if err := w.project(ctx, pod, src, files, fileMode(vol.Projected.DefaultMode)); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("volume type not supported by kplex-nodeagent")
	}
	return files, nil
}

// writeVolume writes files into dir, those that changed only; pruning
// removes the files no longer among them (a key deleted, a ConfigMap
// gone), as the kubelet's refreshes do.
func writeVolume(dir string, files map[string]volumeFile, pruning bool) error {
	for name, f := range files {
		if f.keep {
			continue
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().Perm() == f.mode {
			if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, f.data) {
				continue
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
		// WriteFile keeps an existing file's mode and applies the umask.
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	if !pruning {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if _, ok := files[rel]; !ok {
			return os.Remove(p)
		}
		return nil
	})
}

// volumeFile is one file of a configMap, secret, downwardAPI or projected
// volume.
type volumeFile struct {
	data []byte
	mode os.FileMode
	// keep leaves the file as it is (a token, on a refresh).
	keep bool
}

// fileMode is a volume's defaultMode, or upstream's default, 0644.
func fileMode(m *int32) os.FileMode {
	if m == nil {
		return 0o644
	}
	return os.FileMode(*m) & os.ModePerm
}

// itemMode is an item's own mode, or else the volume's.
func itemMode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m) & os.ModePerm
}

func stringBytes(m map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out
}

func addKeys(files map[string]volumeFile, data, binary map[string][]byte, items []v1.KeyToPath, mode os.FileMode) {
	all := map[string][]byte{}
	for k, v := range data {
		all[k] = v
	}
	for k, v := range binary {
		all[k] = v
	}
	if len(items) == 0 {
		for k, v := range all {
			files[k] = volumeFile{data: v, mode: mode}
		}
		return
	}
	for _, it := range items {
		if v, ok := all[it.Key]; ok {
			files[it.Path] = volumeFile{data: v, mode: itemMode(it.Mode, mode)}
		}
	}
}

func (w *podWorker) addDownward(files map[string]volumeFile, pod *v1.Pod, items []v1.DownwardAPIVolumeFile, mode os.FileMode) error {
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = fieldpath.ExtractFieldPathAsString(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			v, err = w.resourceValue(pod, it.ResourceFieldRef.ContainerName, it.ResourceFieldRef)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("downwardAPI item %s: %w", it.Path, err)
		}
		files[it.Path] = volumeFile{data: []byte(v), mode: itemMode(it.Mode, mode)}
	}
	return nil
}

// resourceValue is a container's request or limit a resourceFieldRef
// names; a limit the container does not set is the node's allocatable, as
// the kubelet gives.
func (w *podWorker) resourceValue(pod *v1.Pod, container string, ref *v1.ResourceFieldSelector) (string, error) {
	var allocatable v1.ResourceList
	if w.agent.node != nil && w.agent.node.capacity != nil {
		allocatable = w.agent.node.capacity()
	}
	return resourcehelper.ExtractResourceValueByContainerNameAndNodeAllocatable(ref, pod, container, allocatable)
}

// project adds one source of a projected volume. A service account token
// is requested from the pod's tenant, bound to the pod.
func (w *podWorker) project(ctx context.Context, pod *v1.Pod, src v1.VolumeProjection, files map[string]volumeFile, mode os.FileMode) error {
	switch {
	case src.ConfigMap != nil:
		cm, err := w.configMap(ctx, pod.Namespace, src.ConfigMap.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(src.ConfigMap.Optional) {
				return nil
			}
			return err
		}
		addKeys(files, stringBytes(cm.Data), cm.BinaryData, src.ConfigMap.Items, mode)
	case src.Secret != nil:
		data, err := w.secret(ctx, pod.Namespace, src.Secret.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(src.Secret.Optional) {
				return nil
			}
			return err
		}
		addKeys(files, data, nil, src.Secret.Items, mode)
	case src.DownwardAPI != nil:
		return w.addDownward(files, pod, src.DownwardAPI.Items, mode)
	case src.ServiceAccountToken != nil:
		token, err := w.token(ctx, pod, src.ServiceAccountToken)
		if err != nil {
			return fmt.Errorf("service account token: %w", err)
		}
		files[src.ServiceAccountToken.Path] = volumeFile{data: []byte(token), mode: mode}
	}
	return nil
}

func (w *podWorker) token(ctx context.Context, pod *v1.Pod, p *v1.ServiceAccountTokenProjection) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: p.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if p.Audience != "" {
		req.Spec.Audiences = []string{p.Audience}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	raw, err := w.agent.tenants.Post().AbsPath(tenant.Path(w.tenant), "api/v1/namespaces", pod.Namespace, "serviceaccounts", sa, "token").
		SetHeader("Content-Type", "application/json").Body(body).DoRaw(ctx)
	if err != nil {
		return "", err
	}
	var out authenticationv1.TokenRequest
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", err
	}
	return out.Status.Token, nil
}

var _ = metav1.Now

// volumeRefresh is how often a running pod's configMap, secret and
// projected volumes are read again from its tenant.
const volumeRefresh = 10 * time.Second

// refreshVolumes brings a running pod's volume files up to date: its
// downwardAPI files on every sync (they come from the pod itself), the
// ones read from the API every volumeRefresh. A volume that cannot be read
// keeps its files.
func (w *podWorker) refreshVolumes(ctx context.Context, pod *v1.Pod) {
	now := time.Now()
	fromAPI := now.Sub(w.volumesRead) >= volumeRefresh
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		if vol.DownwardAPI == nil && !(fromAPI && (vol.ConfigMap != nil || vol.Secret != nil || vol.Projected != nil)) {
			continue
		}
		dir := filepath.Join(volumesDir(w.agent.cfg.RootDir, pod.UID), vol.Name)
		if _, err := os.Stat(dir); err != nil {
			continue // not made yet: the container start makes it
		}
		files, err := w.volumeFiles(ctx, pod, vol, true)
		if err == nil {
			err = writeVolume(dir, files, true)
		}
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Refreshing a volume", "volume", vol.Name, "err", err)
		}
	}
	if fromAPI {
		w.volumesRead = now
	}
}
