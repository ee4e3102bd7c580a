// Package labels makes the node labels NVIDIA's GPU Feature Discovery (GFD)
// publishes (nvidia.com/gpu.product, .count, .memory, .replicas, ...) from
// what NVML reports, so that workloads written for clusters with NVIDIA's
// GPU operator select kplex GPU nodes with the same nodeSelectors, and
// writes them to the file the node agent applies to its Node.
package labels

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kplex/kplex/deviceplugin/gpu"
)

// Sharing is how the GPUs are shared, from NVIDIA's device plugin config
// (sharing.timeSlicing).
type Sharing struct {
	// Strategy is "none" (or "") or "time-slicing".
	Strategy string
	// Replicas is how many replicas each GPU is advertised as.
	Replicas int
	// RenameByDefault is the config's renameByDefault: shared GPUs are
	// advertised as nvidia.com/gpu.shared, and the product label keeps
	// its plain name.
	RenameByDefault bool
}

// shared says whether GPUs are handed out more than once.
func (s Sharing) shared() bool {
	return s.Strategy != "" && s.Strategy != "none" && s.Replicas > 1
}

// The labels' prefix.
const Prefix = "nvidia.com/"

// Labels returns GFD's labels for the node's GPUs, or none when there are
// none:
//
//	nvidia.com/gpu.present          true
//	nvidia.com/gpu.count            number of GPUs
//	nvidia.com/gpu.product          product name, spaces (and any character
//	                                a label value cannot hold) as '-', e.g.
//	                                NVIDIA-H100-80GB-HBM3; "-SHARED" appended
//	                                when shared and not renamed
//	nvidia.com/gpu.memory           framebuffer, MiB
//	nvidia.com/gpu.family           architecture from the compute capability
//	nvidia.com/gpu.compute.major    compute capability
//	nvidia.com/gpu.compute.minor
//	nvidia.com/gpu.replicas         replicas per GPU, 1 when not shared
//	nvidia.com/gpu.sharing-strategy none | time-slicing
//	nvidia.com/mig.capable          true when any GPU supports MIG
//	nvidia.com/cuda.driver-version.full, .major, .minor, .revision
//	nvidia.com/cuda.runtime-version.full, .major, .minor
//
// and GFD's older names of the version labels (nvidia.com/cuda.driver.major,
// .minor, .rev and nvidia.com/cuda.runtime.major, .minor), which GFD still
// publishes. A node with different GPU models is labelled after its first
// GPU (NVML's index 0), as GFD does; the count counts them all. Sharing
// with fewer than 2 replicas is no sharing.
func Labels(devs []gpu.Device, info gpu.Info, sharing Sharing) map[string]string {
	if len(devs) == 0 {
		return map[string]string{}
	}
	d := devs[0]
	l := map[string]string{
		Prefix + "gpu.present":          "true",
		Prefix + "gpu.count":            strconv.Itoa(len(devs)),
		Prefix + "gpu.memory":           strconv.FormatUint(d.MemoryMiB, 10),
		Prefix + "gpu.family":           Family(d.ComputeMajor, d.ComputeMinor),
		Prefix + "gpu.compute.major":    strconv.Itoa(d.ComputeMajor),
		Prefix + "gpu.compute.minor":    strconv.Itoa(d.ComputeMinor),
		Prefix + "gpu.replicas":         "1",
		Prefix + "gpu.sharing-strategy": "none",
		Prefix + "mig.capable":          strconv.FormatBool(slices.ContainsFunc(devs, func(d gpu.Device) bool { return d.MIGCapable })),
	}
	product := Product(d.Name)
	if sharing.shared() {
		l[Prefix+"gpu.replicas"] = strconv.Itoa(sharing.Replicas)
		l[Prefix+"gpu.sharing-strategy"] = sharing.Strategy
		if !sharing.RenameByDefault {
			product = sanitize(product + "-SHARED")
		}
	}
	if product != "" {
		l[Prefix+"gpu.product"] = product
	}

	if v := sanitize(info.DriverVersion); v != "" {
		l[Prefix+"cuda.driver-version.full"] = v
		parts := strings.Split(v, ".")
		for i, name := range []string{"major", "minor", "revision"} {
			if i < len(parts) && parts[i] != "" {
				l[Prefix+"cuda.driver-version."+name] = parts[i]
				l[Prefix+"cuda.driver."+strings.Replace(name, "revision", "rev", 1)] = parts[i]
			}
		}
	}
	if v := sanitize(info.CUDAVersion); v != "" {
		l[Prefix+"cuda.runtime-version.full"] = v
		parts := strings.Split(v, ".")
		for i, name := range []string{"major", "minor"} {
			if i < len(parts) && parts[i] != "" {
				l[Prefix+"cuda.runtime-version."+name] = parts[i]
				l[Prefix+"cuda.runtime."+name] = parts[i]
			}
		}
	}
	return l
}

// Product is the gpu.product value of a GPU name: "NVIDIA H100 80GB HBM3"
// gives "NVIDIA-H100-80GB-HBM3".
func Product(name string) string {
	return sanitize(strings.ReplaceAll(strings.TrimSpace(name), " ", "-"))
}

// Family is GFD's architecture family of a CUDA compute capability:
// 7.0 volta, 7.5 turing, 8.0-8.7 ampere, 8.9 ada-lovelace, 9 hopper, 10 and
// 12 blackwell ("undefined" when unknown).
func Family(major, minor int) string {
	switch major {
	case 1:
		return "tesla"
	case 2:
		return "fermi"
	case 3:
		return "kepler"
	case 5:
		return "maxwell"
	case 6:
		return "pascal"
	case 7:
		if minor < 5 {
			return "volta"
		}
		return "turing"
	case 8:
		if minor < 9 {
			return "ampere"
		}
		return "ada-lovelace"
	case 9:
		return "hopper"
	case 10, 12:
		return "blackwell"
	}
	return "undefined"
}

// sanitize makes s a valid label value: at most 63 characters of
// [A-Za-z0-9-_.], starting and ending with a letter or digit; any other
// character becomes '-'.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	for len(b) > 0 && !alnum(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && !alnum(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return string(b)
}

// WriteFile writes labels to path as "key=value" lines sorted by key, the
// format the node agent reads from its labels directory. It writes a
// temporary file in the same directory (made if missing) and renames it
// over path, so a reader sees the old labels or the new ones, never part
// of them. A key holding '=' or a line break, or a value holding a line
// break, is an error.
func WriteFile(path string, labels map[string]string) error {
	keys := make([]string, 0, len(labels))
	for k, v := range labels {
		if k == "" || strings.ContainsAny(k, "=\n\r") || strings.ContainsAny(v, "\n\r") {
			return fmt.Errorf("label %q=%q cannot be written as a key=value line", k, v)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sb strings.Builder
	for _, k := range keys {
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(labels[k])
		sb.WriteByte('\n')
	}

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.WriteString(sb.String()); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
