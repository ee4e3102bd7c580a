package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// LocalNode is the local node a `kplex up` runs in a real container
// runtime: `kplex down --delete-data` removes its pods from that runtime,
// since no agent will ever adopt them once the data is gone.
type LocalNode struct {
	Name            string `json:"name"`
	RuntimeEndpoint string `json:"runtimeEndpoint"`
}

// LocalNodeFile is where it is recorded.
func LocalNodeFile(dataDir string) string { return filepath.Join(dataDir, "local-node.json") }

// WriteLocalNode records n for dataDir.
func WriteLocalNode(dataDir string, n LocalNode) error {
	data, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if err := os.WriteFile(LocalNodeFile(dataDir), data, 0o600); err != nil {
		return fmt.Errorf("recording the local node: %w", err)
	}
	return nil
}

// ReadLocalNode returns dataDir's local node in a real runtime, or nil if
// it has none.
func ReadLocalNode(dataDir string) (*LocalNode, error) {
	data, err := os.ReadFile(LocalNodeFile(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the local node's record: %w", err)
	}
	n := &LocalNode{}
	if err := json.Unmarshal(data, n); err != nil {
		return nil, fmt.Errorf("reading the local node's record %s: %w", LocalNodeFile(dataDir), err)
	}
	return n, nil
}
