// Package containerd runs a private containerd + runc for node-agent tests.
//
// Each instance has its own root, state and sockets under a test directory,
// so it coexists with the host's containerd and with other instances, and
// comes with the images of package images imported for its CRI plugin.
package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kplex/kplex/test/images"
)

// Namespace is the containerd namespace the CRI plugin works in.
const Namespace = "k8s.io"

// Containerd is a running containerd started by Start.
type Containerd struct {
	// Endpoint is the CRI endpoint, "unix:///path/containerd.sock".
	Endpoint string
	// Address is the socket path, for ctr --address.
	Address string
	// Snapshotter is the snapshotter the CRI plugin and the images use.
	Snapshotter string
	// Log is containerd's log file.
	Log string
	// CNIConfDir is where this containerd reads its pod network (the node
	// agent's --cni-conf-dir); CNIBinDir the plugins it runs.
	CNIConfDir, CNIBinDir string

	dir     string
	netns   string
	opts    options
	sockDir string // socket directory outside dir when dir is too long; removed by Stop
	cmd     *exec.Cmd
	exited  chan struct{} // closed once containerd has exited

	stopOnce sync.Once
	stopErr  error
}

// Available reports nil when this machine can run Start: the binaries are on
// PATH and we are root. Otherwise the error says what is missing.
func Available() error {
	var errs []error
	var missing []string
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("not on PATH: %s (apt-get install containerd runc)", strings.Join(missing, ", ")))
	}
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("containerd needs root"))
	}
	return errors.Join(errs...)
}

// CNIBinDir is where Debian's containernetworking-plugins install the CNI
// plugins.
const CNIBinDir = "/usr/lib/cni"

// maxSocketPath keeps "<socket>.ttrpc" below the 108-byte sun_path limit.
const maxSocketPath = 100

// Start runs containerd with its root, state and log under dir, waits for
// its CRI service and imports images.Pause and images.Busybox into it.
// ctx bounds the startup only; call Stop to end containerd.
func Start(ctx context.Context, dir string, opts ...Option) (*Containerd, error) {
	return StartIn(ctx, dir, "", opts...)
}

// StartIn is Start with containerd, and so its pods' networks, in the
// network namespace netns (`ip netns`); "" is the caller's.
func StartIn(ctx context.Context, dir, netns string, opts ...Option) (*Containerd, error) {
	if err := Available(); err != nil {
		return nil, fmt.Errorf("containerd unavailable: %w", err)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("containerd dir: %w", err)
	}
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("containerd dir: %w", err)
	}
	// Build first: a missing busybox or go fails before anything runs.
	tars, err := images.Build(filepath.Join(dir, "images"))
	if err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}

	c := &Containerd{dir: dir, Log: filepath.Join(dir, "containerd.log"), exited: make(chan struct{}),
		CNIConfDir: filepath.Join(dir, "cni", "net.d"), CNIBinDir: CNIBinDir, netns: netns}
	for _, o := range opts {
		o(&c.opts)
	}
	c.Address = filepath.Join(dir, "containerd.sock")
	if len(c.Address) > maxSocketPath-len(".ttrpc") {
		if c.sockDir, err = os.MkdirTemp("/tmp", "ctrd"); err != nil {
			return nil, fmt.Errorf("socket dir: %w", err)
		}
		c.Address = filepath.Join(c.sockDir, "containerd.sock")
	}
	c.Endpoint = "unix://" + c.Address

	// overlayfs is containerd's default and fast, but cannot be mounted
	// where root is itself on overlayfs (CI inside a container) or on some
	// tmpfs: native (plain copies) works on any filesystem.
	c.Snapshotter = "native"
	if overlaySupported(root) {
		c.Snapshotter = "overlayfs"
	}
	if err := c.launch(root); err != nil {
		os.RemoveAll(c.sockDir)
		return nil, err
	}
	if err := c.setup(ctx, tars); err != nil {
		err = fmt.Errorf("%w\ncontainerd log (%s):\n%s", err, c.Log, tail(c.Log, 20))
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

// launch writes containerd's config and starts it, logging to c.Log.
func (c *Containerd) launch(root string) error {
	runtimes, err := c.opts.writeRunsc(c.dir)
	if err != nil {
		return err
	}
	cfg := filepath.Join(c.dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config(c.dir, root, c.Address, c.Snapshotter, c.CNIBinDir, c.CNIConfDir)+runtimes), 0o644); err != nil {
		return fmt.Errorf("write containerd config: %w", err)
	}
	log, err := os.Create(c.Log)
	if err != nil {
		return fmt.Errorf("containerd log: %w", err)
	}
	defer log.Close()
	c.cmd = exec.Command("containerd", "--config", cfg)
	if c.netns != "" {
		// nsenter, not `ip netns exec`: that one also mounts a sysfs of the
		// namespace over /sys, hiding the cgroup hierarchy runc needs.
		c.cmd = exec.Command("nsenter", "--net=/run/netns/"+c.netns, "containerd", "--config", cfg)
	}
	c.cmd.Stdout, c.cmd.Stderr = log, log
	// Should the test binary die without Stop, containerd goes with it.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	go func() {
		c.cmd.Wait()
		close(c.exited)
	}()
	return nil
}

// config is containerd's configuration. All it writes stays under dir, but
// for the shims' sockets in /run/containerd/s and the containers' cgroups,
// so instances are independent and t.TempDir can remove them.
func config(dir, root, address, snapshotter, cniBin, cniConf string) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q

