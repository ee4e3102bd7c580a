// Command bench measures what a tenant costs in a kplex apiserver and how
// that compares with a dedicated kube-apiserver + etcd built from the same
// module, measured in the same run. `make bench` runs it and prints a table.
//
// kplex is measured as its own process (bin/kplex-apiserver) over an etcd
// embedded in this program, so the apiserver's RSS is the apiserver's alone
// and etcd's watch count can be read directly. The baseline runs each
// dedicated control plane as two processes: bin/kube-apiserver and an etcd
// child of this program (`bench --run-etcd DIR`).
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	opts := defaultOptions()
	flag.IntVar(&opts.Tenants, "tenants", opts.Tenants, "tenants to create (N)")
	flag.IntVar(&opts.Baseline, "baseline", opts.Baseline, "dedicated kube-apiserver + etcd pairs to start for the baseline")
	flag.IntVar(&opts.Gets, "gets", opts.Gets, "GET requests per latency sample")
	flag.DurationVar(&opts.Settle, "settle", opts.Settle, "wait after GC before reading RSS")
	flag.StringVar(&opts.BinDir, "bin-dir", opts.BinDir, "directory with kplex-apiserver and kube-apiserver")
	flag.Func("apiserver-flag", "extra flag for kplex-apiserver, as --name=value (repeatable)", func(v string) error {
		opts.ApiserverFlags = append(opts.ApiserverFlags, v)
		return nil
	})
	flag.DurationVar(&opts.Idle, "idle", opts.Idle, "the apiserver's --tenant-admission-idle-timeout and --tenant-crd-idle-timeout")
	schedulerBench := flag.Bool("scheduler", false, "measure kplex-scheduler against vanilla kube-scheduler instead (make bench-scheduler)")
	sopts := defaultSchedulerOptions()
	flag.IntVar(&sopts.Tenants, "scheduler-tenants", sopts.Tenants, "--scheduler: tenants, each with --pods-per-tenant pending pods")
	flag.IntVar(&sopts.PodsPerTenant, "pods-per-tenant", sopts.PodsPerTenant, "--scheduler: pods per tenant")
	flag.IntVar(&sopts.Nodes, "nodes", sopts.Nodes, "--scheduler: simulated nodes (Node objects), in dedicated and shared pools")
	nodeAgentBench := flag.Bool("nodeagent", false, "measure kplex-nodeagent instead: pod start with the simulated runtime and containerd, N simulated nodes' heartbeats and RSS (make bench-nodeagent)")
	naopts := addNodeAgentFlags(flag.CommandLine)
	networkBench := flag.Bool("network", false, "measure the pod network instead: pod start with and without it, Service programming with many tenants and with one, the node agent's RSS and cluster DNS, on one containerd node in network namespaces (make bench-network)")
	nopts := addNetworkFlags(flag.CommandLine)
	sandboxBench := flag.Bool("sandbox", false, "measure gVisor (runsc) against runc instead: pod start, a CPU loop, writes to the root fs, stop and removal, in one private containerd through CRI (make bench-sandbox)")
	sbopts := addSandboxFlags(flag.CommandLine)
	runEtcd := flag.String("run-etcd", "", "internal: run an embedded etcd laid out in this directory as in a kplex data directory (etcd/, pki/) and print its client URL")
	flood := flag.String("flood", "", "internal: flood this URL until standard input ends")
	floodCA := flag.String("flood-ca", "", "internal: the flood's CA file")
	floodToken := flag.String("flood-token", "", "internal: the flood's bearer token")
	floodCert := flag.String("flood-cert", "", "internal: the flood's client certificate")
	floodKey := flag.String("flood-key", "", "internal: the flood's client key")
	flag.Parse()
	if *flood != "" {
		if err := runFlood(*flood, *floodCA, *floodToken, *floodCert, *floodKey); err != nil {
			fmt.Fprintln(os.Stderr, "flood:", err)
			os.Exit(1)
		}
		return
	}
	if *runEtcd != "" {
		if err := serveEtcd(*runEtcd); err != nil {
			fmt.Fprintln(os.Stderr, "etcd:", err)
			os.Exit(1)
		}
		return
	}
	if *schedulerBench {
		if err := runSchedulerBench(opts.BinDir, sopts); err != nil {
			fmt.Fprintln(os.Stderr, "bench-scheduler:", err)
			os.Exit(1)
		}
		return
	}
	if *nodeAgentBench {
		naopts.BinDir, naopts.ApiserverFlags = opts.BinDir, opts.ApiserverFlags
		if err := runNodeAgentBench(naopts); err != nil {
			fmt.Fprintln(os.Stderr, "bench-nodeagent:", err)
			os.Exit(1)
		}
		return
	}
	if *networkBench {
		nopts.BinDir = opts.BinDir
		if err := runNetworkBench(nopts); err != nil {
			fmt.Fprintln(os.Stderr, "bench-network:", err)
			os.Exit(1)
		}
		return
	}
	if *sandboxBench {
		if err := runSandboxBench(sbopts); err != nil {
			fmt.Fprintln(os.Stderr, "bench-sandbox:", err)
			os.Exit(1)
		}
		return
	}
	results, err := run(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	results.print(os.Stdout)
}
