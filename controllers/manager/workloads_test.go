package manager_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/controllers/manager"
	"github.com/kplex/kplex/controllers/namespace"
	"github.com/kplex/kplex/controllers/workloads"
)

// runManager runs a controller manager against e, with a short quiet
// period, until the test ends.
func runManager(t *testing.T, e *servertest.Env) *manager.Manager {
	t.Helper()
	return runManagerWith(t, e, manager.Options{})
}

// runManagerWith is runManager with opts; Loopback, RootCA and
// QuietPeriod are filled in.
func runManagerWith(t *testing.T, e *servertest.Env, opts manager.Options) *manager.Manager {
	t.Helper()
	ca, err := os.ReadFile(e.Admin.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	opts.Loopback, opts.RootCA, opts.QuietPeriod = e.Admin, ca, quiet
	m, err := manager.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return m
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
}

// podsOf returns the names of the pods in ns controlled by a ReplicaSet
// that d controls, failing on a pod controlled by anything else.
func podsOf(ctx context.Context, c kubernetes.Interface, ns string, d *appsv1.Deployment) ([]string, error) {
	rss, err := c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ours := map[string]bool{}
	for _, rs := range rss.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == d.UID {
			ours[string(rs.UID)] = true
		}
	}
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range pods.Items {
		ref := metav1.GetControllerOf(&p)
		if ref == nil || !ours[string(ref.UID)] {
			return nil, fmt.Errorf("pod %s/%s is not controlled by a ReplicaSet of deployment %s (uid %s)", ns, p.Name, d.Name, d.UID)
		}
		names = append(names, p.Name)
	}
	return names, nil
}

func waitReplicas(t *testing.T, c kubernetes.Interface, tenantName string, d *appsv1.Deployment, want int) {
	t.Helper()
	var last []string
	var mismatch error
	defer func() {
		if t.Failed() && mismatch != nil {
			t.Logf("last seen: %v", mismatch)
		}
	}()
	eventually(t, 60*time.Second, fmt.Sprintf("%d pods of deployment %s in %s", want, d.Name, tenantName), func(ctx context.Context) (bool, error) {
		names, err := podsOf(ctx, c, d.Namespace, d)
		if err != nil {
			// Lists from the watch cache may lag one another: a pod
			// whose ReplicaSet the list missed is checked again.
			mismatch = err
			return false, nil
		}
		last = names
		got, err := c.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(names) == want && got.Status.Replicas == int32(want) && got.Status.ObservedGeneration == got.Generation, nil
	})
	t.Logf("%s: deployment %s has pods %v", tenantName, d.Name, last)
}

func TestIntegrationDeploymentsMakePodsPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	a := servertest.Client(t, e.CreateTenant(t, "wl-a"))
	b := servertest.Client(t, e.CreateTenant(t, "wl-b"))
	e.CreateTenant(t, "wl-idle")
	m := runManager(t, e)
	ctx := context.Background()

	// The same deployment name in both tenants, different sizes.
	da, err := a.AppsV1().Deployments("default").Create(ctx, deployment("web", 3), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.AppsV1().Deployments("default").Create(ctx, deployment("web", 1), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, a, "wl-a", da, 3)
	waitReplicas(t, b, "wl-b", db, 1)
	for _, name := range []string{workloads.DeploymentName, workloads.ReplicaSetName} {
		if got := m.AwakeTenants(name); slices.Contains(got, "wl-idle") {
			t.Errorf("%s awake in the untouched tenant: %v", name, got)
		}
	}

	// Scaling A down changes nothing in B.
	scale, err := a.AppsV1().Deployments("default").GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 2
	if _, err := a.AppsV1().Deployments("default").UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, a, "wl-a", da, 2)
	podsB, err := podsOf(ctx, b, "default", db)
	if err != nil || len(podsB) != 1 {
		t.Fatalf("wl-b's pods after a scale in wl-a: %v, %v", podsB, err)
	}

	// A deleted pod is replaced, in its own tenant.
	podsA, err := podsOf(ctx, a, "default", da)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CoreV1().Pods("default").Delete(ctx, podsA[0], metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the deleted pod replaced in wl-a", func(ctx context.Context) (bool, error) {
		names, err := podsOf(ctx, a, "default", da)
		return err == nil && len(names) == 2 && !slices.Contains(names, podsA[0]), nil
	})

	// A rollout makes a second ReplicaSet in A only.
	cur, err := a.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Template.Spec.Containers[0].Image = "busybox:2"
	if _, err := a.AppsV1().Deployments("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "a second ReplicaSet in wl-a", func(ctx context.Context) (bool, error) {
		rss, err := a.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(rss.Items) == 2, err
	})
	rssB, err := b.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(rssB.Items) != 1 {
		t.Errorf("wl-b has %d ReplicaSets after a rollout in wl-a, want 1 (%v)", len(rssB.Items), err)
	}
}

