package main

import (
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"
)

type results struct {
	opts Options

	kplexStart   time.Duration
	rss0, rssN   int64
	heap0, heapN int64
	watches0     int64
	watchesN     int64
	provisioning []time.Duration
	get1, getN   []time.Duration
	fairness     *fairness
	// After every tenant got one CRD and one custom resource.
	crds            *crds
	rssCRD, heapCRD int64
	// After the tenants' admission plugin instances went idle.
	rssIdle, heapIdle int64
	watchesCRD        int64

	// The controller manager with no tenants and with N, asleep.
	cm0, cmN *controllersSample

	baselineStart []time.Duration
	baselineRSS   []int64
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func (r *results) print(w io.Writer) {
	n := int64(r.opts.Tenants)
	perTenantRSS := mib(r.rssN-r.rss0) / float64(n)
	perTenantHeap := mib(r.heapN-r.heap0) / float64(n)
	p50, p99 := percentile(r.provisioning, 0.50), percentile(r.provisioning, 0.99)
	baseStart := percentile(r.baselineStart, 0.50)
	baseRSS := mib(median64(r.baselineRSS))
	get1, getN := percentile(r.get1, 0.99), percentile(r.getN, 0.99)

	fmt.Fprintf(w, "\nkplex bench: N=%d tenants, %d CPUs, %s, baseline = %d dedicated kube-apiserver + etcd (same module, same run)\n\n",
		n, runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339), len(r.baselineStart))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "figure\tkplex\tbaseline\tratio\ttarget")
	fmt.Fprintf(tw, "provisioning p50 (create → GET ns default)\t%s\t%s start-to-ready\t%.0f× faster\t≤ 20 ms: %s\n",
		ms(p50), ms(baseStart), float64(baseStart)/float64(p50), verdict(p50 <= 20*time.Millisecond))
	fmt.Fprintf(tw, "provisioning p99\t%s\t\t%.0f× faster\t≤ 100 ms: %s\n",
		ms(p99), float64(baseStart)/float64(p99), verdict(p99 <= 100*time.Millisecond))
	fmt.Fprintf(tw, "memory per tenant, (RSS_N − RSS_0)/N\t%.3f MiB\t%.0f MiB per control plane\t%.0f× less\t≤ 0.5 MiB: %s\n",
		perTenantRSS, baseRSS, baseRSS/perTenantRSS, verdict(perTenantRSS <= 0.5))
	fmt.Fprintf(tw, "Go heap per tenant, (heap_N − heap_0)/N\t%.3f MiB\t\t\t\n", perTenantHeap)
	fmt.Fprintf(tw, "apiserver RSS at N=0 → N\t%.0f → %.0f MiB\t\t\t\n", mib(r.rss0), mib(r.rssN))
	fmt.Fprintf(tw, "etcd watches at N=0 → N\t%d → %d\t\t\tflat: %s\n", r.watches0, r.watchesN, verdict(r.watches0 == r.watchesN))
	fmt.Fprintf(tw, "GET p99 at N=1 → N\t%s → %s\t\t%.2f×\t\n", ms(get1), ms(getN), float64(getN)/float64(get1))
	fmt.Fprintf(tw, "apiserver start-to-ready\t%s\t%s\t\t\n", ms(r.kplexStart), ms(baseStart))
	if c := r.crds; c != nil {
		idle := mib(r.rssIdle-r.rss0) / float64(n)
		fmt.Fprintf(tw, "memory per tenant with 1 CRD, 1 webhook, 1 custom resource, (RSS − RSS_0)/N\t%.3f MiB\t%.0f MiB per control plane\t%.0f× less\t≤ 1 MiB: %s\n",
			idle, baseRSS, baseRSS/idle, verdict(idle <= 1))
		fmt.Fprintf(tw, "  Go heap per tenant, same\t%.3f MiB\t\t\t\n", mib(r.heapIdle-r.heap0)/float64(n))
		hot := mib(r.rssCRD-r.rss0) / float64(n)
		fmt.Fprintf(tw, "  same, every tenant active: its webhook plugin and CRD serving live (used < %s ago)\t%.3f MiB (heap %.3f)\t\t%.0f× less\t≤ 1 MiB: %s\n",
			r.opts.Idle, hot, mib(r.heapCRD-r.heap0)/float64(n), baseRSS/hot, verdict(hot <= 1))
		fmt.Fprintf(tw, "  webhook calls for the N custom resources\t%d\t\t\t%d: %s\n", c.webhookCalls, n, verdict(c.webhookCalls == n))
		fmt.Fprintf(tw, "  apiserver RSS, etcd watches\t%.0f MiB, %d watches\t\t\tflat: %s\n", mib(r.rssCRD), r.watchesCRD, verdict(r.watchesCRD == r.watches0))
		est50, est99 := percentile(c.established, 0.5), percentile(c.established, 0.99)
		fmt.Fprintf(tw, "CRD create → Established p50 / p99\t%s / %s\t\t\tprompt\n", ms(est50), ms(est99))
		fmt.Fprintf(tw, "CRD create → first custom resource accepted p50 (%d tenants)\t%s\t\t\tincludes upstream's 2 s hold-back\n",
			len(c.firstCR), ms(percentile(c.firstCR, 0.5)))
	}
	if r.cm0 != nil && r.cmN != nil {
		perRSS := mib(r.cmN.rss-r.cm0.rss) / float64(n)
		perG := float64(r.cmN.goroutines-r.cm0.goroutines) / float64(n)
		fmt.Fprintf(tw, "controller manager per idle tenant, RSS (N − 0)/N\t%.3f MiB\t\t\t≤ 0.5 MiB: %s\n", perRSS, verdict(perRSS <= 0.5))
		fmt.Fprintf(tw, "controller manager per idle tenant, goroutines (N − 0)/N\t%.3f\t\t\t≤ 2: %s\n", perG, verdict(perG <= 2))
		fmt.Fprintf(tw, "  controller manager RSS, goroutines at 0 → N\t%.0f → %.0f MiB, %d → %d\t\t\t\n", mib(r.cm0.rss), mib(r.cmN.rss), r.cm0.goroutines, r.cmN.goroutines)
		fmt.Fprintf(tw, "  default service accounts it made (4 namespaces per tenant)\t%d\t\t\t%d: %s\n", r.cmN.serviceAccounts, 4*n, verdict(int64(r.cmN.serviceAccounts) >= 4*n))
		if d := r.cmN.deployments; d != nil {
			alone, together := percentile(d.alone, 0.5), percentile(d.together, 0.5)
			fmt.Fprintf(tw, "create deployment (%d replicas) → %d pods p50, %d tenants at once\t%s\t%s one tenant at a time\t%.2f×\t\n",
				benchReplicas, benchReplicas, len(d.together), ms(together), ms(alone), float64(together)/float64(alone))
			fmt.Fprintf(tw, "  same, p99 (controllers asleep when created)\t%s\t\t\t\n", ms(percentile(d.together, 0.99)))
			if len(d.beside) > 0 {
				beside := percentile(d.beside, 0.5)
				fmt.Fprintf(tw, "  same, p50 of %d tenants one at a time beside one scaling to %d pods (%d made meanwhile)\t%s\t%s alone\t%.2f×\t\n",
					len(d.beside), busyReplicas, d.busyPods, ms(beside), ms(alone), float64(beside)/float64(alone))
			}
		}
	}
	if f := r.fairness; f != nil {
		idle, flooded := percentile(f.idle, 0.99), percentile(f.flooded, 0.99)
		ratio := float64(flooded) / float64(idle)
		fmt.Fprintf(tw, "quiet tenant's list p99, beside a %d-client flood\t%s\t%s idle\t%.2f×\t≤ 2×: %s\n",
			floodWorkers, ms(flooded), ms(idle), ratio, verdict(ratio <= 2))
		unfair := percentile(f.unfair, 0.99)
		fmt.Fprintf(tw, "  same, beside the flood sent as system:masters (no APF)\t%s\t%s idle\t%.2f×\t\n",
			ms(unfair), ms(idle), float64(unfair)/float64(idle))
		fmt.Fprintf(tw, "quiet tenant's list p50, beside the flood\t%s\t%s idle\t%.2f×\t\n",
			ms(percentile(f.flooded, 0.5)), ms(percentile(f.idle, 0.5)), float64(percentile(f.flooded, 0.5))/float64(percentile(f.idle, 0.5)))
		fmt.Fprintf(tw, "flooding tenant's throughput (429s)\t%.0f req/s (%d)\t\t\t\n",
			float64(f.floodDone)/f.floodTime.Seconds(), f.floodRejected)
	}
	_ = tw.Flush()
}
