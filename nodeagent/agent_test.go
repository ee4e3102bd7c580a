package nodeagent

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/nodeagent/runtime/simulated"
)

// startAgent runs a simulated agent for node name until the returned stop
// is called; rt, when not nil, is its runtime (kept across restarts).
func startAgent(t *testing.T, env *servertest.Env, name string, rt *simulated.Runtime, configure ...func(*Config)) (stop func()) {
	t.Helper()
	cfg := NewConfig()
	cfg.NodeName = name
	cfg.NodeIP = "127.0.0.1"
	cfg.RuntimeEndpoint = RuntimeSimulated
	cfg.Port = 0
	cfg.RootDir = t.TempDir()
	cfg.RenewInterval = time.Second
	cfg.LeaseDuration = 5 * time.Second
	cfg.SyncFrequency = 200 * time.Millisecond
	for _, c := range configure {
		c(cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, env.Admin, func(string) Runtime {
			return Runtime{Service: rt, Images: simulated.Images{}, HostNetworkOnly: true, Scheme: simulated.RuntimeName}
		})
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		ok, err := cond()
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within a minute (last error: %v)", what, last)
	}
}

func pod(name, node string, policy v1.RestartPolicy, annotations map[string]string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: v1.PodSpec{
			NodeName: node, RestartPolicy: policy,
			Containers: []v1.Container{{Name: "app", Image: "kplex.local/busybox:1.35",
				Env: []v1.EnvVar{{Name: "FROM_CM", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}, Key: "greeting"}}}}}},
		},
	}
}

func waitPhase(t *testing.T, c kubernetes.Interface, name string, phase v1.PodPhase) *v1.Pod {
	t.Helper()
	var got *v1.Pod
	eventually(t, fmt.Sprintf("pod %s %s", name, phase), func() (bool, error) {
		p, err := c.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = p
		return p.Status.Phase == phase, fmt.Errorf("phase %q, statuses %+v", p.Status.Phase, p.Status.ContainerStatuses)
	})
	return got
}

