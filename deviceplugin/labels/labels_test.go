package labels_test

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplex/kplex/deviceplugin/gpu"
	"github.com/kplex/kplex/deviceplugin/labels"
)

func h100s(n int) []gpu.Device {
	var devs []gpu.Device
	for i := 0; i < n; i++ {
		devs = append(devs, gpu.Device{
			Index: i, UUID: "GPU-" + string(rune('a'+i)), Name: "NVIDIA H100 80GB HBM3",
			MemoryMiB: 81559, ComputeMajor: 9, ComputeMinor: 0, MIGCapable: true,
		})
	}
	return devs
}

var info = gpu.Info{DriverVersion: "550.54.15", CUDAVersion: "12.4"}

// The labels that do not depend on sharing, for 8 H100s.
func base() map[string]string {
	return map[string]string{
		"nvidia.com/gpu.present":                  "true",
		"nvidia.com/gpu.count":                    "8",
		"nvidia.com/gpu.product":                  "NVIDIA-H100-80GB-HBM3",
		"nvidia.com/gpu.memory":                   "81559",
		"nvidia.com/gpu.family":                   "hopper",
		"nvidia.com/gpu.compute.major":            "9",
		"nvidia.com/gpu.compute.minor":            "0",
		"nvidia.com/gpu.replicas":                 "1",
		"nvidia.com/gpu.sharing-strategy":         "none",
		"nvidia.com/mig.capable":                  "true",
		"nvidia.com/cuda.driver-version.full":     "550.54.15",
		"nvidia.com/cuda.driver-version.major":    "550",
		"nvidia.com/cuda.driver-version.minor":    "54",
		"nvidia.com/cuda.driver-version.revision": "15",
		"nvidia.com/cuda.driver.major":            "550",
		"nvidia.com/cuda.driver.minor":            "54",
		"nvidia.com/cuda.driver.rev":              "15",
		"nvidia.com/cuda.runtime-version.full":    "12.4",
		"nvidia.com/cuda.runtime-version.major":   "12",
		"nvidia.com/cuda.runtime-version.minor":   "4",
		"nvidia.com/cuda.runtime.major":           "12",
		"nvidia.com/cuda.runtime.minor":           "4",
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	m = maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

func TestLabels(t *testing.T) {
	a100 := gpu.Device{Name: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, ComputeMajor: 8, MIGCapable: true}
	t4 := gpu.Device{Name: "Tesla T4", MemoryMiB: 15360, ComputeMajor: 7, ComputeMinor: 5}
	for _, tc := range []struct {
		name    string
		devs    []gpu.Device
		info    gpu.Info
		sharing labels.Sharing
		want    map[string]string
	}{
		{name: "not shared", devs: h100s(8), info: info, want: base()},
		{name: "strategy none", devs: h100s(8), info: info, sharing: labels.Sharing{Strategy: "none", Replicas: 4}, want: base()},
		{
			name: "time-slicing", devs: h100s(8), info: info,
			sharing: labels.Sharing{Strategy: "time-slicing", Replicas: 4},
			want: with(base(), "nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3-SHARED",
				"nvidia.com/gpu.replicas", "4", "nvidia.com/gpu.sharing-strategy", "time-slicing"),
		},
		{
			name: "time-slicing renamed", devs: h100s(8), info: info,
			sharing: labels.Sharing{Strategy: "time-slicing", Replicas: 10, RenameByDefault: true},
			want:    with(base(), "nvidia.com/gpu.replicas", "10", "nvidia.com/gpu.sharing-strategy", "time-slicing"),
		},
		{
			name: "time-slicing with one replica is not sharing", devs: h100s(8), info: info,
			sharing: labels.Sharing{Strategy: "time-slicing", Replicas: 1},
			want:    base(),
		},
		{
			name: "mixed GPUs: the first one's", devs: append(h100s(1), a100, t4), info: info,
			want: with(base(), "nvidia.com/gpu.count", "3"),
		},
		{
			name: "ampere, MIG off everywhere but capable", devs: []gpu.Device{a100}, info: gpu.Info{DriverVersion: "535.104", CUDAVersion: "12.2"},
			want: map[string]string{
				"nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": "1",
				"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB", "nvidia.com/gpu.memory": "40960",
				"nvidia.com/gpu.family": "ampere", "nvidia.com/gpu.compute.major": "8", "nvidia.com/gpu.compute.minor": "0",
				"nvidia.com/gpu.replicas": "1", "nvidia.com/gpu.sharing-strategy": "none", "nvidia.com/mig.capable": "true",
				"nvidia.com/cuda.driver-version.full": "535.104", "nvidia.com/cuda.driver-version.major": "535",
				"nvidia.com/cuda.driver-version.minor": "104", "nvidia.com/cuda.driver.major": "535", "nvidia.com/cuda.driver.minor": "104",
				"nvidia.com/cuda.runtime-version.full": "12.2", "nvidia.com/cuda.runtime-version.major": "12",
				"nvidia.com/cuda.runtime-version.minor": "2", "nvidia.com/cuda.runtime.major": "12", "nvidia.com/cuda.runtime.minor": "2",
			},
		},
		{
			name: "turing, no MIG, no info", devs: []gpu.Device{t4, t4},
			sharing: labels.Sharing{Strategy: "time-slicing", Replicas: 2},
			want: map[string]string{
				"nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": "2",
				"nvidia.com/gpu.product": "Tesla-T4-SHARED", "nvidia.com/gpu.memory": "15360",
				"nvidia.com/gpu.family": "turing", "nvidia.com/gpu.compute.major": "7", "nvidia.com/gpu.compute.minor": "5",
				"nvidia.com/gpu.replicas": "2", "nvidia.com/gpu.sharing-strategy": "time-slicing", "nvidia.com/mig.capable": "false",
			},
		},
		{name: "no GPUs", info: info, sharing: labels.Sharing{Strategy: "time-slicing", Replicas: 4}, want: map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := labels.Labels(tc.devs, tc.info, tc.sharing)
			if !maps.Equal(got, tc.want) {
				for k, v := range tc.want {
					if got[k] != v {
						t.Errorf("%s = %q, want %q", k, got[k], v)
					}
				}
				for k, v := range got {
					if _, ok := tc.want[k]; !ok {
						t.Errorf("extra label %s=%q", k, v)
					}
				}
			}
		})
	}
}

func TestFamily(t *testing.T) {
	for _, tc := range []struct {
		major, minor int
		want         string
	}{
		{6, 0, "pascal"}, {7, 0, "volta"}, {7, 2, "volta"}, {7, 5, "turing"}, {8, 0, "ampere"}, {8, 6, "ampere"},
		{8, 9, "ada-lovelace"}, {9, 0, "hopper"}, {10, 0, "blackwell"}, {12, 0, "blackwell"}, {42, 0, "undefined"},
	} {
		if got := labels.Family(tc.major, tc.minor); got != tc.want {
			t.Errorf("Family(%d, %d) = %q, want %q", tc.major, tc.minor, got, tc.want)
		}
	}
}

func TestProduct(t *testing.T) {
	for in, want := range map[string]string{
		"NVIDIA H100 80GB HBM3": "NVIDIA-H100-80GB-HBM3",
		"Tesla V100-SXM2-16GB":  "Tesla-V100-SXM2-16GB",
		" NVIDIA A10G ":         "NVIDIA-A10G",
		"NVIDIA RTX A6000 (x)":  "NVIDIA-RTX-A6000--x",
		strings.Repeat("A", 70): strings.Repeat("A", 63),
	} {
		if got := labels.Product(in); got != want {
			t.Errorf("Product(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node-labels.d")
	path := filepath.Join(dir, "gpu")
	l := labels.Labels(h100s(2), info, labels.Sharing{})
	if err := labels.WriteFile(path, l); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != len(l) {
		t.Fatalf("%d lines for %d labels:\n%s", len(lines), len(l), raw)
	}
	for i, line := range lines {
		k, v, ok := strings.Cut(line, "=")
		if !ok || l[k] != v {
			t.Errorf("line %q", line)
		}
		if i > 0 && lines[i-1] >= line {
			t.Errorf("lines not sorted: %q before %q", lines[i-1], line)
		}
	}
	if lines[0] != "nvidia.com/cuda.driver-version.full=550.54.15" {
		t.Errorf("first line %q", lines[0])
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}

	// Rewriting replaces the file whole and leaves no temporary file.
	if err := labels.WriteFile(path, map[string]string{"b": "2", "a": "1"}); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(path); string(raw) != "a=1\nb=2\n" {
		t.Errorf("rewritten file %q", raw)
	}
	if err := labels.WriteFile(path, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(path); string(raw) != "" {
		t.Errorf("empty labels wrote %q", raw)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want just the labels file", len(entries))
	}

	// Lines cannot be broken.
	for _, bad := range []map[string]string{{"a=b": "c"}, {"a": "b\nc=d"}, {"": "x"}} {
		if err := labels.WriteFile(path, bad); err == nil {
			t.Errorf("WriteFile(%v): no error", bad)
		}
	}
	if raw, _ := os.ReadFile(path); string(raw) != "" {
		t.Errorf("a failed write changed the file: %q", raw)
	}
}
