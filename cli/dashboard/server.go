package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kplex/kplex/capacity"
	"github.com/kplex/kplex/cli/top"
)

// Defaults of Options.
const (
	DefaultAddress  = "127.0.0.1:8765"
	DefaultRefresh  = 5 * time.Second
	DefaultCacheFor = time.Second
	// loadTimeout bounds one read of the management plane.
	loadTimeout = 15 * time.Second
)

// ErrRemote is returned for a non-loopback address without AllowRemote.
var ErrRemote = errors.New("not a loopback address")

// Options configure a dashboard. Zero values take the defaults.
type Options struct {
	// Address is host:port to listen on (DefaultAddress); port 0 picks a
	// free one. The host must be a loopback address (127.0.0.0/8, ::1,
	// localhost) unless AllowRemote.
	Address string
	// Refresh is how often the page reloads the report (DefaultRefresh).
	Refresh time.Duration
	// AllowRemote permits any address; Token is then required.
	AllowRemote bool
	// Token, when set, must be presented to /api/ as "Authorization:
	// Bearer <token>" or ?token=<token>. Required with AllowRemote.
	Token string
	// Load reads the capacity report, with the management plane's admin
	// credentials. Required.
	Load func(context.Context) (*capacity.Report, error)
	// CacheFor is how long a report is served again before it is read
	// anew (DefaultCacheFor).
	CacheFor time.Duration
}

func (o Options) withDefaults() Options {
	if o.Address == "" {
		o.Address = DefaultAddress
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.CacheFor <= 0 {
		o.CacheFor = DefaultCacheFor
	}
	return o
}

// Validate checks the options (after defaulting), naming the flag at fault.
func (o Options) Validate() error {
	o = o.withDefaults()
	host, _, err := net.SplitHostPort(o.Address)
	if err != nil {
		return fmt.Errorf("--address %q: want host:port, e.g. %s: %w", o.Address, DefaultAddress, err)
	}
	if !o.AllowRemote && !IsLoopback(host) {
		return fmt.Errorf("--address %q is %w: the dashboard shows every tenant's usage read with the management plane's admin credentials; "+
			"listen on 127.0.0.1 and reach it through `ssh -L 8765:127.0.0.1:8765`, or pass --allow-remote (then a token is required)", o.Address, ErrRemote)
	}
	if o.AllowRemote && o.Token == "" {
		return errors.New("--allow-remote needs a token")
	}
	if o.Load == nil {
		return errors.New("dashboard: Options.Load is required")
	}
	return nil
}

// IsLoopback reports whether host (an IP or a name, without port) is this
// machine's loopback: "localhost" or a loopback IP. Other names are not
// resolved: they may name anything.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	host, _, _ = strings.Cut(host, "%") // an IPv6 zone
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewToken returns a random token for --allow-remote.
func NewToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Report is what /api/report returns: package top's rows (their JSON
// names are the contract), ordered by name, the nodes in no pool last.
type Report struct {
	// Time is when the management plane was read.
	Time    time.Time    `json:"time"`
	Pools   []top.Pool   `json:"pools"`
	Tenants []top.Tenant `json:"tenants"`
}

// Server serves the dashboard on its listener.
type Server struct {
	opts     Options
	listener net.Listener
	page     *template.Template
	static   fs.FS

	mu  sync.Mutex
	at  time.Time
	raw []byte
}

//go:embed static
var staticFiles embed.FS

// New validates opts and listens on their address; Serve serves.
func New(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	page, err := template.ParseFS(static, "index.html")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", opts.Address)
	if err != nil {
		return nil, fmt.Errorf("--address %s: %w", opts.Address, err)
	}
	return &Server{opts: opts, listener: l, page: page, static: static}, nil
}

// URL is where a browser opens the dashboard, with the token if any.
func (s *Server) URL() string {
	addr := s.listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, fmt.Sprint(addr.Port)), Path: "/"}
	if s.opts.Token != "" {
		u.RawQuery = url.Values{"token": {s.opts.Token}}.Encode()
	}
	return u.String()
}

// Serve serves until ctx ends, then shuts down (letting requests in
// flight finish for up to 5 s) and returns nil; it returns an error if
// serving fails.
func (s *Server) Serve(ctx context.Context) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(s.listener) }()
	select {
	case err := <-errs:
		return fmt.Errorf("serving the dashboard: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	return nil
}

// Handler is the dashboard's HTTP handler: the page at /, its script and
// style under /static/, and the report at /api/report.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.servePage)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(s.static)))
	mux.Handle("GET /api/report", s.authorized(http.HandlerFunc(s.serveReport)))
	return s.guard(mux)
}

// guard sets headers every response carries and, on loopback, refuses a
// Host that is not loopback: a page of another site that rebinds its DNS
// name to 127.0.0.1 must not read the report.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if !s.opts.AllowRemote {
			host := r.Host
			if hh, _, err := net.SplitHostPort(host); err == nil {
				host = hh
			}
			if !IsLoopback(strings.Trim(host, "[]")) {
				http.Error(w, "the kplex dashboard answers only to a loopback Host (127.0.0.1, localhost, [::1])", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// authorized requires the token, if there is one.
func (s *Server) authorized(next http.Handler) http.Handler {
	if s.opts.Token == "" {
		return next
	}
	want := []byte(s.opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.URL.Query().Get("token")
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = bearer
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a token is required: open the URL `kplex dashboard` printed"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) servePage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = s.page.Execute(w, struct{ RefreshMillis, RefreshSeconds int64 }{
		s.opts.Refresh.Milliseconds(), int64(s.opts.Refresh.Round(time.Second) / time.Second),
	})
}

func (s *Server) serveReport(w http.ResponseWriter, r *http.Request) {
	raw, err := s.report(r.Context())
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(raw)
}

// report returns the report as JSON, read anew when the cached one is
// older than CacheFor. Concurrent requests wait for one read; a failed
// read is not cached.
func (s *Server) report(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.raw != nil && time.Since(s.at) < s.opts.CacheFor {
		return s.raw, nil
	}
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	r, err := s.opts.Load(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	raw, err := json.Marshal(Report{Time: now.UTC(), Pools: top.Pools(r, top.SortName), Tenants: top.Tenants(r, top.SortName)})
	if err != nil {
		return nil, err
	}
	s.at, s.raw = now, raw
	return raw, nil
}

// Close stops listening; for a Server whose Serve is never called.
func (s *Server) Close() error { return s.listener.Close() }

// Prime reads the report once, so that a dashboard that cannot read the
// management plane fails at start rather than in the browser.
func (s *Server) Prime(ctx context.Context) error {
	_, err := s.report(ctx)
	return err
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
