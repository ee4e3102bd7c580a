package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kplex/kplex/capacity"
)

func fixed(r *capacity.Report) func(context.Context) (*capacity.Report, error) {
	return func(context.Context) (*capacity.Report, error) { return r, nil }
}

func TestValidate(t *testing.T) {
	t.Parallel()
	load := fixed(&capacity.Report{})
	for _, tc := range []struct {
		opts Options
		want string // "" for valid; else a part of the error
	}{
		{Options{}, ""},
		{Options{Address: "127.0.0.1:0"}, ""},
		{Options{Address: "127.1.2.3:8765"}, ""},
		{Options{Address: "localhost:8765"}, ""},
		{Options{Address: "[::1]:0"}, ""},
		{Options{Address: "0.0.0.0:8765"}, "--allow-remote"},
		{Options{Address: ":8765"}, "not a loopback address"},
		{Options{Address: "10.0.0.1:80"}, "not a loopback address"},
		{Options{Address: "dashboard.example.com:80"}, "not a loopback address"},
		{Options{Address: "8765"}, "--address"},
		{Options{Address: "0.0.0.0:8765", AllowRemote: true, Token: "t"}, ""},
		{Options{Address: "0.0.0.0:8765", AllowRemote: true}, "token"},
	} {
		if tc.opts.Load == nil {
			tc.opts.Load = load
		}
		err := tc.opts.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.opts, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want an error with %q", tc.opts, err, tc.want)
		}
	}
	if err := (Options{Address: "0.0.0.0:1", Load: load}).Validate(); !errors.Is(err, ErrRemote) {
		t.Errorf("0.0.0.0: %v, want ErrRemote", err)
	}
}

func gpus(n string) corev1.ResourceList {
	return corev1.ResourceList{capacity.GPU: resource.MustParse(n)}
}

func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Address == "" {
		opts.Address = "127.0.0.1:0"
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func get(h http.Handler, host, target string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestReport(t *testing.T) {
	t.Parallel()
	var loads atomic.Int32
	report := &capacity.Report{
		Pools:       []capacity.Pool{{Name: "gpu-a", Mode: "dedicated", Nodes: 1, ReadyNodes: 1, Capacity: gpus("8"), Allocatable: gpus("8"), Requested: gpus("6")}},
		TenantPools: []capacity.TenantPool{{Tenant: "a", Pool: "gpu-a", Pods: 2, Requested: gpus("6")}},
	}
	s := newServer(t, Options{CacheFor: time.Hour, Load: func(context.Context) (*capacity.Report, error) {
		loads.Add(1)
		return report, nil
	}})
	h := s.Handler()
	for range 2 {
		w := get(h, "127.0.0.1:8765", "/api/report")
		if w.Code != http.StatusOK {
			t.Fatalf("/api/report: %d %s", w.Code, w.Body)
		}
		var got Report
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Pools) != 1 || got.Pools[0].GPURequested != 6 || got.Pools[0].GPUAllocatable != 8 || got.Tenants[0].GPUUsed != 6 || got.Time.IsZero() {
			t.Errorf("/api/report: %s", w.Body)
		}
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("two requests within CacheFor read the management plane %d times, want once", n)
	}
	// A page of another site whose name resolves to 127.0.0.1 is refused.
	if w := get(h, "evil.example.com:8765", "/api/report"); w.Code != http.StatusForbidden {
		t.Errorf("a non-loopback Host: %d, want 403", w.Code)
	}
	for _, host := range []string{"localhost:8765", "[::1]:8765", "127.0.0.1"} {
		if w := get(h, host, "/api/report"); w.Code != http.StatusOK {
			t.Errorf("Host %s: %d, want 200", host, w.Code)
		}
	}
}

func TestReportError(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	s := newServer(t, Options{Load: func(context.Context) (*capacity.Report, error) {
		if fail.Load() {
			return nil, errors.New("listing nodes: connection refused")
		}
		return &capacity.Report{}, nil
	}})
	w := get(s.Handler(), "127.0.0.1", "/api/report")
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), `"error":"listing nodes: connection refused"`) {
		t.Errorf("a failed read: %d %s", w.Code, w.Body)
	}
	fail.Store(false)
	if w := get(s.Handler(), "127.0.0.1", "/api/report"); w.Code != http.StatusOK {
		t.Errorf("after the management plane is back: %d %s (a failure must not be cached)", w.Code, w.Body)
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{AllowRemote: true, Token: "s3cret", Load: fixed(&capacity.Report{})})
	h := s.Handler()
	for _, tc := range []struct {
		target string
		header []string
		want   int
	}{
		{"/api/report", nil, http.StatusUnauthorized},
		{"/api/report?token=wrong", nil, http.StatusUnauthorized},
		{"/api/report?token=s3cret", nil, http.StatusOK},
		{"/api/report", []string{"Authorization", "Bearer s3cret"}, http.StatusOK},
		{"/api/report", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized},
		{"/", nil, http.StatusOK}, // the page holds no data
	} {
		if w := get(h, "dashboard.example.com:8765", tc.target, tc.header...); w.Code != tc.want {
			t.Errorf("%s %v: %d, want %d", tc.target, tc.header, w.Code, tc.want)
		}
	}
	if u := s.URL(); !strings.HasSuffix(u, "/?token=s3cret") {
		t.Errorf("URL %s does not carry the token", u)
	}
}

func TestPage(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{Refresh: 2 * time.Second, Load: fixed(&capacity.Report{})})
	h := s.Handler()
	w := get(h, "127.0.0.1", "/")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `data-refresh-ms="2000"`) || !strings.Contains(w.Body.String(), `src="/static/app.js"`) {
		t.Errorf("the page: %d %s", w.Code, w.Body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	for path, kind := range map[string]string{"/static/app.js": "javascript", "/static/style.css": "text/css"} {
		w := get(h, "127.0.0.1", path)
		if w.Code != http.StatusOK || !strings.Contains(w.Header().Get("Content-Type"), kind) {
			t.Errorf("%s: %d %s", path, w.Code, w.Header().Get("Content-Type"))
		}
	}
	if w := get(h, "127.0.0.1", "/nothing"); w.Code != http.StatusNotFound {
		t.Errorf("/nothing: %d", w.Code)
	}
	if u := s.URL(); !strings.HasPrefix(u, "http://127.0.0.1:") || strings.Contains(u, "token") {
		t.Errorf("URL %s", u)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{Load: fixed(&capacity.Report{})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	resp, err := http.Get(s.URL() + "api/report")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %sapi/report: %d", s.URL(), resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after its context ended: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}
