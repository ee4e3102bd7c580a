package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
