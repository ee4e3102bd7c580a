package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/nodeagent/runtime/simulated"
)

// TestVolumeFilesHaveTheirModes: a volume's defaultMode and an item's own
// mode are the files' modes, as upstream's conformance tests read them
// (upstream's default is 0644).
func TestVolumeFilesHaveTheirModes(t *testing.T) {
	cfg := NewConfig()
	cfg.RootDir = t.TempDir()
	w := &podWorker{agent: &Agent{cfg: cfg}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-1", Labels: map[string]string{"a": "b"}}}
	mode := func(m int32) *int32 { return &m }
	name := v1.ObjectFieldSelector{FieldPath: "metadata.name"}
	for _, c := range []struct {
		vol  v1.VolumeSource
		want map[string]os.FileMode
	}{
		{v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{{Path: "name", FieldRef: &name}}}},
			map[string]os.FileMode{"name": 0o644}},
		{v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{DefaultMode: mode(0o400), Items: []v1.DownwardAPIVolumeFile{
			{Path: "name", FieldRef: &name}, {Path: "sub/own", FieldRef: &name, Mode: mode(0o640)}}}},
			map[string]os.FileMode{"name": 0o400, "sub/own": 0o640}},
		{v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{DefaultMode: mode(0o440), Sources: []v1.VolumeProjection{
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{{Path: "name", FieldRef: &name}}}}}}},
			map[string]os.FileMode{"name": 0o440}},
	} {
		vol := &v1.Volume{Name: "v", VolumeSource: c.vol}
		dir, err := w.volume(context.Background(), pod, vol)
		if err != nil {
			t.Fatal(err)
		}
		for file, want := range c.want {
			st, err := os.Stat(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", file, st.Mode().Perm(), want)
			}
		}
		os.RemoveAll(dir)
	}
}

// TestDownwardResourceFields: a container's requests and limits, in the
// divisor's units; a limit it does not set is the node's allocatable.
func TestDownwardResourceFields(t *testing.T) {
	cfg := NewConfig()
	cfg.RootDir = t.TempDir()
	node := &nodeStatus{capacity: func() v1.ResourceList {
		return v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("1Gi")}
	}}
	w := &podWorker{agent: &Agent{cfg: cfg, node: node}}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-2"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
			Limits: v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m")}, Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("32Mi")}}}}},
	}
	milli, mebi := resource.MustParse("1m"), resource.MustParse("1Mi")
	vol := &v1.Volume{Name: "v", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
		{Path: "cpu_limit", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.cpu", Divisor: milli}},
		{Path: "memory_request", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "c", Resource: "requests.memory", Divisor: mebi}},
		{Path: "memory_limit", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory", Divisor: mebi}},
	}}}}
	dir, err := w.volume(context.Background(), pod, vol)
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"cpu_limit": "500", "memory_request": "32", "memory_limit": "1024"} {
		got, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q (%v), want %q", file, got, err, want)
		}
	}
	env, ok, err := w.envValue(context.Background(), pod, &pod.Spec.Containers[0], v1.EnvVar{Name: "CPU", ValueFrom: &v1.EnvVarSource{
		ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: milli}}})
	if err != nil || !ok || env != "500" {
		t.Errorf("env from limits.cpu = %q, %v, %v; want 500", env, ok, err)
	}
}

// TestIntegrationVolumesFollowTheirConfigMaps: a running pod's configMap
// volume follows its own tenant's ConfigMap (a changed key, a deleted
// one), never another tenant's of the same name; its downwardAPI files
// follow the pod's labels.
func TestIntegrationVolumesFollowTheirConfigMaps(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts an apiserver")
	}
	env := servertest.Start(t, "")
	env.RunControllers(t)
	ctx := context.Background()
	clients := map[string]kubernetes.Interface{"vol-a": servertest.Client(t, env.CreateTenant(t, "vol-a")), "vol-b": servertest.Client(t, env.CreateTenant(t, "vol-b"))}
	rootDir := t.TempDir()
	startAgent(t, env, "node-1", simulated.New(), func(c *Config) { c.RootDir = rootDir })
	labels := v1.ObjectFieldSelector{FieldPath: "metadata.labels"}
	uids := map[string]string{}
	for name, c := range clients {
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"},
			Data: map[string]string{"greeting": "hello " + name, "extra": "x"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := pod("web", "node-1", v1.RestartPolicyAlways, nil)
		p.Labels = map[string]string{"rev": "1"}
		p.Spec.Volumes = []v1.Volume{
			{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}}}},
			{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &labels}}}}},
		}
		p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "cfg", MountPath: "/cfg"}, {Name: "info", MountPath: "/info"}}
		created, err := c.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids[name] = string(created.UID)
		waitPhase(t, c, "web", v1.PodRunning)
	}
	file := func(tenantName, vol, name string) string {
		b, err := os.ReadFile(filepath.Join(rootDir, "pods", uids[tenantName], "volumes", vol, name))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	if got := file("vol-a", "cfg", "greeting"); got != "hello vol-a" {
		t.Fatalf("vol-a's greeting: %q", got)
	}
	a := clients["vol-a"]
	if _, err := a.CoreV1().ConfigMaps("default").Update(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data: map[string]string{"greeting": "changed"}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CoreV1().Pods("default").Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"labels":{"rev":"2"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "vol-a's volume follows its ConfigMap and labels", func() (bool, error) {
		greeting, extra, info := file("vol-a", "cfg", "greeting"), file("vol-a", "cfg", "extra"), file("vol-a", "info", "labels")
		return greeting == "changed" && strings.HasPrefix(extra, "<") && strings.Contains(info, `rev="2"`),
			fmt.Errorf("greeting %q, extra %q, labels %q", greeting, extra, info)
	})
	if got := file("vol-b", "cfg", "greeting") + "|" + file("vol-b", "cfg", "extra"); got != "hello vol-b|x" {
		t.Errorf("vol-b's volume after vol-a's ConfigMap changed: %q", got)
	}
}

// TestSubPathExprExpandsTheEnvironment: $(VAR) in subPathExpr comes from
// the container's environment; an expansion that leaves the volume is
// refused.
func TestSubPathExprExpandsTheEnvironment(t *testing.T) {
	cfg := NewConfig()
	cfg.RootDir = t.TempDir()
	w := &podWorker{agent: &Agent{cfg: cfg}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-3"},
		Spec: v1.PodSpec{Volumes: []v1.Volume{{Name: "work", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}}}
	env := map[string]string{"POD_NAME": "p", "UP": ".."}
	c := &v1.Container{Name: "c", VolumeMounts: []v1.VolumeMount{{Name: "work", MountPath: "/work", SubPathExpr: "logs/$(POD_NAME)"}}}
	mounts, err := w.mounts(context.Background(), pod, c, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(volumesDir(cfg.RootDir, pod.UID), "work", "logs", "p")
	if len(mounts) != 1 || mounts[0].HostPath != want {
		t.Errorf("mounts %v, want %s", mounts, want)
	}
	if st, err := os.Stat(want); err != nil || !st.IsDir() {
		t.Errorf("the expanded subpath was not made: %v", err)
	}
	c.VolumeMounts[0].SubPathExpr = "$(UP)/$(UP)"
	if _, err := w.mounts(context.Background(), pod, c, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "leaves the volume") {
		t.Errorf("a subPathExpr expanding to ../..: %v, want a refusal", err)
	}
}
