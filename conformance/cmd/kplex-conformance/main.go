// Command kplex-conformance runs upstream's conformance suite (e2e.test)
// against a kplex tenant on this machine: see package harness. run.sh
// builds what it needs and calls it; `make conformance` calls run.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kplex/kplex/conformance/harness"
	"github.com/kplex/kplex/conformance/images"
)

func main() {
	var o harness.Options
	flag.StringVar(&o.BinDir, "bin-dir", "bin", "directory of the kplex binaries (make build)")
	flag.StringVar(&o.E2E, "e2e", "", "the e2e.test binary")
	flag.StringVar(&o.Ginkgo, "ginkgo", "", "the ginkgo CLI, to run --procs > 1 processes; empty runs e2e.test serially")
	flag.IntVar(&o.Procs, "procs", 1, "parallel ginkgo processes (needs --ginkgo)")
	flag.StringVar(&o.Images.Agnhost, "agnhost", "", "the agnhost binary, static")
	flag.StringVar(&o.Images.Pause, "pause", "", "the pause binary, static")
	flag.StringVar(&o.Images.Nonewprivs, "nonewprivs", "", "the nonewprivs (nnp) binary, static")
	flag.StringVar(&o.Images.Busybox, "busybox", "/bin/busybox", "a static busybox")
	flag.StringVar(&o.Images.KubeSrc, "kube-src", "", "k8s.io/kubernetes's module directory")
	flag.StringVar(&o.ReportDir, "report-dir", "", "where the suite's junit_01.xml, e2e.log and the logs go")
	flag.StringVar(&o.Focus, "focus", `\[Conformance\]`, "ginkgo focus regexp")
	flag.StringVar(&o.Skip, "skip", `\[Serial\]|\[Disruptive\]`, "ginkgo skip regexp")
	flag.DurationVar(&o.Timeout, "timeout", 0, "the suite's timeout; ginkgo names the specs it interrupts (default 2h)")
	flag.IntVar(&o.Nodes, "nodes", 2, "containerd nodes")
	flag.BoolVar(&o.Keep, "keep", false, "keep the work dir (containerd state, kplex data) for debugging")
	check := flag.Bool("check", false, "only check that this machine can run the suite")
	imagesOnly := flag.String("images-only", "", "only build the suite's images as OCI archives into this directory (and import them with --containerd-address)")
	address := flag.String("containerd-address", "", "with --images-only, import the images into the containerd at this socket (e.g. /run/containerd/containerd.sock)")
	flag.Parse()
	o.Log = os.Stderr

	var err error
	switch {
	case *imagesOnly != "":
		err = buildImages(o.Images, *imagesOnly, *address)
	case *check:
		err = harness.Missing()
	default:
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kplex-conformance:", err)
		os.Exit(1)
	}
}

// buildImages writes the images into dir and, when address is set,
// imports them into that containerd.
func buildImages(bins images.Binaries, dir, address string) error {
	tars, err := images.Build(dir, bins)
	if err != nil {
		return err
	}
	for name, path := range tars {
		fmt.Printf("%s\t%s\n", name, path)
	}
	if address == "" {
		return nil
	}
	return harness.Import(context.Background(), address, "", tars)
}

func run(o harness.Options) error {
	if o.E2E == "" || o.ReportDir == "" || o.Images.Agnhost == "" || o.Images.Pause == "" || o.Images.Nonewprivs == "" || o.Images.KubeSrc == "" {
		return errors.New("--e2e, --report-dir, --agnhost, --pause, --nonewprivs and --kube-src are required")
	}
	// Interrupted, the harness still tears down what it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return harness.Run(ctx, o)
}
