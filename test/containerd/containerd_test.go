package containerd

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	cri "k8s.io/cri-client/pkg"

	"github.com/kplex/kplex/test/images"
)

func TestIntegrationContainerdRunsBusybox(t *testing.T) {
	c, rt := start(t)
	ctx := t.Context()

	pod := hostNetworkPod(t, "busybox")
	podID, err := rt.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}

	hello := runContainer(t, rt, podID, pod, "hello", "echo hello from busybox; sleep 1")
	status := waitExited(t, rt, hello)
	if status.ExitCode != 0 {
		t.Errorf("hello exited with %d (%s: %s)", status.ExitCode, status.Reason, status.Message)
	}
	logPath := filepath.Join(pod.LogDirectory, "hello.log")
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("container log: %v", err)
	}
	// CRI log lines: "<RFC3339Nano> <stream> <F|P> <text>".
	line := regexp.MustCompile(`(?m)^(\S+) stdout F hello from busybox$`).FindSubmatch(log)
	if line == nil {
		t.Fatalf("%s lacks the greeting:\n%s", logPath, log)
	}
	if _, err := time.Parse(time.RFC3339Nano, string(line[1])); err != nil {
		t.Errorf("log timestamp: %v", err)
	}

	sleeper := runContainer(t, rt, podID, pod, "sleeper", "sleep 3600")
	stdout, stderr, err := rt.ExecSync(ctx, sleeper, []string{"echo", "hi"}, 10*time.Second)
	if err != nil || string(stdout) != "hi\n" {
		t.Errorf("ExecSync echo hi = %q, %q, %v; want \"hi\\n\"", stdout, stderr, err)
	}

	if err := rt.StopPodSandbox(ctx, podID); err != nil {
		t.Errorf("StopPodSandbox: %v", err)
	}
	if err := rt.RemovePodSandbox(ctx, podID); err != nil {
		t.Errorf("RemovePodSandbox: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	assertCleanedUp(t, c)
}

// Stop must clean up after a containerd that died with pods running: kill
// the shims and containers, remove their cgroups and unmount their rootfs.
func TestIntegrationContainerdStopAfterCrash(t *testing.T) {
	c, rt := start(t)
	ctx := t.Context()

	pod := hostNetworkPod(t, "crash")
	podID, err := rt.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	sleeper := runContainer(t, rt, podID, pod, "sleeper", "sleep 3600")
	if mounts, _ := mountsUnder(c.dir); len(mounts) == 0 {
		t.Fatal("no mounts under the instance dir while a pod runs")
	}
	parents, err := processes()
	if err != nil {
		t.Fatal(err)
	}
	shims := c.shims(parents)
	if len(shims) == 0 {
		t.Fatal("no shim runs for the pod")
	}

	c.cmd.Process.Kill()
	<-c.exited
	if err := c.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	assertCleanedUp(t, c)
	for _, pid := range shims {
		if alive(pid) {
			t.Errorf("shim %d survived Stop", pid)
		}
	}
	for _, id := range []string{podID, sleeper} {
		if cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/k8s.io/" + id); len(cgroups) > 0 {
			t.Errorf("cgroups survived Stop: %v", cgroups)
		}
	}
}

// start starts containerd in a temporary directory, stopped when the test
// ends, and connects a CRI client to it.
func start(t *testing.T) (*Containerd, internalapi.RuntimeService) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts containerd")
	}
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	c, err := Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("containerd started in %v with snapshotter %s", time.Since(began).Round(time.Millisecond), c.Snapshotter)
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("containerd log (%s):\n%s", c.Log, tail(c.Log, 40))
		}
	})

	rt, err := cri.NewRemoteRuntimeServiceBuilder().
		WithEndpoint(c.Endpoint).
		WithConnectionTimeout(10 * time.Second).
		Build(ctx)
	if err != nil {
		t.Fatalf("CRI client: %v", err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return c, rt
}

func hostNetworkPod(t *testing.T, name string) *runtimeapi.PodSandboxConfig {
	// The kubelet creates the pod log directory, not the runtime.
	logs := filepath.Join(t.TempDir(), "pods", name)
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid"},
		LogDirectory: logs,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
}

// runContainer creates and starts a busybox container running script,
// logging to <name>.log in the pod's log directory.
func runContainer(t *testing.T, rt internalapi.RuntimeService, podID string, pod *runtimeapi.PodSandboxConfig, name, script string) string {
	t.Helper()
	id, err := rt.CreateContainer(t.Context(), podID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: images.Busybox},
		Command:  []string{"sh", "-c", script},
		LogPath:  name + ".log",
	}, pod)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if err := rt.StartContainer(t.Context(), id); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return id
}

func waitExited(t *testing.T, rt internalapi.RuntimeService, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := rt.ContainerStatus(t.Context(), id, false)
		if err != nil {
			t.Fatalf("ContainerStatus: %v", err)
		}
		if s := resp.GetStatus(); s.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %v after 30s", id, resp.GetStatus().GetState())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertCleanedUp checks that a stopped instance left nothing running or
// mounted, so that its directory can be removed.
func assertCleanedUp(t *testing.T, c *Containerd) {
	t.Helper()
	if mounts, err := mountsUnder(c.dir); err != nil || len(mounts) > 0 {
		t.Errorf("mounted after Stop: %v %v", mounts, err)
	}
	parents, err := processes()
	if err != nil {
		t.Fatal(err)
	}
	if shims := c.shims(parents); len(shims) > 0 {
		t.Errorf("shims running after Stop: %v", shims)
	}
	if out, err := exec.Command("runc", "--root", filepath.Join(c.dir, "runc", Namespace), "list", "-q").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		t.Errorf("runc containers after Stop: %s", out)
	}
}
