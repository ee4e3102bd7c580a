package server_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/component-base/configz"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/client/kubeconfig"
	"github.com/kplex/kplex/cmd/kplex-scheduler/app"
)

const gpu corev1.ResourceName = "nvidia.com/gpu"

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// env is a kplex apiserver with kplex-scheduler running against it.
type env struct {
	*servertest.Env
	root       kubernetes.Interface
	kubeconfig string
}

func start(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts etcd, an apiserver and the scheduler")
	}
	e := &env{Env: servertest.Start(t, "")}
	e.root = servertest.Client(t, e.Admin)
	e.kubeconfig = writeKubeconfig(t, e.Admin)
	return e
}

// runScheduler runs the kplex-scheduler command until stop or the end of
// the test.
func (e *env) runScheduler(t *testing.T, args ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// Upstream's Run returns an error whenever it stops: only a stop
	// before ours is a failure.
	early := make(chan error, 1)
	go func() {
		err := app.Run(ctx, append([]string{"--kubeconfig=" + e.kubeconfig, "--secure-port=0", "--leader-elect=false"}, args...))
		if ctx.Err() == nil {
			early <- fmt.Errorf("stopped by itself: %v", err)
		}
		close(early)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err, ok := <-early; ok {
				t.Errorf("kplex-scheduler: %v", err)
			}
			// The scheduler registers its config process-wide; a test
			// may start another.
			configz.Delete("componentconfig")
		})
	}
	t.Cleanup(stop)
	return stop
}

func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := kubeconfig.WriteFile(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

// node registers a Ready node in pool (none if ""), with gpus GPUs, and no
// taint but the ones given.
func (e *env) node(t *testing.T, name, pool string, gpus int64, taints ...corev1.Taint) {
	t.Helper()
	e.nodeWithHandlers(t, name, pool, gpus, nil, taints...)
}

// nodeWithHandlers registers a node whose runtime announces handlers
// (Node.status.runtimeHandlers), as a node agent does at registration.
func (e *env) nodeWithHandlers(t *testing.T, name, pool string, gpus int64, handlers []string, taints ...corev1.Taint) {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}}
	if pool != "" {
		n.Labels[schedulingv1alpha1.PoolLabel] = pool
	}
	if _, err := e.root.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := e.root.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Spec.Taints = taints // the NodeTaint admission plugin's not-ready taint goes
		if n, err = e.root.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return err
		}
		capacity := corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"),
			corev1.ResourcePods: resource.MustParse("110"), gpu: *resource.NewQuantity(gpus, resource.DecimalSI),
		}
		n.Status.Capacity, n.Status.Allocatable = capacity, capacity
		now := metav1.Now()
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KubeletReady"}}
		for _, h := range handlers {
			n.Status.RuntimeHandlers = append(n.Status.RuntimeHandlers, corev1.NodeRuntimeHandler{Name: h})
		}
		_, err = e.root.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// tenant creates a tenant with its default service account (no
// controller manager runs here) and returns its client.
func (e *env) tenant(t *testing.T, name string) kubernetes.Interface {
	t.Helper()
	c := servertest.Client(t, e.CreateTenant(t, name))
	_, err := c.CoreV1().ServiceAccounts("default").Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return c
}

type podSpec struct {
	gpus          int64
	pool          string // node selector on the pool label
	tolerateAll   bool
	priorityClass string
}

func createPod(t *testing.T, c kubernetes.Interface, name string, s podSpec) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: new(false),
			Containers:                   []corev1.Container{{Name: "c", Image: "busybox"}},
		},
	}
	if s.gpus > 0 {
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{gpu: *resource.NewQuantity(s.gpus, resource.DecimalSI)}
	}
	if s.pool != "" {
		p.Spec.NodeSelector = map[string]string{schedulingv1alpha1.PoolLabel: s.pool}
	}
	p.Spec.PriorityClassName = s.priorityClass
	if s.tolerateAll {
		p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	}
	if _, err := c.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
}

// waitBound waits for a pod to be bound and returns it.
func waitBound(t *testing.T, c kubernetes.Interface, name string) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		p, err = c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && p.Spec.NodeName != "", nil
	})
	if err != nil {
		why := ""
		if p != nil {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled {
					why = c.Message
				}
			}
		}
		t.Fatalf("pod %s not bound (%q): %v", name, why, err)
	}
	return p
}

// waitUnschedulable waits for the scheduler to report a pod unschedulable
// with a message containing want, and returns the message.
func waitUnschedulable(t *testing.T, c kubernetes.Interface, name, want string) string {
	t.Helper()
	var msg string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if p.Spec.NodeName != "" {
			return false, fmt.Errorf("pod %s was bound to %s", name, p.Spec.NodeName)
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
				msg = cond.Message
				return strings.Contains(msg, want), nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod %s not reported unschedulable with %q (last message %q): %v", name, want, msg, err)
	}
	return msg
}
