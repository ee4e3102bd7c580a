package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kplex/kplex/test/containerd"
	"github.com/kplex/kplex/test/images"
)

// SandboxOptions shape `make bench-sandbox`: gVisor (runsc) against runc,
// one private containerd with both runtime handlers, driven through CRI.
type SandboxOptions struct {
	// Pods pods are started under each runtime, runc and runsc in turn.
	Pods int
	// RunscFlags are given to every runsc command (containerd.WithRunsc).
	RunscFlags []string
	// ExecTimeout bounds each timed exec.
	ExecTimeout time.Duration
}

// addSandboxFlags binds the --sandbox bench's flags.
func addSandboxFlags(fs *flag.FlagSet) *SandboxOptions {
	o := &SandboxOptions{Pods: 10, ExecTimeout: 5 * time.Minute}
	fs.IntVar(&o.Pods, "sandbox-pods", o.Pods, "--sandbox: pods started under each runtime, runc and runsc in turn; each runs the loops, then is stopped and removed")
	fs.Func("sandbox-runsc-flag", "--sandbox: flag for runsc, as --name=value (repeatable, e.g. --platform=kvm)", func(v string) error {
		o.RunscFlags = append(o.RunscFlags, v)
		return nil
	})
	fs.DurationVar(&o.ExecTimeout, "sandbox-exec-timeout", o.ExecTimeout, "--sandbox: limit of each timed exec")
	return o
}

func (o *SandboxOptions) validate() error {
	switch {
	case o.Pods < 1:
		return errors.New("--sandbox-pods must be at least 1")
	case o.ExecTimeout < time.Second:
		return errors.New("--sandbox-exec-timeout must be at least 1s")
	}
	return nil
}

// sandboxMissing says what of containerd, runc, runsc and root this
// machine lacks; nil when the bench can run.
func sandboxMissing() error {
	var errs []error
	if err := containerd.Available(); err != nil {
		errs = append(errs, err)
	}
	if _, err := exec.LookPath("runsc"); err != nil {
		errs = append(errs, errors.New("not on PATH: runsc (apt-get install runsc)"))
	}
	return errors.Join(errs...)
}

// sandboxMetric is one row of the table.
type sandboxMetric int

const (
	metricStart sandboxMetric = iota
	metricExec
	metricCPU
	metricWrite
	metricFiles
	metricStop
	sandboxMetrics
)

// sandboxWorkloads run in each pod, in order, each as one timed ExecSync
// of `sh -c script` in its container; metricExec is what any exec costs.
var sandboxWorkloads = []struct {
	metric sandboxMetric
	script string
}{
	{metricExec, `true`},
	{metricCPU, `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done`},
	{metricWrite, `dd if=/dev/zero of=/root/f bs=64k count=1280 conv=fsync 2>/dev/null; rm /root/f`},
	{metricFiles, `i=0; while [ $i -lt 2000 ]; do echo x > /root/f$i; i=$((i+1)); done`},
}

// sandboxRuntime is a CRI runtime handler of the bench's containerd.
type sandboxRuntime struct {
	handler, label string
}

var (
	runscRuntime = sandboxRuntime{containerd.RunscHandler, "runsc (gVisor)"}
	runcRuntime  = sandboxRuntime{"runc", "runc"}
)

// sandboxSamples are one runtime's figures.
type sandboxSamples struct {
	d        [sandboxMetrics][]time.Duration
	failed   [sandboxMetrics]int
	firstErr [sandboxMetrics]error
}

func (s *sandboxSamples) add(m sandboxMetric, d time.Duration, err error) {
	if err != nil {
		s.failed[m]++
		if s.firstErr[m] == nil {
			s.firstErr[m] = err
		}
		return
	}
	s.d[m] = append(s.d[m], d)
}

type sandboxResults struct {
	opts        *SandboxOptions
	context     string
	runtimes    string
	snapshotter string
	runsc, runc *sandboxSamples
}

// sandboxBench is the CRI client of one run.
type sandboxBench struct {
	opts *SandboxOptions
	rt   runtimeapi.RuntimeServiceClient
	logs string // the pods' log directories go here
	seq  int
}

func runSandboxBench(o *SandboxOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	if err := sandboxMissing(); err != nil {
		return fmt.Errorf("this bench needs root, containerd, runc and runsc:\n%w", err)
	}
	work, td, stop, err := workspace("kplex-bench-sandbox-", "interrupted: removing the pods and stopping containerd")
	if err != nil {
		return err
	}
	defer stop()

	ctx := context.Background()
	progress("containerd with runtime handlers runc and %s", containerd.RunscHandler)
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	ctrd, err := containerd.Start(startCtx, filepath.Join(work, "containerd"), containerd.WithRunsc(o.RunscFlags...))
	cancel()
	if err != nil {
		return err
	}
	td.add(func() {
		removeSandboxes(ctrd.Endpoint)
		if err := ctrd.Stop(); err != nil {
			progress("stopping containerd: %v", err)
		}
	})
	r := &sandboxResults{opts: o, snapshotter: ctrd.Snapshotter, runsc: &sandboxSamples{}, runc: &sandboxSamples{}}
	rt, closeConn, err := criRuntime(ctrd.Endpoint)
	if err != nil {
		return err
	}
	defer closeConn()
	b := &sandboxBench{opts: o, rt: rt, logs: filepath.Join(work, "pods")}

	// A first pod of each, not counted: runsc's first sandbox reads its
	// binary and the image's files cold.
	for _, x := range []sandboxRuntime{runcRuntime, runscRuntime} {
		progress("warm-up pod under %s", x.handler)
		if err := b.warmUp(ctx, x); err != nil {
			return fmt.Errorf("%s: %w; containerd's log (%s) ends:\n%s", x.label, err, ctrd.Log, logTail(ctrd.Log, 15))
		}
	}
	for i := range o.Pods {
		// Each goes first in every other round: neither always finds the
		// other's page cache and freed memory.
		order := []sandboxRuntime{runcRuntime, runscRuntime}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, x := range order {
			s := r.runc
			if x == runscRuntime {
				s = r.runsc
			}
			b.measure(ctx, x, s)
		}
		progress("pod %d of %d under each runtime done", i+1, o.Pods)
	}
	if list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil && len(list.Items) > 0 {
		progress("%d sandboxes left behind: removing them", len(list.Items))
	}
	r.context = machineContext()
	r.runtimes = fmt.Sprintf("%s; %s (through kplex-runsc: --network=host%s, under runc's shim)",
		firstLine("runc", "--version"), firstLine("runsc", "--version"), strings.Join(append([]string{""}, o.RunscFlags...), " "))
	r.print(os.Stdout)
	if os.Getenv("KPLEX_BENCH_KEEP") != "" {
		progress("logs kept in %s", work)
	}
	return nil
}

