package containerd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// deleteRuncContainers force-deletes the containers runc still knows of in
// this instance's runc root: runc kills their processes and removes their
// cgroups, which killing the processes alone would leave behind.
func (c *Containerd) deleteRuncContainers() error {
	namespaces, err := os.ReadDir(filepath.Join(c.dir, "runc"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runc root: %w", err)
	}
	var errs []error
	for _, ns := range namespaces {
		root := filepath.Join(c.dir, "runc", ns.Name())
		out, err := exec.Command("runc", "--root", root, "list", "-q").Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("runc list %s: %w", root, err))
			continue
		}
		for _, id := range strings.Fields(string(out)) {
			if out, err := exec.Command("runc", "--root", root, "delete", "--force", id).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("runc delete %s: %w: %s", id, err, bytes.TrimSpace(out)))
			}
		}
	}
	return errors.Join(errs...)
}

// killShims kills the shims serving this instance and their descendants,
// which are the containers' processes: shims are their subreapers. It is
// the fallback for when containerd could not delete its tasks itself.
func (c *Containerd) killShims() error {
	parents, err := processes()
	if err != nil {
		return err
	}
	victims := c.shims(parents)
	for _, pid := range victims {
		// A killed shim leaves its socket, named after the instance's
		// address, namespace and id, in containerd's shared state dir.
		args := cmdline(pid)
		sum := sha256.Sum256([]byte(filepath.Join(c.Address, flag(args, "-namespace"), flag(args, "-id"))))
		defer os.Remove(fmt.Sprintf("/run/containerd/s/%x", sum))
	}
	for i := 0; i < len(victims); i++ {
		for pid, ppid := range parents {
			if ppid == victims[i] {
				victims = append(victims, pid)
			}
		}
	}
	for _, pid := range victims {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// They are not our children: wait for them to die, not to be reaped.
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range victims {
		for alive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d survived SIGKILL", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// shims returns the live shims started by this instance among processes.
func (c *Containerd) shims(parents map[int]int) []int {
	var pids []int
	for pid := range parents {
		args := cmdline(pid)
		if len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") && flag(args, "-address") == c.Address {
			pids = append(pids, pid)
		}
	}
	return pids
}

// flag returns the value following name in args, as shims are started with
// "-namespace NS -id ID -address SOCKET".
func flag(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// processes maps every process id to its parent's.
func processes() (map[int]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	parents := make(map[int]int)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := stat(pid); ok {
			parents[pid] = ppid
		}
	}
	return parents, nil
}

// stat returns a process's state and parent from /proc/PID/stat.
func stat(pid int) (state string, ppid int, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// The command name in parentheses may hold spaces: fields follow the last ')'.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return fields[0], ppid, err == nil
}

// alive is false once pid is gone or a zombie.
func alive(pid int) bool {
	state, _, ok := stat(pid)
	return ok && state != "Z" && state != "X"
}

func cmdline(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
}

// unmountUnder detaches every mount below dir, deepest first: rootfs and
// shm mounts left by containers whose tasks were not deleted.
func unmountUnder(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, mp := range mounts {
		// EINVAL: already gone with a parent, or mounted twice on mp.
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points below dir.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()
	var mounts []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		if mp := unescape(fields[4]); strings.HasPrefix(mp, dir+"/") {
			mounts = append(mounts, mp)
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	return mounts, nil
}

// unescape decodes mountinfo's octal escapes, such as \040 for a space.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