# Unused snapshotters, which fail or skip at load: disabling only quiets the log.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  # Defaults to /opt/containerd, outside the instance.
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # Never give containers an oom_score_adj below containerd's own: lowering
  # it needs CAP_SYS_RESOURCE, which the test machines' sandboxes lack.
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = %q

  # runc keeps its state in /run/containerd/runc by default, shared with the
  # host's containerd: keep it in the instance, where Stop finds it.
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    Root = %q

  # The node agent writes the pod network into this instance's own conf
  # dir (--cni-conf-dir): no host CNI config reaches it.
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, root, filepath.Join(dir, "state"), address, address+".ttrpc",
		filepath.Join(dir, "opt"), images.Pause, snapshotter, filepath.Join(dir, "runc"),
		cniBin, cniConf)
}

// setup waits for the CRI service and imports the images built as tars.
func (c *Containerd) setup(ctx context.Context, tars map[string]string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	// Dial once the socket exists: a refused first connection would hold
	// the client in gRPC's reconnect backoff for a second.
	if err := c.poll(ctx, func() error {
		_, err := os.Stat(c.Address)
		return err
	}); err != nil {
		return fmt.Errorf("wait for containerd socket: %w", err)
	}
	conn, err := grpc.NewClient(c.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial containerd: %w", err)
	}
	defer conn.Close()

	runtime := runtimeapi.NewRuntimeServiceClient(conn)
	if err := c.poll(ctx, func() error {
		_, err := runtime.Version(ctx, &runtimeapi.VersionRequest{})
		return err
	}); err != nil {
		return fmt.Errorf("wait for CRI service: %w", err)
	}

	for name, tar := range tars {
		// Unpack for the CRI plugin's snapshotter, so containers start without
		// a copy of the layers on first use.
		if _, err := c.ctr(ctx, "-n", Namespace, "images", "import", "--snapshotter", c.Snapshotter, tar); err != nil {
			return fmt.Errorf("import %s: %w", name, err)
		}
	}
	out, err := c.ctr(ctx, "-n", Namespace, "images", "ls", "-q")
	if err != nil {
		return err
	}
	listed := strings.Fields(string(out))
	image := runtimeapi.NewImageServiceClient(conn)
	for name := range tars {
		if !slices.Contains(listed, name) {
			return fmt.Errorf("image %s not listed after import: %q", name, listed)
		}
		// The CRI plugin learns of imported images from containerd's events:
		// wait until it resolves them, or sandboxes would try to pull.
		if err := c.poll(ctx, func() error {
			resp, err := image.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: name}})
			if err == nil && resp.GetImage() == nil {
				err = errors.New("unknown to CRI")
			}
			return err
		}); err != nil {
			return fmt.Errorf("image %s: %w", name, err)
		}
	}
	return nil
}

// poll calls f until it succeeds, containerd exits or ctx ends.
func (c *Containerd) poll(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("containerd exited: %s", c.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ctr runs ctr against this instance and returns its standard output.
func (c *Containerd) ctr(ctx context.Context, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.Address}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// Stop ends containerd and everything it started: its tasks, their shims
// and mounts, so that dir can be removed. Stop may be called more than once.
func (c *Containerd) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Containerd) stop() error {
	var errs []error
	// Delete tasks through containerd first: runc then removes the
	// containers' cgroups and the shims exit once they serve no task.
	select {
	case <-c.exited:
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs = append(errs, c.deleteTasks(ctx))
		cancel()
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
	}
	// Whatever survived (containerd crashed, a delete failed) goes by force.
	errs = append(errs, c.deleteRuncContainers(), c.deleteRunscContainers(), c.killShims(), unmountUnder(c.dir))
	if c.sockDir != "" {
		errs = append(errs, os.RemoveAll(c.sockDir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop containerd: %w", err)
	}
	return nil
}

// deleteTasks kills and deletes the tasks of every namespace.
func (c *Containerd) deleteTasks(ctx context.Context) error {
	out, err := c.ctr(ctx, "namespaces", "ls", "-q")
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range strings.Fields(string(out)) {
		out, err := c.ctr(ctx, "-n", ns, "tasks", "ls", "-q")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			_, err := c.ctr(ctx, append([]string{"-n", ns, "tasks", "delete", "--force"}, ids...)...)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// overlaySupported reports whether an overlay mount works under dir, the way
// containerd's overlayfs snapshotter will mount it.
func overlaySupported(dir string) bool {
	tmp, err := os.MkdirTemp(dir, "overlay-check")
	if err != nil {
		return false
	}
	defer os.RemoveAll(tmp)
	var paths []string
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		p := filepath.Join(tmp, d)
		if err := os.Mkdir(p, 0o755); err != nil {
			return false
		}
		paths = append(paths, p)
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", paths[0], paths[1], paths[2])
	if err := syscall.Mount("overlay", paths[3], "overlay", 0, opts); err != nil {
		return false
	}
	return syscall.Unmount(paths[3], 0) == nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Containers lists the IDs of the containers in CRI's namespace (k8s.io):
// pod sandboxes and their containers.
func (c *Containerd) Containers(ctx context.Context) ([]string, error) {
	out, err := c.ctr(ctx, "-n", "k8s.io", "containers", "ls", "-q")
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}
