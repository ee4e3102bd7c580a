package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/client/tenants"
	"github.com/kplex/kplex/tenant"
)

// fairness is what a quiet tenant feels of a flooding one.
type fairness struct {
	// The quiet tenant's list latencies: alone, beside the tenant's flood,
	// and beside the same flood sent by system:masters, which API Priority
	// and Fairness exempts: what the quiet tenant would feel without it.
	idle, flooded, unfair []time.Duration
	floodDone             int64 // requests the tenant's flood completed
	floodRejected         int64 // of which answered 429 Too Many Requests
	floodTime             time.Duration
}

// floodWorkers is the flood's concurrency: ten times the quiet tenant's one
// request at a time.
const floodWorkers = 10

// quietPause spaces the quiet tenant's requests: it is a tenant going about
// its business, not a load generator.
const quietPause = 5 * time.Millisecond

// measureFairness measures the quiet tenant's list latency alone, then while
// the flooding tenant lists as fast as ten clients can, from a process of
// its own. Both authenticate as their tenant's admin, whom API Priority and
// Fairness does not exempt; then the flood is sent again as system:masters,
// whom it exempts.
func measureFairness(ctx context.Context, admin *rest.Config, tc *tenants.Client, quiet, flood string, n int) (*fairness, error) {
	quietClient, err := tenantClient(ctx, admin, tc, quiet)
	if err != nil {
		return nil, err
	}
	list := func(c *http.Client, name string) (int, error) {
		resp, err := c.Get(admin.Host + tenant.Path(name) + "/api/v1/namespaces/kube-system/configmaps")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	sample := func() ([]time.Duration, error) {
		out := make([]time.Duration, 0, n)
		for range n {
			began := time.Now()
			code, err := list(quietClient, quiet)
			if err != nil {
				return nil, err
			}
			if code != http.StatusOK {
				return nil, errors.New("the quiet tenant was answered " + http.StatusText(code))
			}
			out = append(out, time.Since(began))
			time.Sleep(quietPause)
		}
		return out, nil
	}
	f := &fairness{}
	if f.idle, err = sample(); err != nil {
		return nil, err
	}

	floodCreds, err := tc.Credentials(ctx, flood)
	if err != nil {
		return nil, err
	}
	target := admin.Host + tenant.Path(flood) + "/api/v1/namespaces/kube-system/configmaps"
	var floodErr error
	f.flooded, f.floodDone, f.floodRejected, f.floodTime, floodErr = beside(floodArgs{url: target, ca: admin.CAFile, token: floodCreds.Token}, sample)
	if floodErr != nil {
		return nil, floodErr
	}
	f.unfair, _, _, _, err = beside(floodArgs{url: target, ca: admin.CAFile, cert: admin.CertFile, key: admin.KeyFile}, sample)
	return f, err
}

// floodArgs say what a flood process sends, authenticated by a token or a
// client certificate.
type floodArgs struct{ url, ca, token, cert, key string }

// beside runs sample while a separate process floods with floodWorkers
// clients: a flooding tenant's clients do not share a process, its CPU
// scheduler or its garbage collector with the quiet tenant's. It returns the
// samples and how many requests the flood completed, how many were refused
// with 429, in how long.
func beside(a floodArgs, sample func() ([]time.Duration, error)) ([]time.Duration, int64, int64, time.Duration, error) {
	cmd := exec.Command(os.Args[0], "--flood="+a.url, "--flood-ca="+a.ca, "--flood-token="+a.token, "--flood-cert="+a.cert, "--flood-key="+a.key)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, 0, 0, 0, err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, 0, 0, fmt.Errorf("starting the flood: %w", err)
	}
	time.Sleep(time.Second) // let the flood fill its queues
	samples, sampleErr := sample()
	stdin.Close() // the flood stops at end of input
	if err := cmd.Wait(); err != nil {
		return nil, 0, 0, 0, fmt.Errorf("flood: %w", err)
	}
	elapsed := time.Since(began)
	var done, rejected int64
	if _, err := fmt.Sscan(out.String(), &done, &rejected); err != nil {
		return nil, 0, 0, 0, fmt.Errorf("reading the flood's counts %q: %w", out.String(), err)
	}
	return samples, done, rejected, elapsed, sampleErr
}

// runFlood is the flood process: floodWorkers clients GET url in a loop
// until standard input ends, then it prints how many requests completed and
// how many were answered 429.
func runFlood(url, ca, token, cert, key string) error {
	cfg := &rest.Config{Host: url, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: ca, CertFile: cert, KeyFile: key}}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	var done, rejected atomic.Int64
	var wg sync.WaitGroup
	for range floodWorkers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				done.Add(1)
				if resp.StatusCode == http.StatusTooManyRequests {
					rejected.Add(1)
				}
			}
		})
	}
	wg.Wait()
	fmt.Println(done.Load(), rejected.Load())
	return nil
}

// tenantClient returns an HTTP client that authenticates as name's admin.
func tenantClient(ctx context.Context, admin *rest.Config, tc *tenants.Client, name string) (*http.Client, error) {
	creds, err := tc.Credentials(ctx, name)
	if err != nil {
		return nil, err
	}
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = creds.Token
	return rest.HTTPClientFor(cfg)
}
