package cni

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRenderUsesThePodCIDRAndNoMasquerade(t *testing.T) {
	t.Parallel()
	data, err := Render(Config{PodCIDR: "10.244.3.0/24", DataDir: "/x/networks"})
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Name    string
		Plugins []map[string]any
	}
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatal(err)
	}
	bridge := list.Plugins[0]
	ipam := bridge["ipam"].(map[string]any)
	if list.Name != NetworkName || bridge["bridge"] != DefaultBridge || bridge["ipMasq"] != false || ipam["dataDir"] != "/x/networks" {
		t.Errorf("conflist: %s", data)
	}
	if got := ipam["ranges"].([]any)[0].([]any)[0].(map[string]any)["subnet"]; got != "10.244.3.0/24" {
		t.Errorf("subnet %v", got)
	}
	if list.Plugins[1]["type"] != "portmap" {
		t.Errorf("no portmap: %s", data)
	}
	if _, err := Render(Config{PodCIDR: "not-a-cidr"}); err == nil || !strings.Contains(err.Error(), "not-a-cidr") {
		t.Errorf("bad CIDR: %v", err)
	}
}

func TestWriteOnlyWhenChanged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := Config{ConfDir: dir, PodCIDR: "10.244.0.0/24"}
	for i, want := range []bool{true, false} {
		changed, err := Write(c)
		if err != nil || changed != want {
			t.Fatalf("write %d: changed %v, %v", i, changed, err)
		}
	}
	c.PodCIDR = "10.244.1.0/24"
	if changed, _ := Write(c); !changed {
		t.Error("a new CIDR was not written")
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Error(err)
	}
}

func TestMissingNamesEveryAbsentPlugin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bridge"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Missing(dir)
	if err == nil || !strings.Contains(err.Error(), "host-local, portmap, loopback") || strings.Contains(err.Error(), "bridge,") {
		t.Errorf("Missing: %v", err)
	}
	for _, p := range Plugins {
		os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\n"), 0o755)
	}
	if err := Missing(dir); err != nil {
		t.Errorf("all present: %v", err)
	}
}