// firstLine is the first line of a command's output, for versions.
func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return name + " ?"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

// warmUp starts a pod under x and removes it; its error ends the bench,
// as a runtime that cannot start one pod has no figures.
func (b *sandboxBench) warmUp(ctx context.Context, x sandboxRuntime) error {
	podID, ctr, _, err := b.startPod(ctx, x.handler)
	if err == nil {
		_, err = b.exec(ctx, ctr, "true")
	}
	if podID != "" {
		err = errors.Join(err, b.removePod(ctx, podID))
	}
	return err
}

// measure runs one pod under x: its start, the workloads, its stop and
// removal. A failure is a sample less, counted in the table.
func (b *sandboxBench) measure(ctx context.Context, x sandboxRuntime, s *sandboxSamples) {
	podID, ctr, took, err := b.startPod(ctx, x.handler)
	s.add(metricStart, took, err)
	ran := err == nil
	if ran {
		for _, w := range sandboxWorkloads {
			d, err := b.exec(ctx, ctr, w.script)
			s.add(w.metric, d, err)
		}
	}
	if podID == "" {
		return
	}
	began := time.Now()
	err = b.removePod(ctx, podID)
	if ran || err != nil {
		s.add(metricStop, time.Since(began), err)
	}
}

// podConfig is a pod in the node's network namespace: no CNI, so the
// runtimes' own costs alone. It has no hostname of its own, as the node's
// UTS namespace goes with its network's.
func (b *sandboxBench) podConfig(handler string) (*runtimeapi.PodSandboxConfig, error) {
	b.seq++
	name := fmt.Sprintf("sandbox-%s-%d", handler, b.seq)
	logs := filepath.Join(b.logs, name)
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: fmt.Sprintf("%s-%d", name, os.Getpid())},
		LogDirectory: logs,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}, nil
}

// startPod runs a pod under handler with one busybox container sleeping,
// and times RunPodSandbox until the container is RUNNING. podID is set
// once the sandbox exists, even on error: the caller removes it.
func (b *sandboxBench) startPod(ctx context.Context, handler string) (podID, ctr string, took time.Duration, err error) {
	cfg, err := b.podConfig(handler)
	if err != nil {
		return "", "", 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	began := time.Now()
	run, err := b.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		return "", "", 0, fmt.Errorf("RunPodSandbox: %w", err)
	}
	podID = run.PodSandboxId
	created, err := b.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: podID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
			Image:    &runtimeapi.ImageSpec{Image: images.Busybox},
			Command:  []string{"sleep", "3600"},
			LogPath:  "c.log",
		},
		SandboxConfig: cfg,
	})
	if err != nil {
		return podID, "", 0, fmt.Errorf("CreateContainer: %w", err)
	}
	ctr = created.ContainerId
	if _, err := b.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctr}); err != nil {
		return podID, ctr, 0, fmt.Errorf("StartContainer: %w", err)
	}
	for {
		st, err := b.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr})
		if err != nil {
			return podID, ctr, 0, fmt.Errorf("ContainerStatus: %w", err)
		}
		switch st.GetStatus().GetState() {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			return podID, ctr, time.Since(began), nil
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			return podID, ctr, 0, fmt.Errorf("container exited: %s %s", st.GetStatus().GetReason(), st.GetStatus().GetMessage())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// exec times `sh -c script` in the container, to its exit.
func (b *sandboxBench) exec(ctx context.Context, ctr, script string) (time.Duration, error) {
	timeout := b.opts.ExecTimeout
	ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	began := time.Now()
	resp, err := b.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"sh", "-c", script}, Timeout: int64(timeout / time.Second)})
	took := time.Since(began)
	if err != nil {
		return 0, fmt.Errorf("exec %q: %w", script, err)
	}
	if resp.ExitCode != 0 {
		return 0, fmt.Errorf("exec %q: exit %d: %s", script, resp.ExitCode, strings.TrimSpace(string(resp.Stderr)))
	}
	return took, nil
}

// removePod stops the pod, which kills its container, and removes it.
func (b *sandboxBench) removePod(ctx context.Context, podID string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := b.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		return fmt.Errorf("StopPodSandbox: %w", err)
	}
	if _, err := b.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		return fmt.Errorf("RemovePodSandbox: %w", err)
	}
	return nil
}
