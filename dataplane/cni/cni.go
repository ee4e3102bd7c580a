// Package cni writes the node's CNI configuration, the one network every
// tenant's pods on the node join: the standard bridge, host-local and
// portmap plugins (Debian's containernetworking-plugins) over the pod CIDR
// the management plane gave the node. The container runtime (containerd's
// CRI plugin) reads it from its conf_dir and runs the plugins; the agent
// only decides what the network is, and whether it can exist here.
package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Defaults of Config.
const (
	DefaultConfDir = "/etc/cni/net.d"
	DefaultBinDir  = "/usr/lib/cni"
	DefaultBridge  = "kplex0"
	// FileName sorts first in the conf dir: the runtime uses the first
	// network it finds.
	FileName = "10-kplex.conflist"
	// NetworkName names the network in the runtime and host-local's store.
	NetworkName = "kplex"
)

// Plugins are the CNI plugins the network needs (loopback: every pod's lo,
// which containerd sets up itself from the same directory).
var Plugins = []string{"bridge", "host-local", "portmap", "loopback"}

// Config is the node's network.
type Config struct {
	// ConfDir is where the runtime reads networks (containerd's
	// plugins."io.containerd.grpc.v1.cri".cni.conf_dir).
	ConfDir string
	// BinDir holds the plugins (containerd's cni.bin_dir).
	BinDir string
	// PodCIDR is the node's spec.podCIDR.
	PodCIDR string
	// Bridge is the bridge's name on the node.
	Bridge string
	// DataDir is host-local's store of allocated IPs: one per node, so
	// that several nodes on one machine (tests) never share one.
	DataDir string
}

// Missing returns the plugins not in binDir, as an error that says how to
// install them; nil when all are there.
func Missing(binDir string) error {
	var missing []string
	for _, p := range Plugins {
		if st, err := os.Stat(filepath.Join(binDir, p)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("CNI plugins %s not found in %s (install Debian's containernetworking-plugins, or set --cni-bin-dir)", strings.Join(missing, ", "), binDir)
}

// Render returns the conflist of c.
func Render(c Config) ([]byte, error) {
	prefix, err := netip.ParsePrefix(c.PodCIDR)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", c.PodCIDR, err)
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	ipam := map[string]any{
		"type":   "host-local",
		"ranges": [][]map[string]string{{{"subnet": prefix.Masked().String()}}},
	}
	if c.DataDir != "" {
		ipam["dataDir"] = c.DataDir
	}
	list := map[string]any{
		"cniVersion": "0.4.0",
		"name":       NetworkName,
		"plugins": []map[string]any{
			{
				"type": "bridge", "bridge": c.Bridge,
				"isGateway": true, "isDefaultGateway": true,
				// Masquerading is the node's (package nodenet): the
				// bridge plugin's would also hide pod IPs from other
				// nodes' pods, and tenants are told apart by pod IP.
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam":        ipam,
			},
			{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	return json.MarshalIndent(list, "", "  ")
}

// Write writes c's conflist into c.ConfDir when it differs from what is
// there, atomically, and reports whether it changed.
func Write(c Config) (bool, error) {
	data, err := Render(c)
	if err != nil {
		return false, err
	}
	path := filepath.Join(c.ConfDir, FileName)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := os.MkdirAll(c.ConfDir, 0o755); err != nil {
		return false, fmt.Errorf("CNI conf dir: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	// The runtime reads *.conflist files: the temporary one is not one.
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	return true, nil
}