var widgets = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

func createWidgetCRD(t *testing.T, cfg *rest.Config) {
	t.Helper()
	c, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: new(true),
				}},
			}},
		},
	}
	if _, err := c.ApiextensionsV1().CustomResourceDefinitions().Create(context.Background(), crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "widgets.example.com established", func(ctx context.Context) (bool, error) {
		got, err := c.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

func TestIntegrationNamespaceDeletionPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	cfgA := e.CreateTenant(t, "ns-a")
	a := servertest.Client(t, cfgA)
	b := servertest.Client(t, e.CreateTenant(t, "ns-b"))
	m := runManager(t, e)
	ctx := context.Background()
	createWidgetCRD(t, cfgA)
	dynA, err := dynamic.NewForConfig(cfgA)
	if err != nil {
		t.Fatal(err)
	}

	// The same namespace, with the same ConfigMap, in both tenants; A's
	// also holds a Deployment (with its pods) and a custom resource.
	for _, c := range []kubernetes.Interface{a, b} {
		createNamespace(t, c, "doomed")
		if _, err := c.CoreV1().ConfigMaps("doomed").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := a.AppsV1().Deployments("doomed").Create(ctx, deployment("web", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, a, "ns-a", d, 2)
	w := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w"}}}
	if _, err := dynA.Resource(widgets).Namespace("doomed").Create(ctx, w, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := a.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "namespace doomed gone from ns-a", func(ctx context.Context) (bool, error) {
		_, err := a.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	t.Logf("namespace with a deployment, pods, a ConfigMap and a custom resource deleted in %v", time.Since(start).Round(time.Millisecond))
	if got := m.AwakeTenants(namespace.Name); slices.Contains(got, "ns-b") {
		t.Errorf("namespace controller awake in ns-b, which deleted nothing: %v", got)
	}

	// Its contents went with it; B's namespace of the same name is whole.
	for _, key := range []string{"/registry/configmaps/ns-a/doomed/", "/registry/pods/ns-a/doomed/", "/registry/deployments/ns-a/doomed/", "/registry/example.com/widgets/ns-a/doomed/"} {
		if keys := e.EtcdKeys(t, key); len(keys) != 0 {
			t.Errorf("etcd still holds %v after the namespace was deleted", keys)
		}
	}
	ns, err := b.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
	if err != nil || ns.DeletionTimestamp != nil {
		t.Fatalf("ns-b's namespace doomed after a delete in ns-a: %v, deletionTimestamp %v", err, ns.DeletionTimestamp)
	}
	if _, err := b.CoreV1().ConfigMaps("doomed").Get(ctx, "cfg", metav1.GetOptions{}); err != nil {
		t.Errorf("ns-b's ConfigMap after a delete in ns-a: %v", err)
	}

	// The name is free again in A.
	createNamespace(t, a, "doomed")
}

func TestIntegrationJobsCompletePerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	a := servertest.Client(t, e.CreateTenant(t, "job-a"))
	b := servertest.Client(t, e.CreateTenant(t, "job-b"))
	runManager(t, e)
	ctx := context.Background()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "once"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "c", Image: "busybox", Command: []string{"true"}}},
		}}},
	}
	jobPod := func(c kubernetes.Interface, tenantName string) *corev1.Pod {
		var out *corev1.Pod
		eventually(t, 60*time.Second, "the job's pod in "+tenantName, func(ctx context.Context) (bool, error) {
			pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "job-name=once"})
			if err != nil || len(pods.Items) != 1 {
				return false, err
			}
			out = &pods.Items[0]
			return true, nil
		})
		return out
	}
	for _, c := range []kubernetes.Interface{a, b} {
		if _, err := c.BatchV1().Jobs("default").Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pa, pb := jobPod(a, "job-a"), jobPod(b, "job-b")

	// No node runs pods yet: the test plays the kubelet and reports A's
	// pod finished.
	now := metav1.Now()
	pa.Status.Phase = corev1.PodSucceeded
	pa.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, FinishedAt: now, StartedAt: now}}}}
	if _, err := a.CoreV1().Pods("default").UpdateStatus(ctx, pa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "job-a's job complete", func(ctx context.Context) (bool, error) {
		j, err := a.BatchV1().Jobs("default").Get(ctx, "once", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return j.Status.Succeeded == 1, nil
			}
		}
		return false, nil
	})
	jb, err := b.BatchV1().Jobs("default").Get(ctx, "once", metav1.GetOptions{})
	if err != nil || jb.Status.Succeeded != 0 || jb.Status.CompletionTime != nil {
		t.Errorf("job-b's job after job-a's completed: %+v, %v", jb.Status, err)
	}
	if got, err := b.CoreV1().Pods("default").Get(ctx, pb.Name, metav1.GetOptions{}); err != nil || got.Status.Phase == corev1.PodSucceeded {
		t.Errorf("job-b's pod: %v, %v", got.Status.Phase, err)
	}
}

