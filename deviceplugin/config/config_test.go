package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// nvidiaExample is the full example of NVIDIA's README (flags and
// time-slicing sections).
const nvidiaExample = `
version: v1
flags:
  migStrategy: "none"
  failOnInitError: true
  nvidiaDriverRoot: "/"
  plugin:
    passDeviceSpecs: false
    deviceListStrategy: envvar
    deviceIDStrategy: uuid
  gfd:
    oneshot: false
    noTimestamp: false
    outputFile: /etc/kubernetes/node-feature-discovery/features.d/gfd
    sleepInterval: 60s
sharing:
  timeSlicing:
    renameByDefault: false
    failRequestsGreaterThanOne: false
    resources:
    - name: nvidia.com/gpu
      replicas: 10
`

func TestParseNVIDIAExample(t *testing.T) {
	c, err := Parse([]byte(nvidiaExample))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Flags.NvidiaDriverRoot = "/"
	want.Flags.Plugin.PassDeviceSpecs = false
	want.Flags.GFD.OutputFile = "/etc/kubernetes/node-feature-discovery/features.d/gfd"
	d := Duration(60 * time.Second)
	want.Flags.GFD.SleepInterval = &d
	want.Sharing.TimeSlicing.Resources = []ReplicatedResource{{Name: GPUResource, Replicas: 10}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", c, want)
	}
	if r, name := c.TimeSliced(GPUResource); r != 10 || name != GPUResource {
		t.Errorf("TimeSliced = %d, %q; want 10, %q", r, name, GPUResource)
	}
}

