package containerd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kplex/kplex/nodeagent/gvisor"
)

// RunscHandler is the CRI runtime handler WithRunsc adds: pods whose
// RunPodSandbox names it run under gVisor's runsc.
const RunscHandler = gvisor.Handler

// Option changes the containerd that Start and StartIn run.
type Option func(*options)

type options struct {
	runsc      bool
	runscFlags []string
}

// WithRunsc adds the runtime handler RunscHandler: runsc (from PATH) under
// runc's shim, through kplex-runsc (nodeagent/gvisor), which passes flags
// to runsc after --network=host.
func WithRunsc(flags ...string) Option {
	return func(o *options) {
		o.runsc = true
		o.runscFlags = flags
	}
}

// writeRunsc writes the wrapper into dir and returns the runtime's
// configuration; "" without WithRunsc.
func (o options) writeRunsc(dir string) (string, error) {
	if !o.runsc {
		return "", nil
	}
	runsc, err := exec.LookPath("runsc")
	if err != nil {
		return "", fmt.Errorf("runsc: %w (apt-get install runsc)", err)
	}
	wrapper := filepath.Join(dir, "kplex-runsc")
	if err := os.WriteFile(wrapper, []byte(gvisor.Script(runsc, o.runscFlags...)), 0o755); err != nil {
		return "", fmt.Errorf("runsc wrapper: %w", err)
	}
	return gvisor.ContainerdConfig(wrapper, filepath.Join(dir, "runsc")), nil
}

// deleteRunscContainers is deleteRuncContainers for runsc: it kills the
// sandboxes and removes their cgroups. It reaches them by pid, so it works
// from outside the network namespace whose abstract sockets they serve.
func (c *Containerd) deleteRunscContainers() error {
	namespaces, err := os.ReadDir(filepath.Join(c.dir, "runsc"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runsc root: %w", err)
	}
	var errs []error
	for _, ns := range namespaces {
		root := filepath.Join(c.dir, "runsc", ns.Name())
		out, err := exec.Command("runsc", "--root", root, "list", "-quiet").Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("runsc list %s: %w", root, err))
			continue
		}
		for _, id := range strings.Fields(string(out)) {
			if out, err := exec.Command("runsc", "--root", root, "delete", "-force", id).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("runsc delete %s: %w: %s", id, err, bytes.TrimSpace(out)))
			}
		}
	}
	return errors.Join(errs...)
}
