package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kplex/kplex/test/containerd"
	"github.com/kplex/kplex/test/images"
)

// gpuPod is `kubectl run` overrides for a busybox pod asking for n GPUs.
func gpuPod(n string) string {
	return `{"spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"` + images.Busybox + `","command":["env"],"resources":{"limits":{"nvidia.com/gpu":"` + n + `"}}}]}}`
}

// TestE2EGPUPodsOnAFencedGPUPool: kplex up with real containers and a
// simulated 8×H100 node (kplex-deviceplugin's simulated backend); the
// operator makes a pool of the node by its GPU product label, dedicated to
// tenant A; A's pod asking for 2 GPUs reads two distinct GPU UUIDs in its
// environment; B's pod asking for one never runs there.
func TestE2EGPUPodsOnAFencedGPUPool(t *testing.T) {
	m := newMachine(t)
	if err := containerd.Available(); err != nil {
		t.Fatalf("containerd is needed (.ci/run installs it): %v", err)
	}
	ctrd, err := containerd.Start(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctrd.Stop() })
	m.up("--runtime=containerd", "--container-runtime-endpoint="+ctrd.Endpoint, "--simulate-gpus=h100x8", "--pod-network=host")
	node := m.until(time.Minute, "a node with 8 GPUs", func(s string) bool { return strings.HasSuffix(s, " 8") },
		"--context=kplex-root", "get", "nodes", "-o", `jsonpath={.items[0].metadata.name} {.items[0].status.allocatable.nvidia\.com/gpu}`)
	node = strings.Fields(node)[0]
	product := m.until(30*time.Second, "GPU product label", func(s string) bool { return s != "" },
		"--context=kplex-root", "get", "node", node, "-o", `jsonpath={.metadata.labels.nvidia\.com/gpu\.product}`)
	if product != "NVIDIA-H100-80GB-HBM3" {
		t.Errorf("nvidia.com/gpu.product = %q, want NVIDIA-H100-80GB-HBM3", product)
	}
	m.must(m.runStdin(`apiVersion: scheduling.kplex.io/v1alpha1
kind: NodePool
metadata: {name: h100}
spec:
  mode: dedicated
  tenants: [gpu-a]
  nodeSelector: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}
`, "kubectl", "--context=kplex-root", "apply", "-f", "-"))
	a, b := "--context=kplex-gpu-a", "--context=kplex-gpu-b"
	for _, name := range []string{"gpu-a", "gpu-b"} {
		m.must(m.kplex("create", "cluster", name))
		m.eventuallyWithin(30*time.Second, "default ServiceAccount", "--context=kplex-"+name, "get", "serviceaccount", "default")
	}

	m.must(m.kubectl(a, "run", "train", "--image="+images.Busybox, "--restart=Never", "--overrides="+gpuPod("2")))
	m.until(90*time.Second, "a's train Succeeded", equals("Succeeded"), a, "get", "pod", "train", "-o", "jsonpath={.status.phase}")
	env := m.must(m.kubectl(a, "logs", "train"))
	match := regexp.MustCompile(`(?m)^NVIDIA_VISIBLE_DEVICES=(.*)$`).FindStringSubmatch(env)
	if match == nil {
		t.Fatalf("a's train has no NVIDIA_VISIBLE_DEVICES in its environment:\n%s", env)
	}
	uuids := strings.Split(match[1], ",")
	if len(uuids) != 2 || uuids[0] == uuids[1] || !strings.HasPrefix(uuids[0], "GPU-") || !strings.HasPrefix(uuids[1], "GPU-") {
		t.Errorf("NVIDIA_VISIBLE_DEVICES=%s: want two distinct GPU UUIDs", match[1])
	}

	m.must(m.kubectl(b, "run", "train", "--image="+images.Busybox, "--restart=Never", "--overrides="+gpuPod("1")))
	m.until(30*time.Second, "b's train unschedulable", equals("False"), b, "get", "pod", "train", "-o", `jsonpath={.status.conditions[?(@.type=="PodScheduled")].status}`)
	time.Sleep(2 * time.Second)
	if got := m.must(m.kubectl(b, "get", "pod", "train", "-o", "jsonpath={.spec.nodeName}{.status.phase}")); got != "Pending" {
		t.Errorf("b's GPU pod: %q, want Pending and unbound (the only GPU node is a's)", got)
	}

	// kplex down --delete-data leaves nothing running in containerd: no
	// agent would ever adopt the local node's pods once its data is gone.
	m.must(m.kubectl(a, "run", "sleeper", "--image="+images.Busybox, "--restart=Never", "--command", "--", "sleep", "3600"))
	m.until(90*time.Second, "a's sleeper Running", equals("Running"), a, "get", "pod", "sleeper", "-o", "jsonpath={.status.phase}")
	before, err := ctrd.Containers(context.Background())
	if err != nil || len(before) == 0 {
		t.Fatalf("containers before kplex down: %v, %v", before, err)
	}
	out, progress, err := m.kplex("down", "--delete-data")
	progress = out + progress
	if err != nil {
		t.Fatalf("kplex down --delete-data: %v\n%s", err, progress)
	}
	if !strings.Contains(progress, "Removed ") || !strings.Contains(progress, "pod(s) of local node") {
		t.Errorf("kplex down --delete-data said nothing of the local node's pods:\n%s", progress)
	}
	if left, err := ctrd.Containers(context.Background()); err != nil || len(left) != 0 {
		t.Errorf("containers left in containerd after kplex down --delete-data: %v, %v", left, err)
	}
}

