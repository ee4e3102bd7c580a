package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/apiserver/pki"
	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/client/tenants"
	"github.com/kplex/kplex/tenant"
)

// Options configure a run; defaultOptions documents the defaults.
type Options struct {
	Tenants  int
	Baseline int
	Gets     int
	Settle   time.Duration
	BinDir   string
	// ApiserverFlags are added to kplex-apiserver's command line.
	ApiserverFlags []string
	// Idle is the apiserver's --tenant-admission-idle-timeout and
	// --tenant-crd-idle-timeout; memory is measured again once it passed.
	Idle time.Duration
}

func defaultOptions() Options {
	bin := os.Getenv("KPLEX_BIN_DIR")
	if bin == "" {
		bin = "bin"
	}
	return Options{Tenants: 1000, Baseline: 3, Gets: 300, Settle: 10 * time.Second, BinDir: bin, Idle: time.Minute}
}

func run(opts Options) (*results, error) {
	work, err := os.MkdirTemp("", "kplex-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	r := &results{opts: opts}
	progress("measuring kplex with %d tenants", opts.Tenants)
	if err := measureKplex(opts, work, r); err != nil {
		return nil, fmt.Errorf("kplex: %w", err)
	}
	progress("measuring the baseline: %d dedicated kube-apiserver + etcd", opts.Baseline)
	if err := measureBaseline(opts, work, r); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	return r, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func measureKplex(opts Options, work string, r *results) error {
	ctx := context.Background()
	etcdServer, etcdArgs, err := startEtcd(ctx, filepath.Join(work, "kplex-etcd"))
	if err != nil {
		return err
	}
	defer etcdServer.Close()
	started := time.Now()
	cp, err := startKplexAPIServer(opts.BinDir, filepath.Join(work, "kplex"), filepath.Join(work, "kplex-apiserver.log"), etcdArgs,
		append([]string{"--tenant-admission-idle-timeout", opts.Idle.String(), "--tenant-crd-idle-timeout", opts.Idle.String()}, opts.ApiserverFlags...)...)
	if err != nil {
		return err
	}
	defer cp.stop()
	apiserver, admin, url := cp.apiserver, cp.admin, cp.admin.Host
	if err := waitReady(admin); err != nil {
		return err
	}
	r.kplexStart = time.Since(started)
	client, err := rest.HTTPClientFor(admin)
	if err != nil {
		return err
	}
	tc, err := tenants.New(admin)
	if err != nil {
		return err
	}

	if r.rss0, r.heap0, err = settle(opts, client, url, apiserver); err != nil {
		return err
	}
	r.watches0 = etcdWatchers()
	progress("the controller manager with no tenants")
	if r.cm0, err = measureControllers(opts, work, admin, nil); err != nil {
		return fmt.Errorf("measuring the controller manager: %w", err)
	}

	names := make([]string, opts.Tenants)
	for i := range names {
		names[i] = fmt.Sprintf("t-%05d", i)
		began := time.Now()
		if _, err := tc.Create(ctx, names[i]); err != nil {
			return err
		}
		if err := pollServing(ctx, client, url, names[i]); err != nil {
			return err
		}
		r.provisioning = append(r.provisioning, time.Since(began))
		if i == 0 {
			if r.get1, err = getLatencies(client, url, names[:1], opts.Gets); err != nil {
				return err
			}
		}
		if (i+1)%500 == 0 {
			progress("%d tenants created", i+1)
		}
	}
	progress("touching every tenant: discovery and a list")
	for _, name := range names {
		for _, path := range []string{"/api", "/apis", "/api/v1/namespaces/default/configmaps"} {
			if err := get(client, url+tenant.Path(name)+path); err != nil {
				return err
			}
		}
	}
	if r.rssN, r.heapN, err = settle(opts, client, url, apiserver); err != nil {
		return err
	}
	r.watchesN = etcdWatchers()
	if r.getN, err = getLatencies(client, url, names, opts.Gets); err != nil {
		return err
	}
	progress("one CRD, one webhook and one custom resource in every tenant")
	touch := func() error {
		progress("every tenant's discovery and custom resource list")
		for _, name := range names {
			for _, path := range []string{"/apis", "/openapi/v3", "/apis/example.com/v1/namespaces/default/widgets"} {
				if err := get(client, url+tenant.Path(name)+path); err != nil {
					return err
				}
			}
		}
		return nil
	}
	live := func() (err error) {
		r.rssCRD, r.heapCRD, err = settle(opts, client, url, apiserver)
		return err
	}
	if r.crds, err = measureCRDs(client, url, names, touch, live); err != nil {
		return fmt.Errorf("measuring CRDs: %w", err)
	}
	r.watchesCRD = etcdWatchers()
	progress("waiting %s for the tenants' idle admission plugins and CRD serving to stop", opts.Idle)
	time.Sleep(opts.Idle + opts.Idle/4 + time.Second)
	if r.rssIdle, r.heapIdle, err = settle(opts, client, url, apiserver); err != nil {
		return err
	}
	if len(names) >= 2 {
		progress("fairness: a quiet tenant beside a flooding one")
		if r.fairness, err = measureFairness(ctx, admin, tc, names[0], names[1], opts.Gets); err != nil {
			return fmt.Errorf("measuring fairness: %w", err)
		}
	}
	// Last, as it writes: every tenant's namespaces get their service
	// accounts and CA, then the tenants' controllers go back to sleep.
	progress("the controller manager with %d tenants, once their controllers sleep", len(names))
	if r.cmN, err = measureControllers(opts, work, admin, names); err != nil {
		return fmt.Errorf("measuring the controller manager: %w", err)
	}
	return nil
}

// settle forces a GC in the apiserver, waits, and reads RSS and live heap.
func settle(opts Options, client *http.Client, url string, p *process) (rss, heap int64, err error) {
	if err := get(client, url+"/debug/pprof/heap?gc=1"); err != nil {
		return 0, 0, fmt.Errorf("forcing GC: %w", err)
	}
	time.Sleep(opts.Settle)
	if err := get(client, url+"/debug/pprof/heap?gc=1"); err != nil {
		return 0, 0, fmt.Errorf("forcing GC: %w", err)
	}
	if rss, err = p.rss(); err != nil {
		return 0, 0, err
	}
	heap, err = metric(client, url, "go_memstats_alloc_bytes")
	return rss, heap, err
}

func pollServing(ctx context.Context, client *http.Client, url, name string) error {
	target := url + tenant.Path(name) + "/api/v1/namespaces/default"
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := client.Get(target)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("tenant %s not serving within a minute", name)
}

func getLatencies(client *http.Client, url string, names []string, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		name := names[rand.IntN(len(names))]
		began := time.Now()
		if err := get(client, url+tenant.Path(name)+"/api/v1/namespaces/default"); err != nil {
			return nil, err
		}
		out = append(out, time.Since(began))
	}
	return out, nil
}

func get(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = bufio.NewReader(resp.Body).WriteTo(discard{})
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

func metric(client *http.Client, url, name string) (int64, error) {
	var found bool
	v, err := scanMetric(client, url, func(line string) bool {
		found = found || strings.HasPrefix(line, name+" ")
		return strings.HasPrefix(line, name+" ")
	})
	if err == nil && !found {
		err = fmt.Errorf("metric %s not found", name)
	}
	return v, err
}

// metricSum returns the sum of a metric over its labels.
func metricSum(client *http.Client, url, name string) (int64, error) {
	return scanMetric(client, url, func(line string) bool {
		return strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ")
	})
}

// scanMetric sums the values of the metrics lines that match.
func scanMetric(client *http.Client, url string, match func(line string) bool) (int64, error) {
	resp, err := client.Get(url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	var sum float64
	for s.Scan() {
		if line := s.Text(); match(line) {
			f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				return 0, err
			}
			sum += f
		}
	}
	return int64(sum), s.Err()
}

// etcdWatchers reads the in-process etcd's watcher gauge.
func etcdWatchers() int64 {
	families, _ := prometheus.DefaultGatherer.Gather()
	for _, f := range families {
		if f.GetName() == "etcd_debugging_mvcc_watcher_total" {
			return int64(f.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return -1
}

func measureBaseline(opts Options, work string, r *results) error {
	var planes []*controlPlane
	defer func() {
		for _, cp := range planes {
			cp.stop()
		}
	}()
	for i := range opts.Baseline {
		dir := filepath.Join(work, fmt.Sprintf("dedicated-%d", i))
		// Keys are made before the clock starts, as kplex's are.
		if err := pki.Ensure(server.PKIFiles(dir), nil); err != nil {
			return err
		}
		began := time.Now()
		cp, err := startDedicated(opts.BinDir, dir)
		if err != nil {
			return err
		}
		planes = append(planes, cp)
		etcdProc, apiserver, url := cp.etcd, cp.apiserver, cp.admin.Host
		if err := waitReady(cp.admin); err != nil {
			return err
		}
		r.baselineStart = append(r.baselineStart, time.Since(began))
		client, err := rest.HTTPClientFor(cp.admin)
		if err != nil {
			return err
		}
		if err := get(client, url+"/api/v1/namespaces/default/configmaps"); err != nil {
			return err
		}
		time.Sleep(opts.Settle)
		if err := get(client, url+"/debug/pprof/heap?gc=1"); err != nil {
			return err
		}
		apiRSS, err := apiserver.rss()
		if err != nil {
			return err
		}
		etcdRSS, err := etcdProc.rss()
		if err != nil {
			return err
		}
		r.baselineRSS = append(r.baselineRSS, apiRSS+etcdRSS)
		progress("dedicated control plane %d ready in %s, %.0f MiB", i+1, r.baselineStart[i].Round(time.Millisecond), mib(apiRSS+etcdRSS))
	}
	return nil
}

// waitReady waits up to 3 minutes for the apiserver cfg addresses.
func waitReady(cfg *rest.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return server.WaitReady(ctx, cfg)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func median64(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
