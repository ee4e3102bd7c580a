package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// cell is a runtime's figure for m at percentile p, with its failures.
func (s *sandboxSamples) cell(m sandboxMetric, p float64) string {
	if len(s.d[m]) == 0 {
		if err := s.firstErr[m]; err != nil {
			return "failed: " + oneLine(err.Error(), 80)
		}
		return "no samples"
	}
	c := ms(percentile(s.d[m], p))
	if s.failed[m] > 0 {
		c += fmt.Sprintf(" (%d failed)", s.failed[m])
	}
	return c
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", "; ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func (r *sandboxResults) print(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "\nkplex bench-sandbox: gVisor against runc in one private containerd (snapshotter %s), %d pods under each, in turn, on the host network; %s\n",
		r.snapshotter, o.Pods, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "runtimes: %s\n", r.runtimes)
	fmt.Fprintf(w, "machine: %s\n\n", r.context)
	rows := [][]string{{"metric", "runsc (gVisor)", "runc", "ratio"}}
	row := func(label string, m sandboxMetric, p float64) {
		ratioCell := ""
		if len(r.runsc.d[m]) > 0 && len(r.runc.d[m]) > 0 {
			ratioCell = ratio(percentile(r.runsc.d[m], p), percentile(r.runc.d[m], p))
		}
		rows = append(rows, []string{label, r.runsc.cell(m, p), r.runc.cell(m, p), ratioCell})
	}
	row("pod start p50: RunPodSandbox → its container RUNNING", metricStart, 0.5)
	row(fmt.Sprintf("  same, p99 (of %d pods)", o.Pods), metricStart, 0.99)
	row("exec of `true` p50: what each exec below costs", metricExec, 0.5)
	row("CPU loop p50: sh counts to 200,000 (one exec)", metricCPU, 0.5)
	row("80 MB to the container's root fs p50: dd bs=64k, fsync (one exec)", metricWrite, 0.5)
	row("2,000 small files to the root fs p50: echo x > /root/f$i (one exec)", metricFiles, 0.5)
	row("stop + remove p50: StopPodSandbox, RemovePodSandbox", metricStop, 0.5)
	rows = append(rows, []string{"pods that started", fmt.Sprintf("%d of %d", len(r.runsc.d[metricStart]), o.Pods),
		fmt.Sprintf("%d of %d", len(r.runc.d[metricStart]), o.Pods), ""})
	printRows(w, rows)
	fmt.Fprintln(w, "\nratio: runsc's time over runc's, both measured in this run (above 1: slower under gVisor)")
	for _, x := range []struct {
		label string
		s     *sandboxSamples
	}{{runscRuntime.label, r.runsc}, {runcRuntime.label, r.runc}} {
		for m, err := range x.s.firstErr {
			if err != nil {
				fmt.Fprintf(w, "%s: %d failed, the first: %s\n", x.label, x.s.failed[m], oneLine(err.Error(), 300))
			}
		}
	}
}