// TestIntegrationRestartConverges: what changed while the controller
// manager was down is found by the next one's start-up sweep.
func TestIntegrationRestartConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	a := servertest.Client(t, e.CreateTenant(t, "rs-a"))
	ca, err := os.ReadFile(e.Admin.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := func() (stop func()) {
		m, err := manager.New(manager.Options{Loopback: e.Admin, RootCA: ca, QuietPeriod: quiet})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(runCtx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		}
	}
	stop := start()
	d1, err := a.AppsV1().Deployments("default").Create(ctx, deployment("first", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, a, "rs-a", d1, 2)
	stop()

	// While it is down: a deployment goes (its dependents stay, for now),
	// another comes.
	if err := a.AppsV1().Deployments("default").Delete(ctx, "first", metav1.DeleteOptions{PropagationPolicy: new(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	d2, err := a.AppsV1().Deployments("default").Create(ctx, deployment("second", 1), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if pods, err := a.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=first"}); err != nil || len(pods.Items) != 2 {
		t.Fatalf("with no controllers running, the deleted deployment's pods: %d (%v), want 2 still there", len(pods.Items), err)
	}

	t.Cleanup(start())
	waitReplicas(t, a, "rs-a", d2, 1)
	eventually(t, 60*time.Second, "the deleted deployment's ReplicaSet and pods collected", func(ctx context.Context) (bool, error) {
		pods, err := a.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=first"})
		if err != nil {
			return false, err
		}
		rss, err := a.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=first"})
		return err == nil && len(pods.Items) == 0 && len(rss.Items) == 0, err
	})
}

// succeed reports pod p finished, as a kubelet would.
func succeed(t *testing.T, c kubernetes.Interface, p *corev1.Pod) {
	t.Helper()
	now := metav1.Now()
	p.Status.Phase = corev1.PodSucceeded
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, FinishedAt: now, StartedAt: now}}}}
	if _, err := c.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationCronJobsAndTTLPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	a := servertest.Client(t, e.CreateTenant(t, "cron-a"))
	b := servertest.Client(t, e.CreateTenant(t, "cron-b"))
	m := runManager(t, e)
	ctx := context.Background()
	template := batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{{Name: "c", Image: "busybox"}},
	}}}}

	// TTL: A's finished job goes after its TTL; B's unfinished one stays.
	ttl := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "short"}, Spec: template.Spec}
	ttl.Spec.TTLSecondsAfterFinished = new(int32(2))
	for _, c := range []kubernetes.Interface{a, b} {
		if _, err := c.BatchV1().Jobs("default").Create(ctx, ttl, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var pod *corev1.Pod
	eventually(t, 60*time.Second, "cron-a's job pod", func(ctx context.Context) (bool, error) {
		pods, err := a.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "job-name=short"})
		if err != nil || len(pods.Items) != 1 {
			return false, err
		}
		pod = &pods.Items[0]
		return true, nil
	})
	succeed(t, a, pod)
	gone(t, "cron-a's finished job, after its TTL", func(ctx context.Context) error {
		_, err := a.BatchV1().Jobs("default").Get(ctx, "short", metav1.GetOptions{})
		return err
	})
	if _, err := b.BatchV1().Jobs("default").Get(ctx, "short", metav1.GetOptions{}); err != nil {
		t.Errorf("cron-b's unfinished job: %v", err)
	}

	// CronJob: every minute in A, suspended in B. A's controller sleeps
	// between runs and its timer wakes it for the next.
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "tick"}, Spec: batchv1.CronJobSpec{Schedule: "* * * * *", JobTemplate: template}}
	if _, err := a.BatchV1().CronJobs("default").Create(ctx, cj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cj.Spec.Suspend = new(true)
	if _, err := b.BatchV1().CronJobs("default").Create(ctx, cj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "cron-a's cronjob controller asleep", func(context.Context) (bool, error) {
		return !slices.Contains(m.AwakeTenants(workloads.CronJobName), "cron-a"), nil
	})
	eventually(t, 90*time.Second, "a job of cron-a's cronjob", func(ctx context.Context) (bool, error) {
		jobs, err := a.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, j := range jobs.Items {
			if ref := metav1.GetControllerOf(&j); ref != nil && ref.Kind == "CronJob" && ref.Name == "tick" {
				return true, nil
			}
		}
		return false, nil
	})
	jobs, err := b.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(jobs.Items) != 1 {
		t.Errorf("cron-b has %d jobs (%v), want only its unfinished one: its cronjob is suspended", len(jobs.Items), err)
	}
}

func TestIntegrationStatefulSetsPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	a := servertest.Client(t, e.CreateTenant(t, "sts-a"))
	b := servertest.Client(t, e.CreateTenant(t, "sts-b"))
	runManager(t, e)
	ctx := context.Background()
	set := func(replicas int32) *appsv1.StatefulSet {
		labels := map[string]string{"app": "db"}
		return &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "db"},
			Spec: appsv1.StatefulSetSpec{
				Replicas:            &replicas,
				PodManagementPolicy: appsv1.ParallelPodManagement, // no kubelet makes pods ready
				Selector:            &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
				},
				VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
					ObjectMeta: metav1.ObjectMeta{Name: "data"},
					Spec: corev1.PersistentVolumeClaimSpec{
						AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
						Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
					},
				}},
			},
		}
	}
	if _, err := a.AppsV1().StatefulSets("default").Create(ctx, set(2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppsV1().StatefulSets("default").Create(ctx, set(1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{"sts-a": {"db-0", "db-1"}, "sts-b": {"db-0"}} {
		c := a
		if name == "sts-b" {
			c = b
		}
		eventually(t, 60*time.Second, name+"'s stateful pods and claims", func(ctx context.Context) (bool, error) {
			pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=db"})
			if err != nil {
				return false, err
			}
			var got []string
			for _, p := range pods.Items {
				got = append(got, p.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return false, nil
			}
			for _, p := range want {
				if _, err := c.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-"+p, metav1.GetOptions{}); err != nil {
					return false, nil
				}
			}
			return true, nil
		})
	}
	if _, err := b.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-db-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("sts-b's claim data-db-1: %v, want NotFound (it is sts-a's)", err)
	}
}

func TestIntegrationPodDisruptionBudgetsPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	a := servertest.Client(t, e.CreateTenant(t, "pdb-a"))
	b := servertest.Client(t, e.CreateTenant(t, "pdb-b"))
	runManager(t, e)
	ctx := context.Background()
	d, err := a.AppsV1().Deployments("default").Create(ctx, deployment("web", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, a, "pdb-a", d, 2)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: new(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		},
	}
	for _, c := range []kubernetes.Interface{a, b} {
		if _, err := c.PolicyV1().PodDisruptionBudgets("default").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A's budget counts A's two pods (not ready: no kubelet), B's none.
	for name, c := range map[string]kubernetes.Interface{"pdb-a": a, "pdb-b": b} {
		want := map[string]int32{"pdb-a": 2, "pdb-b": 0}[name]
		eventually(t, 60*time.Second, name+"'s budget status", func(ctx context.Context) (bool, error) {
			got, err := c.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			s := got.Status
			return s.ObservedGeneration == got.Generation && s.ExpectedPods == want && s.DesiredHealthy == 1 && s.DisruptionsAllowed == 0, nil
		})
	}
}

// TestIntegrationReplicationControllersPerTenant: a tenant's
// ReplicationController gets its pods (upstream's garbage collector
// conformance tests use them), sized per tenant under one name, and an
// untouched tenant runs no instance.
func TestIntegrationReplicationControllersPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	a := servertest.Client(t, e.CreateTenant(t, "rc-a"))
	b := servertest.Client(t, e.CreateTenant(t, "rc-b"))
	e.CreateTenant(t, "rc-idle")
	m := runManager(t, e)
	ctx := context.Background()
	rc := func(n int32) *corev1.ReplicationController {
		labels := map[string]string{"app": "web"}
		return &corev1.ReplicationController{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: corev1.ReplicationControllerSpec{Replicas: &n, Selector: labels, Template: &corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			}},
		}
	}
	for c, n := range map[kubernetes.Interface]int32{a: 3, b: 1} {
		if _, err := c.CoreV1().ReplicationControllers("default").Create(ctx, rc(n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]int{"rc-a": 3, "rc-b": 1} {
		c := map[string]kubernetes.Interface{"rc-a": a, "rc-b": b}[name]
		eventually(t, 60*time.Second, fmt.Sprintf("%d pods of ReplicationController web in %s", want, name), func(ctx context.Context) (bool, error) {
			pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				return false, err
			}
			got, err := c.CoreV1().ReplicationControllers("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return len(pods.Items) == want && got.Status.Replicas == int32(want), nil
		})
	}
	if got := m.AwakeTenants(workloads.ReplicationControllerName); slices.Contains(got, "rc-idle") {
		t.Errorf("the replication manager awake in the untouched tenant: %v", got)
	}
}
