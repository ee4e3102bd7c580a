package nodeagent

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/deviceplugin/gpu"
	deviceserver "github.com/kplex/kplex/deviceplugin/server"
	"github.com/kplex/kplex/nodeagent/runtime/simulated"
)

// TestIntegrationUnhealthyGPUIsNotHandedOut: kplex-deviceplugin's server
// on a simulated 8×H100 node registers with the agent; a critical Xid on
// one GPU takes it out of the node's allocatable, and a pod asking for the
// 7 left gets 7 others; when the GPU recovers, allocatable is 8 again.
func TestIntegrationUnhealthyGPUIsNotHandedOut(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts an apiserver")
	}
	env := servertest.Start(t, "")
	env.RunControllers(t)
	a := servertest.Client(t, env.CreateTenant(t, "a"))
	root := servertest.Client(t, env.Admin)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	rt := simulated.New()
	startAgent(t, env, "node-1", rt, func(c *Config) { c.DevicePluginDir = dir })
	sims := make(chan *gpu.Simulator, 1)
	go func() {
		err := deviceserver.Run(ctx, deviceserver.Options{DevicePluginDir: dir, Simulate: "h100x8", RecoveryCheck: time.Second, Simulator: func(s *gpu.Simulator) { sims <- s }})
		if err != nil && ctx.Err() == nil {
			t.Errorf("device plugin: %v", err)
		}
	}()
	sim := <-sims
	allocatable := func(want int64) {
		t.Helper()
		eventually(t, fmt.Sprintf("node allocatable nvidia.com/gpu = %d", want), func() (bool, error) {
			n, err := root.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			q := n.Status.Allocatable["nvidia.com/gpu"]
			return q.Value() == want, fmt.Errorf("allocatable %v", q.String())
		})
	}
	allocatable(8)
	if err := sim.WaitWatched(ctx); err != nil {
		t.Fatal(err)
	}
	sick := sim.UUIDs()[3]
	if err := sim.InjectXid(sick, 79); err != nil {
		t.Fatal(err)
	}
	allocatable(7)

	p := pod("train", "node-1", v1.RestartPolicyAlways, nil)
	p.Spec.Containers[0].Env = nil
	p.Spec.Containers[0].Resources.Limits = v1.ResourceList{"nvidia.com/gpu": resource.MustParse("7")}
	if _, err := a.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := waitPhase(t, a, "train", v1.PodRunning)
	cfg := rt.ContainerConfig(containerID(running.Status.ContainerStatuses[0].ContainerID))
	var visible string
	for _, kv := range cfg.GetEnvs() {
		if kv.Key == "NVIDIA_VISIBLE_DEVICES" {
			visible = string(kv.Value)
		}
	}
	got := strings.Split(visible, ",")
	if len(got) != 7 || strings.Contains(visible, sick) {
		t.Errorf("NVIDIA_VISIBLE_DEVICES=%s: want 7 GPUs, not the unhealthy %s", visible, sick)
	}

	if err := sim.Recover(sick); err != nil {
		t.Fatal(err)
	}
	allocatable(8)
}
