package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
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

// testToken is the token of the tests' dashboards.
const testToken = "test-token-0123456789"

func TestValidate(t *testing.T) {
	t.Parallel()
	load := fixed(&capacity.Report{})
	for _, tc := range []struct {
		opts Options
		want string // "" for valid; else a part of the error
	}{
		{Options{Token: testToken}, ""},
		{Options{Address: "127.0.0.1:0", Token: testToken}, ""},
		{Options{Address: "127.1.2.3:8765", Token: testToken}, ""},
		{Options{Address: "localhost:8765", Token: testToken}, ""},
		{Options{Address: "[::1]:0", Token: testToken}, ""},
		{Options{Address: "0.0.0.0:8765", Token: testToken}, "--allow-remote"},
		{Options{Address: ":8765", Token: testToken}, "not a loopback address"},
		{Options{Address: "10.0.0.1:80", Token: testToken}, "not a loopback address"},
		{Options{Address: "dashboard.example.com:80", Token: testToken}, "not a loopback address"},
		{Options{Address: "8765", Token: testToken}, "--address"},
		{Options{Address: "0.0.0.0:8765", AllowRemote: true, Token: testToken}, ""},
		// A token is required on loopback as elsewhere.
		{Options{}, "at least 16 characters"},
		{Options{Address: "0.0.0.0:8765", AllowRemote: true}, "token"},
		{Options{Token: "s3cret"}, "at least 16 characters"},
		{Options{Token: "0123456789abcdef;x=1"}, `got ';'`},
		{Options{Token: "0123456789 abcdef"}, `got ' '`},
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
	if err := (Options{Address: "0.0.0.0:1", Token: testToken, Load: load}).Validate(); !errors.Is(err, ErrRemote) {
		t.Errorf("0.0.0.0: %v, want ErrRemote", err)
	}
}

func gpus(n string) corev1.ResourceList {
	return corev1.ResourceList{capacity.GPU: resource.MustParse(n)}
}

// newServer makes a dashboard on a free loopback port, with testToken
// unless opts say otherwise.
func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Address == "" {
		opts.Address = "127.0.0.1:0"
	}
	if opts.Token == "" {
		opts.Token = testToken
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// bearer is the header of a request that carries testToken.
var bearer = []string{"Authorization", "Bearer " + testToken}

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
		w := get(h, "127.0.0.1:8765", "/api/report", bearer...)
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
	if w := get(h, "evil.example.com:8765", "/api/report", bearer...); w.Code != http.StatusForbidden {
		t.Errorf("a non-loopback Host: %d, want 403", w.Code)
	}
	for _, host := range []string{"localhost:8765", "[::1]:8765", "127.0.0.1"} {
		if w := get(h, host, "/api/report", bearer...); w.Code != http.StatusOK {
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
	w := get(s.Handler(), "127.0.0.1", "/api/report", bearer...)
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), `"error":"listing nodes: connection refused"`) {
		t.Errorf("a failed read: %d %s", w.Code, w.Body)
	}
	fail.Store(false)
	if w := get(s.Handler(), "127.0.0.1", "/api/report", bearer...); w.Code != http.StatusOK {
		t.Errorf("after the management plane is back: %d %s (a failure must not be cached)", w.Code, w.Body)
	}
}

// Every path needs the token, on loopback as with --allow-remote: no
// token, a wrong one (bearer, query or cookie) is 401 with a message that
// says what to do.
func TestTokenRequired(t *testing.T) {
	t.Parallel()
	for _, opts := range []Options{{}, {Address: "0.0.0.0:0", AllowRemote: true}} {
		opts.Load = fixed(&capacity.Report{})
		s := newServer(t, opts)
		h := s.Handler()
		wrongCookie := []string{"Cookie", s.cookieName() + "=wrong-token-0123456789"}
		otherPort := []string{"Cookie", "kplex-dashboard-1=" + testToken}
		for _, target := range []string{"/", "/api/report", "/static/app.js"} {
			for _, tc := range []struct {
				what   string
				query  string
				header []string
			}{
				{"no token", "", nil},
				{"a wrong bearer token", "", []string{"Authorization", "Bearer wrong-token-0123456789"}},
				{"the token, not as a bearer", "", []string{"Authorization", testToken}},
				{"a wrong query token", "?token=wrong-token-0123456789", nil},
				{"an empty query token", "?token=", nil},
				{"a wrong cookie", "", wrongCookie},
				{"the cookie of another port", "", otherPort},
			} {
				w := get(h, "127.0.0.1:8765", target+tc.query, tc.header...)
				if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "requires its token: open the URL `kplex dashboard` printed") {
					t.Errorf("allow-remote %v: %s with %s: %d %s, want 401 saying to open the printed URL", opts.AllowRemote, target, tc.what, w.Code, w.Body)
				}
				if got := w.Header().Get("Set-Cookie"); got != "" {
					t.Errorf("%s with %s set a cookie: %s", target, tc.what, got)
				}
			}
		}
		if w := get(h, "127.0.0.1", "/api/report"); !strings.Contains(w.Header().Get("Content-Type"), "json") || !strings.Contains(w.Body.String(), `"error":`) {
			t.Errorf("/api/report without a token: %s %s, want a JSON error the page shows", w.Header().Get("Content-Type"), w.Body)
		}
	}
}

