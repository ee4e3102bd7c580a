// Package daemon keeps track of a kplex process running in the background:
// its pid file and its log in the data directory.
package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// PidFile is where a running `kplex up` records its pid.
func PidFile(dataDir string) string { return filepath.Join(dataDir, "kplex.pid") }

// LogFile is where a background `kplex up` writes its log.
func LogFile(dataDir string) string { return filepath.Join(dataDir, "kplex.log") }

// WritePid records the calling process as the one serving dataDir.
func WritePid(dataDir string) error {
	if err := os.WriteFile(PidFile(dataDir), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing pid file: %w", err)
	}
	return nil
}

// RemovePid removes the pid file if it still names the calling process.
func RemovePid(dataDir string) {
	if pid, _ := Running(dataDir); pid == os.Getpid() {
		os.Remove(PidFile(dataDir))
	}
}

// Running returns the pid of the live process serving dataDir, or 0.
func Running(dataDir string) (int, error) {
	b, err := os.ReadFile(PidFile(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, nil
	}
	if !Alive(pid) {
		return 0, nil
	}
	return pid, nil
}

// Alive reports whether process pid exists.
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
