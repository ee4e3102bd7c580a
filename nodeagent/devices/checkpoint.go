package devices

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const (
	checkpointKind    = "kplex.io/DeviceCheckpoint"
	checkpointVersion = 1
)

// checkpointData is the JSON content of the checkpoint file.
type checkpointData struct {
	Kind    string            `json:"kind"`
	Version int               `json:"version"`
	Entries []checkpointEntry `json:"entries"`
	// RegisteredDevices is the last device list of each resource, so that
	// capacity survives an agent restart until plugins re-register.
	RegisteredDevices map[string][]string `json:"registeredDevices,omitempty"`
}

type checkpointEntry struct {
	PodUID        string   `json:"podUID"`
	ContainerName string   `json:"containerName"`
	ResourceName  string   `json:"resourceName"`
	DeviceIDs     []string `json:"deviceIDs"`
	// AllocResp is the plugin's ContainerAllocateResponse in protojson.
	AllocResp json.RawMessage `json:"allocResp,omitempty"`
}

// snapshotLocked builds the checkpoint from memory. Call with mu held.
func (m *Manager) snapshotLocked() (*checkpointData, error) {
	cp := &checkpointData{Kind: checkpointKind, Version: checkpointVersion, Entries: []checkpointEntry{}, RegisteredDevices: map[string][]string{}}
	for key, byRes := range m.assignments {
		for name, a := range byRes {
			raw, err := protojson.Marshal(a.resp)
			if err != nil {
				return nil, fmt.Errorf("encoding allocation of pod %s container %s resource %s: %w", key.pod, key.container, name, err)
			}
			cp.Entries = append(cp.Entries, checkpointEntry{
				PodUID: key.pod, ContainerName: key.container, ResourceName: name,
				DeviceIDs: append([]string(nil), a.ids...), AllocResp: raw,
			})
		}
	}
	sort.Slice(cp.Entries, func(i, j int) bool {
		a, b := cp.Entries[i], cp.Entries[j]
		if a.PodUID != b.PodUID {
			return a.PodUID < b.PodUID
		}
		if a.ContainerName != b.ContainerName {
			return a.ContainerName < b.ContainerName
		}
		return a.ResourceName < b.ResourceName
	})
	for name, r := range m.resources {
		if len(r.devices) > 0 {
			cp.RegisteredDevices[name] = sortedKeys(r.devices)
		}
	}
	return cp, nil
}

// writeCheckpoint writes the current state atomically (temp file, fsync,
// rename, fsync of the directory).
func (m *Manager) writeCheckpoint() error {
	m.ckMu.Lock()
	defer m.ckMu.Unlock()
	m.mu.Lock()
	cp, err := m.snapshotLocked()
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("writing device checkpoint: %w", err)
	}
	data, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return fmt.Errorf("writing device checkpoint: %w", err)
	}
	if err := writeFileAtomic(m.opts.CheckpointFile, data); err != nil {
		return fmt.Errorf("writing device checkpoint %s: %w", m.opts.CheckpointFile, err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// loadCheckpointLocked restores assignments and the last known devices.
// Restored resources have no plugin connection, so they report allocatable
// 0, and their grace period starts now. Call with mu held, before serving.
func (m *Manager) loadCheckpointLocked() error {
	data, err := os.ReadFile(m.opts.CheckpointFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading device checkpoint %s: %w", m.opts.CheckpointFile, err)
	}
	var cp checkpointData
	if err := json.Unmarshal(data, &cp); err != nil {
		return fmt.Errorf("parsing device checkpoint %s (remove it to start without device assignments): %w", m.opts.CheckpointFile, err)
	}
	if cp.Kind != checkpointKind || cp.Version != checkpointVersion {
		return fmt.Errorf("device checkpoint %s has kind %q version %d, want %q version %d", m.opts.CheckpointFile, cp.Kind, cp.Version, checkpointKind, checkpointVersion)
	}
	for _, e := range cp.Entries {
		if e.PodUID == "" || e.ContainerName == "" || e.ResourceName == "" || len(e.DeviceIDs) == 0 {
			return fmt.Errorf("device checkpoint %s: invalid entry %+v", m.opts.CheckpointFile, e)
		}
		resp := &pluginapi.ContainerAllocateResponse{}
		if len(e.AllocResp) > 0 {
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(e.AllocResp, resp); err != nil {
				return fmt.Errorf("device checkpoint %s: allocation of pod %s container %s resource %s: %w", m.opts.CheckpointFile, e.PodUID, e.ContainerName, e.ResourceName, err)
			}
		}
		key := containerKey{e.PodUID, e.ContainerName}
		if m.assignments[key] == nil {
			m.assignments[key] = map[string]*assignment{}
		}
		m.assignments[key][e.ResourceName] = &assignment{ids: append([]string(nil), e.DeviceIDs...), resp: resp}
	}
	for name, ids := range cp.RegisteredDevices {
		r := &resourceState{devices: map[string]bool{}}
		for _, id := range ids {
			r.devices[id] = false
		}
		m.resources[name] = r
		m.markStoppedLocked(name, r)
	}
	m.logger.Info("Loaded device checkpoint", "file", m.opts.CheckpointFile, "assignments", len(cp.Entries), "resources", len(cp.RegisteredDevices))
	return nil
}