// TestE2EGPUTimeSlicing: kplex-deviceplugin with NVIDIA's config format,
// 4 replicas per GPU, on a kplex-nodeagent: the node advertises 32
// nvidia.com/gpu and labels itself shared; a config with a bad field is
// refused naming it, and nothing is advertised.
func TestE2EGPUTimeSlicing(t *testing.T) {
	m := newMachine(t)
	m.up()
	dir := t.TempDir()
	dp, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dp) })
	labelsDir := filepath.Join(dir, "labels")
	m.startAgent("gpu-1", "simulated", "--port=0", "--client-ca-file=", "--device-plugin-dir="+dp, "--node-labels-dir="+labelsDir)
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "kplex-deviceplugin"), "--simulate=h100x8", "--config-file="+bad, "--device-plugin-dir="+dp).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "sharing.timeSlicing.resources[0].replicas") {
		t.Errorf("kplex-deviceplugin with replicas 0: %v\n%s\nwant a failure naming sharing.timeSlicing.resources[0].replicas", err, out)
	}
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte("version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plugin := exec.Command(filepath.Join(binDir, "kplex-deviceplugin"), "--simulate=h100x8", "--config-file="+config, "--device-plugin-dir="+dp, "--node-labels-file="+filepath.Join(labelsDir, "nvidia-gpu"))
	plugin.Stdout, plugin.Stderr = os.Stderr, os.Stderr
	if err := plugin.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plugin.Process.Kill(); _ = plugin.Wait() })
	m.until(time.Minute, "32 GPU replicas advertised", equals("32"), "--context=kplex-root", "get", "node", "gpu-1", "-o", `jsonpath={.status.allocatable.nvidia\.com/gpu}`)
	labels := m.until(30*time.Second, "sharing labels", func(s string) bool { return strings.HasPrefix(s, "4 ") },
		"--context=kplex-root", "get", "node", "gpu-1", "-o", `jsonpath={.metadata.labels.nvidia\.com/gpu\.replicas} {.metadata.labels.nvidia\.com/gpu\.sharing-strategy} {.metadata.labels.nvidia\.com/gpu\.product}`)
	if labels != "4 time-slicing NVIDIA-H100-80GB-HBM3-SHARED" {
		t.Errorf("node labels %q, want 4 time-slicing NVIDIA-H100-80GB-HBM3-SHARED", labels)
	}
}
