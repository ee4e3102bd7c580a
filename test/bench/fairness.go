package main

import (
	"context"
	"errors"
	"io"
	"net/http"
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
// the flooding tenant lists as fast as ten clients can. Both authenticate as
// their tenant's admin, whom API Priority and Fairness does not exempt.
func measureFairness(ctx context.Context, admin *rest.Config, tc *tenants.Client, quiet, flood string, n int) (*fairness, error) {
	quietClient, err := tenantClient(ctx, admin, tc, quiet)
	if err != nil {
		return nil, err
	}
	floodClient, err := tenantClient(ctx, admin, tc, flood)
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

	rootClient, err := rest.HTTPClientFor(admin)
	if err != nil {
		return nil, err
	}
	var rejected int64
	f.flooded, f.floodDone, f.floodTime, err = beside(func() (int, error) {
		code, err := list(floodClient, flood)
		if code == http.StatusTooManyRequests {
			atomic.AddInt64(&rejected, 1)
		}
		return code, err
	}, sample)
	if err != nil {
		return nil, err
	}
	f.floodRejected = rejected
	f.unfair, _, _, err = beside(func() (int, error) { return list(rootClient, flood) }, sample)
	return f, err
}

// beside runs sample while floodWorkers clients send flood in a loop, and
// returns the samples and how many requests the flood completed in how long.
func beside(flood func() (int, error), sample func() ([]time.Duration, error)) ([]time.Duration, int64, time.Duration, error) {
	stop := make(chan struct{})
	var done int64
	var wg sync.WaitGroup
	began := time.Now()
	for range floodWorkers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := flood(); err == nil {
					atomic.AddInt64(&done, 1)
				}
			}
		})
	}
	time.Sleep(time.Second) // let the flood fill its queues
	out, err := sample()
	close(stop)
	wg.Wait()
	return out, done, time.Since(began), err
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
