package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kplex/kplex/test/containerd"
	"github.com/kplex/kplex/test/images"
)

// probeScript prints what the kernel enforces on the container's process.
const probeScript = `echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status
echo "pid1=$(cat /proc/1/comm)"
touch /written 2>/dev/null && echo rootfs=rw || echo rootfs=ro`

// In real containers, through containerd: the settings the agent sends are
// the ones the kernel enforces, and a root image with runAsNonRoot does
// not start.
func TestIntegrationContainerdSecurityContext(t *testing.T) {
	ctx, rt := containerdRuntime(t)

	probe := func(name string, sc *v1.SecurityContext) v1.Container {
		return v1.Container{Name: name, Image: images.Busybox, Command: []string{"sh", "-c", probeScript}, SecurityContext: sc}
	}
	pod := scPod(func(p *v1.Pod) {
		p.Spec.SecurityContext = &v1.PodSecurityContext{
			FSGroup:        new(int64(2000)),
			SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault},
		}
		p.Spec.ShareProcessNamespace = new(true)
		p.Spec.Containers = []v1.Container{
			probe("restricted", &v1.SecurityContext{
				RunAsUser: new(int64(1000)), RunAsGroup: new(int64(3000)),
				AllowPrivilegeEscalation: new(false), ReadOnlyRootFilesystem: new(true),
				Capabilities: &v1.Capabilities{Drop: []v1.Capability{"ALL"}},
			}),
			// The control: what a container gets without settings.
			probe("plain", &v1.SecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeUnconfined}}),
			probe("nonroot", &v1.SecurityContext{RunAsNonRoot: new(true)}),
		}
	})
	w := workerOn(t, pod, rt)
	if _, err := w.ensureSandbox(ctx, pod, &observed{}); err != nil {
		t.Fatalf("creating the sandbox: %v", err)
	}
	obs, err := w.observe(ctx)
	if err != nil || obs.sandbox == nil {
		t.Fatalf("observing the sandbox: %v", err)
	}
	t.Cleanup(func() { w.killPod(context.Background(), nil, 0); w.cleanup(context.Background(), pod) })

	for i := range pod.Spec.Containers {
		w.start(ctx, pod, &pod.Spec.Containers[i], obs.sandbox.Id, 0, false)
	}
	if wait := w.waiting["nonroot"]; wait == nil || wait.Reason != "CreateContainerConfigError" || !strings.Contains(wait.Message, "image will run as root") {
		t.Errorf("nonroot waits %+v, want CreateContainerConfigError: image will run as root", wait)
	}

	for name, want := range map[string][]string{
		"restricted": {"uid=1000 gid=3000 groups=3000 2000", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2", "pid1=pause", "rootfs=ro"},
		"plain":      {"uid=0 gid=0 groups=0 2000", "NoNewPrivs:\t0", "Seccomp:\t0", "pid1=pause", "rootfs=rw"},
	} {
		out := containerOutput(t, w, pod, name)
		for _, line := range want {
			if !strings.Contains(out, line+"\n") {
				t.Errorf("%s printed\n%s\nwant a line %q", name, out, line)
			}
		}
	}
	if out := containerOutput(t, w, pod, "plain"); strings.Contains(out, "CapEff:\t0000000000000000") {
		t.Errorf("plain has no capabilities:\n%s", out)
	}
}

// containerOutput waits for the container to exit and returns its output.
func containerOutput(t *testing.T, w *podWorker, pod *v1.Pod, name string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		obs, err := w.observe(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		st := obs.latest(name)
		if st == nil {
			t.Fatalf("container %s was not created (waiting %+v)", name, w.waiting[name])
		}
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %v after 30s", name, st.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	raw, err := os.ReadFile(filepath.Join(w.logDir(pod), name, "0.log"))
	if err != nil {
		t.Fatal(err)
	}
	// CRI log lines: "<time> <stream> <F|P> <text>".
	var out strings.Builder
	for _, m := range regexp.MustCompile(`(?m)^\S+ \S+ [FP] (.*)$`).FindAllStringSubmatch(string(raw), -1) {
		fmt.Fprintln(&out, m[1])
	}
	return out.String()
}

// In real containers: an emptyDir is writable by every user (0777), a
// medium Memory one is a tmpfs, shared by the pod's containers, and gone
// with the pod.
func TestIntegrationContainerdEmptyDirs(t *testing.T) {
	ctx, rt := containerdRuntime(t)
	script := `stat -f -c 'fs=%T' /mem; stat -c 'mode=%a' /mem; stat -f -c 'fs=%T' /disk; stat -c 'mode=%a' /disk`
	pod := scPod(func(p *v1.Pod) {
		p.Spec.Volumes = []v1.Volume{
			{Name: "mem", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}},
			{Name: "disk", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		}
		mounts := []v1.VolumeMount{{Name: "mem", MountPath: "/mem"}, {Name: "disk", MountPath: "/disk"}}
		p.Spec.Containers = []v1.Container{
			{Name: "writer", Image: images.Busybox, Command: []string{"sh", "-c", "echo shared > /mem/f; " + script}, VolumeMounts: mounts},
		}
	})
	w := workerOn(t, pod, rt)
	if _, err := w.ensureSandbox(ctx, pod, &observed{}); err != nil {
		t.Fatalf("creating the sandbox: %v", err)
	}
	obs, err := w.observe(ctx)
	if err != nil || obs.sandbox == nil {
		t.Fatalf("observing the sandbox: %v", err)
	}
	w.start(ctx, pod, &pod.Spec.Containers[0], obs.sandbox.Id, 0, false)
	out := containerOutput(t, w, pod, "writer")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || lines[0] != "fs=tmpfs" || lines[1] != "mode=777" || lines[2] == "fs=tmpfs" || lines[3] != "mode=777" {
		t.Errorf("the container saw\n%s\nwant a tmpfs /mem and a /disk on the node's disk, both mode 777", out)
	}
	mem := filepath.Join(volumesDir(w.agent.cfg.RootDir, pod.UID), "mem")
	if data, err := os.ReadFile(filepath.Join(mem, "f")); err != nil || string(data) != "shared\n" {
		t.Errorf("the tmpfs on the node holds %q (%v)", data, err)
	}
	w.killPod(context.Background(), nil, 0)
	w.cleanup(context.Background(), pod)
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if strings.Contains(string(mounts), mem) {
		t.Errorf("the pod's tmpfs is still mounted at %s after its cleanup", mem)
	}
}

// containerdRuntime starts a private containerd for the test and returns
// its CRI runtime, with a context bounding the test.
func containerdRuntime(t *testing.T) (context.Context, Runtime) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts containerd")
	}
	if err := containerd.Available(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	c, err := containerd.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping containerd: %v", err)
		}
	})
	rt, err := criRuntime(ctx, c.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, rt
}
