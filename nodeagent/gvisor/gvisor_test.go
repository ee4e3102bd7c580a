package gvisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The wrapper passes --network=host and the flags before runc's command
// line, and runs the runsc it was given; a kill of a stopped container
// reads as runc's "container not running".
func TestScriptRunsRunscWithItsFlags(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "runsc")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$@\"\ncase \"$*\" in *kill*) echo 'container is not running' >&2; exit 1;; esac\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "kplex-runsc")
	if err := os.WriteFile(wrapper, []byte(Script(fake, "--platform=ptrace", "--debug-log=/tmp/it's")), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(wrapper, "--root", "/run/x", "state", "abc").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "--network=host --platform=ptrace --debug-log=/tmp/it's --root /run/x state abc" {
		t.Errorf("wrapper state: %v %q", err, out)
	}
	out, err = exec.Command(wrapper, "--root", "/run/x", "kill", "abc", "9").CombinedOutput()
	if err == nil || strings.TrimSpace(string(out)) != "container not running" {
		t.Errorf("wrapper kill of a stopped container: %v %q, want runc's words", err, out)
	}
	if !strings.Contains(ContainerdConfig(wrapper, "/run/runsc"), `BinaryName = "`+wrapper+`"`) {
		t.Error("the containerd config does not run the wrapper")
	}
}