func TestIntegrationAgentRunsPodsOfEveryTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts an apiserver")
	}
	env := servertest.Start(t, "")
	env.RunControllers(t)
	root := servertest.Client(t, env.Admin)
	a := servertest.Client(t, env.CreateTenant(t, "a"))
	b := servertest.Client(t, env.CreateTenant(t, "b"))
	ctx := context.Background()
	env.CreateScheduling(t, "apiVersion: scheduling.kplex.io/v1alpha1\nkind: NodePool\nmetadata: {name: pool-x}\nspec: {mode: shared}\n")
	rt := simulated.New()
	stop := startAgent(t, env, "node-1", rt, func(c *Config) { c.Pool = "pool-x"; c.Labels = map[string]string{"zone": "z1"} })

	// Registration: labels, capacity, Ready, a Lease owned by the node.
	var node *v1.Node
	eventually(t, "node registered and ready", func() (bool, error) {
		n, err := root.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = n
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady {
				return c.Status == v1.ConditionTrue, fmt.Errorf("ready %s", c.Status)
			}
		}
		return false, nil
	})
	if node.Labels[schedulingv1alpha1.PoolLabel] != "pool-x" || node.Labels["zone"] != "z1" {
		t.Errorf("node labels %v: want kplex.io/pool=pool-x and zone=z1", node.Labels)
	}
	if q := node.Status.Allocatable[v1.ResourcePods]; q.Value() != DefaultMaxPods {
		t.Errorf("allocatable pods %v, want %d", q.String(), DefaultMaxPods)
	}
	if node.Status.NodeInfo.ContainerRuntimeVersion == "" || node.Status.DaemonEndpoints.KubeletEndpoint.Port != 0 {
		t.Errorf("node info %+v endpoints %+v", node.Status.NodeInfo, node.Status.DaemonEndpoints)
	}
	eventually(t, "node lease", func() (bool, error) {
		l, err := root.CoordinationV1().Leases(NodeLeaseNamespace).Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(l.OwnerReferences) == 1 && l.OwnerReferences[0].UID == node.UID, nil
	})

	// The same pod name in two tenants: each runs, each tenant sees its own,
	// with env from its own ConfigMap.
	for tenantName, c := range map[string]kubernetes.Interface{"a": a, "b": b} {
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"greeting": "hello " + tenantName}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CoreV1().Pods("default").Create(ctx, pod("web", "node-1", v1.RestartPolicyAlways, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	webA := waitPhase(t, a, "web", v1.PodRunning)
	webB := waitPhase(t, b, "web", v1.PodRunning)
	if webA.Status.ContainerStatuses[0].ContainerID == webB.Status.ContainerStatuses[0].ContainerID {
		t.Errorf("both tenants' web report container %s", webA.Status.ContainerStatuses[0].ContainerID)
	}
	if webA.Status.PodIP != "127.0.0.1" || !webA.Status.ContainerStatuses[0].Ready {
		t.Errorf("tenant a's web: podIP %q, container %+v", webA.Status.PodIP, webA.Status.ContainerStatuses[0])
	}
	containers, _ := rt.ListContainers(ctx, nil)
	envs := map[string]bool{}
	for _, c := range containers {
		st, _ := rt.ContainerStatus(ctx, c.Id, false)
		_ = st
		envs[c.Labels[labelTenant]] = true
	}
	if len(containers) != 2 || !envs["a"] || !envs["b"] {
		t.Errorf("runtime runs %d containers of tenants %v, want one of a and one of b", len(containers), envs)
	}

	// Run to completion: a Never pod succeeds; one that exits 3 fails.
	if _, err := a.CoreV1().Pods("default").Create(ctx, pod("job", "node-1", v1.RestartPolicyNever, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, a, "job", v1.PodSucceeded)
	if _, err := a.CoreV1().Pods("default").Create(ctx, pod("bad", "node-1", v1.RestartPolicyNever, map[string]string{simulated.ExitCodeAnnotation: "3", simulated.ExitAfterAnnotation: "100ms"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := waitPhase(t, a, "bad", v1.PodFailed)
	if term := bad.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 3 {
		t.Errorf("bad's container state %+v, want terminated with exit code 3", bad.Status.ContainerStatuses[0].State)
	}
	// Restart per policy: an Always pod whose container exits restarts.
	if _, err := b.CoreV1().Pods("default").Create(ctx, pod("crash", "node-1", v1.RestartPolicyAlways, map[string]string{simulated.ExitCodeAnnotation: "1", simulated.ExitAfterAnnotation: "100ms"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "crash restarted", func() (bool, error) {
		p, err := b.CoreV1().Pods("default").Get(ctx, "crash", metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false, err
		}
		cs := p.Status.ContainerStatuses[0]
		return cs.RestartCount >= 1 && cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.ExitCode == 1, fmt.Errorf("%+v", cs)
	})

	// Agent restart over the same runtime: running pods keep their containers.
	stop()
	eventually(t, "node not ready after the agent stopped", func() (bool, error) {
		n, err := root.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady {
				return c.Status == v1.ConditionFalse && c.Reason == "KubeletStopped", nil
			}
		}
		return false, nil
	})
	if err := b.CoreV1().Pods("default").Delete(ctx, "crash", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	startAgent(t, env, "node-1", rt, func(c *Config) { c.Pool = "pool-x" })
	waitPhase(t, a, "web", v1.PodRunning)
	eventually(t, "web in tenant a unchanged after restart", func() (bool, error) {
		p, err := a.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cs := p.Status.ContainerStatuses[0]
		return cs.ContainerID == webA.Status.ContainerStatuses[0].ContainerID && cs.RestartCount == 0, fmt.Errorf("%+v", cs)
	})
	// A pod deleted while the agent was down does not run on.
	eventually(t, "crash's containers gone", func() (bool, error) {
		sbs, err := rt.ListPodSandbox(ctx, nil)
		for _, s := range sbs {
			if s.Labels[labelPodName] == "crash" {
				return false, err
			}
		}
		return true, err
	})

	// Deletion: the agent stops the containers and lets the pod go, in that
	// tenant only.
	if err := a.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's web gone", func() (bool, error) {
		_, err := a.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	if p, err := b.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{}); err != nil || p.Status.Phase != v1.PodRunning {
		t.Errorf("b's web after a's was deleted: %v %v", err, p.Status.Phase)
	}
}