// The printed URL's token is traded for an HttpOnly, SameSite=Strict
// cookie and a redirect that drops it from the URL; the cookie, or the
// token as a bearer token, then opens every path.
func TestTokenAccepted(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{Load: fixed(&capacity.Report{})})
	h := s.Handler()
	u, err := url.Parse(s.URL())
	if err != nil || u.Query().Get("token") != testToken || u.Path != "/" {
		t.Fatalf("URL %s does not carry the token: %v", s.URL(), err)
	}
	w := get(h, "127.0.0.1", u.RequestURI())
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("%s: %d Location %q, want 303 to /", u.RequestURI(), w.Code, w.Header().Get("Location"))
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("%s set cookies %v, want one", u.RequestURI(), cookies)
	}
	c := cookies[0]
	if c.Name != s.cookieName() || c.Value != testToken || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Errorf("the cookie %s, want %s=<token>, HttpOnly, SameSite=Strict, Path=/", c, s.cookieName())
	}
	cookie := []string{"Cookie", c.Name + "=" + c.Value}
	for _, target := range []string{"/", "/api/report", "/static/app.js", "/static/style.css"} {
		for what, header := range map[string][]string{"the cookie": cookie, "a bearer token": bearer} {
			if w := get(h, "127.0.0.1", target, header...); w.Code != http.StatusOK {
				t.Errorf("%s with %s: %d %s, want 200", target, what, w.Code, w.Body)
			}
		}
	}
	// Other parameters stay; the token goes; the redirect stays on this
	// server whatever the path.
	for target, want := range map[string]string{
		"/api/report?token=" + testToken + "&x=1": "/api/report?x=1",
		"//evil.example.com/?token=" + testToken:  "/evil.example.com/",
	} {
		if w := get(h, "127.0.0.1", target); w.Code != http.StatusSeeOther || w.Header().Get("Location") != want {
			t.Errorf("%s: %d Location %q, want 303 to %s", target, w.Code, w.Header().Get("Location"), want)
		}
	}
}

func TestPage(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{Refresh: 2 * time.Second, Load: fixed(&capacity.Report{})})
	h := s.Handler()
	w := get(h, "127.0.0.1", "/", bearer...)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `data-refresh-ms="2000"`) || !strings.Contains(w.Body.String(), `src="/static/app.js"`) {
		t.Errorf("the page: %d %s", w.Code, w.Body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	for path, kind := range map[string]string{"/static/app.js": "javascript", "/static/style.css": "text/css"} {
		w := get(h, "127.0.0.1", path, bearer...)
		if w.Code != http.StatusOK || !strings.Contains(w.Header().Get("Content-Type"), kind) {
			t.Errorf("%s: %d %s", path, w.Code, w.Header().Get("Content-Type"))
		}
	}
	if w := get(h, "127.0.0.1", "/nothing", bearer...); w.Code != http.StatusNotFound {
		t.Errorf("/nothing: %d", w.Code)
	}
	if u := s.URL(); !strings.HasPrefix(u, "http://127.0.0.1:") || !strings.HasSuffix(u, "/?token="+testToken) {
		t.Errorf("URL %s", u)
	}
}

// Served for real: a client with a cookie jar, as a browser, opens the
// printed URL and then reads the report with the cookie alone; without
// it the report is refused. Serve returns once its context ends.
func TestServeWithBrowserCookie(t *testing.T) {
	t.Parallel()
	s := newServer(t, Options{Load: fixed(&capacity.Report{})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := browser.Get(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.RawQuery != "" {
		t.Errorf("GET %s: %d at %s, want 200 at the URL without the token", s.URL(), resp.StatusCode, resp.Request.URL)
	}
	base := strings.TrimSuffix(s.URL(), "?token="+testToken)
	for client, want := range map[*http.Client]int{browser: http.StatusOK, {Timeout: 10 * time.Second}: http.StatusUnauthorized} {
		resp, err := client.Get(base + "api/report")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %sapi/report (cookie jar %v): %d, want %d", base, client.Jar != nil, resp.StatusCode, want)
		}
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