func TestParseDefaultsAndNaming(t *testing.T) {
	for _, tc := range []struct {
		name, in     string
		replicas     int
		advertised   string
		failOnInit   bool
		passDevSpecs bool
	}{
		{"empty file", "", 1, GPUResource, true, true},
		{"no version", "flags: {failOnInitError: false}", 1, GPUResource, false, true},
		{"json", `{"version":"v1","sharing":{"timeSlicing":{"resources":[{"name":"nvidia.com/gpu","replicas":4}]}}}`, 4, GPUResource, true, true},
		{"renameByDefault", "sharing: {timeSlicing: {renameByDefault: true, resources: [{name: gpu, replicas: 4}]}}", 4, "nvidia.com/gpu.shared", true, true},
		{"rename without domain", "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, rename: gpu-ts}]}}", 2, "nvidia.com/gpu-ts", true, true},
		{"rename wins", "sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2, rename: nvidia.com/ts}]}}", 2, "nvidia.com/ts", true, true},
		{"one replica is not shared", "sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 1}]}}", 1, GPUResource, true, true},
		{"device list strategy as list", "flags: {plugin: {deviceListStrategy: [envvar], passDeviceSpecs: false}}", 1, GPUResource, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if r, name := c.TimeSliced(GPUResource); r != tc.replicas || name != tc.advertised {
				t.Errorf("TimeSliced = %d, %q; want %d, %q", r, name, tc.replicas, tc.advertised)
			}
			if c.Flags.FailOnInitError != tc.failOnInit || c.Flags.Plugin.PassDeviceSpecs != tc.passDevSpecs {
				t.Errorf("flags = %+v", c.Flags)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"version", "version: v2", `version: Unsupported value: "v2": supported values: "v1"`},
		{"replicas zero", "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 0}]}}",
			"sharing.timeSlicing.resources[0].replicas: Invalid value: 0: must be at least 1"},
		{"replicas missing", "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu}]}}",
			"sharing.timeSlicing.resources[0].replicas: Invalid value: 0: must be at least 1"},
		{"mig resource", "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2}, {name: mig-1g.5gb, replicas: 2}]}}",
			`sharing.timeSlicing.resources[1].name: Unsupported value: "nvidia.com/mig-1g.5gb": supported values: "nvidia.com/gpu"`},
		{"name missing", "sharing: {timeSlicing: {resources: [{replicas: 2}]}}",
			"sharing.timeSlicing.resources[0].name: Required value"},
		{"duplicate resource", "sharing: {timeSlicing: {resources: [{name: gpu, replicas: 2}, {name: nvidia.com/gpu, replicas: 3}]}}",
			`sharing.timeSlicing.resources[1].name: Duplicate value: "nvidia.com/gpu"`},
		{"devices", "sharing: {timeSlicing: {resources: [{name: gpu, replicas: 2, devices: some}]}}",
			`sharing.timeSlicing.resources[0].devices: Unsupported value: "some": supported values: "all"`},
		{"rename other domain", "sharing: {timeSlicing: {resources: [{name: gpu, replicas: 2, rename: example.com/gpu}]}}",
			`sharing.timeSlicing.resources[0].rename: Invalid value: "example.com/gpu": must be in the nvidia.com domain`},
		{"rename not shared", "sharing: {timeSlicing: {resources: [{name: gpu, replicas: 1, rename: gpu.one}]}}",
			`sharing.timeSlicing.resources[0].rename: Invalid value: "nvidia.com/gpu.one": must not be set when replicas is 1`},
		{"rename invalid", "sharing: {timeSlicing: {resources: [{name: gpu, replicas: 2, rename: Bad_Name!}]}}",
			`sharing.timeSlicing.resources[0].rename: Invalid value: "nvidia.com/Bad_Name!"`},
		{"mig strategy", "flags: {migStrategy: mixed}", `flags.migStrategy: Unsupported value: "mixed": supported values: "none"`},
		{"device list strategy", "flags: {plugin: {deviceListStrategy: [envvar, cdi-cri]}}",
			`flags.plugin.deviceListStrategy: Unsupported value: "cdi-cri": supported values: "envvar"`},
		{"device id strategy", "flags: {plugin: {deviceIDStrategy: index}}",
			`flags.plugin.deviceIDStrategy: Unsupported value: "index": supported values: "uuid"`},
		{"gds", "flags: {gdsEnabled: true}", "flags.gdsEnabled: Forbidden"},
		{"mps", "sharing: {mps: {resources: [{name: gpu, replicas: 2}]}}", "sharing.mps: Forbidden: MPS sharing is not supported"},
		{"several at once", "version: v0\nflags: {migStrategy: single}",
			`[version: Unsupported value: "v0": supported values: "v1", flags.migStrategy: Unsupported value: "single"`},
		{"unknown top-level field", "version: v1\nresources: {gpus: []}", `strict decoding error: unknown field "resources"`},
		{"unknown nested fields", "flags: {plugin: {passDeviceSpec: true}}\nsharing: {timeSlicing: {resources: [{name: gpu, replicas: 2, replica: 3}]}}",
			`strict decoding error: [unknown field "flags.plugin.passDeviceSpec", unknown field "sharing.timeSlicing.resources[0].replica"]`},
		{"field names are case-sensitive", "Version: v1", `strict decoding error: unknown field "Version"`},
		{"duplicate key", "version: v1\nversion: v1", `"version" already set in map`},
		{"wrong type", "sharing: {timeSlicing: {resources: [{name: gpu, replicas: many}]}}", "replicas"},
		{"bad duration", "flags: {gfd: {sleepInterval: soon}}", "sleepInterval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(nvidiaExample), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("version: v2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "version: Unsupported value") {
		t.Errorf("Load of a bad file: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestDevRoot(t *testing.T) {
	c := Default()
	if got := c.DevRoot(); got != "/" {
		t.Errorf("DevRoot = %q", got)
	}
	c.Flags.NvidiaDriverRoot = "/run/nvidia/driver"
	if got := c.DevRoot(); got != "/run/nvidia/driver" {
		t.Errorf("DevRoot = %q", got)
	}
	c.Flags.NvidiaDevRoot = "/host"
	if got := c.DevRoot(); got != "/host" {
		t.Errorf("DevRoot = %q", got)
	}
}
