package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
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
	// MinTokenLength is the shortest Token accepted: a short one could be
	// guessed by anything that can reach the port.
	MinTokenLength = 16
	// tokenParam is the query parameter of the printed URL.
	tokenParam = "token"
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
	// AllowRemote permits any address.
	AllowRemote bool
	// Token must be presented with every request: as "Authorization:
	// Bearer <token>", or as the cookie a browser gets for ?token=<token>.
	// Required, at least MinTokenLength characters: even on loopback,
	// other processes of the host (a tenant's hostNetwork pod among them)
	// reach the listener.
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
			"listen on 127.0.0.1 and reach it through `ssh -L 8765:127.0.0.1:8765`, or pass --allow-remote (plain HTTP, behind the same token)", o.Address, ErrRemote)
	}
	if err := validToken(o.Token); err != nil {
		return fmt.Errorf("the dashboard's token ($%s; unset, a random one is made): %w", TokenEnv, err)
	}
	if o.Load == nil {
		return errors.New("dashboard: Options.Load is required")
	}
	return nil
}

// validToken checks that token is long enough not to be guessed, and
// travels unchanged in a URL's query and in a cookie.
func validToken(token string) error {
	if len(token) < MinTokenLength {
		return fmt.Errorf("want at least %d characters, got %d", MinTokenLength, len(token))
	}
	for _, c := range token {
		if !strings.ContainsRune(tokenChars, c) {
			return fmt.Errorf("want only letters, digits and %q, got %q", "-._~", c)
		}
	}
	return nil
}

// tokenChars are URL's unreserved characters, all valid in a cookie.
const tokenChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

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

// NewToken returns a random token (192 bits, hex).
func NewToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making the dashboard's token: %w", err)
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
	// tokenSum is the token's SHA-256: comparing fixed-size sums keeps
	// the comparison's time independent of the token presented.
	tokenSum [sha256.Size]byte

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
	return &Server{opts: opts, listener: l, page: page, static: static, tokenSum: sha256.Sum256([]byte(opts.Token))}, nil
}

// URL is where a browser opens the dashboard, with the token.
func (s *Server) URL() string {
	addr := s.listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, fmt.Sprint(addr.Port)), Path: "/"}
	u.RawQuery = url.Values{tokenParam: {s.opts.Token}}.Encode()
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
// style under /static/, and the report at /api/report, all behind the
// token.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.servePage)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(s.static)))
	mux.HandleFunc("GET /api/report", s.serveReport)
	return s.guard(s.authorized(mux))
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

// authorized lets through requests that carry the token: as a bearer
// token (scripts), or as the cookie the browser got when it opened the
// printed URL. A request with a right ?token= gets that cookie and is
// sent to the same URL without it, so that the token leaves the address
// bar and the history.
func (s *Server) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			s.admit(w, r, next, s.valid(bearer))
			return
		}
		if q := r.URL.Query(); q.Has(tokenParam) {
			if !s.valid(q.Get(tokenParam)) {
				s.refuse(w, r)
				return
			}
			s.setCookie(w)
			redirectWithout(w, r, tokenParam)
			return
		}
		c, err := r.Cookie(s.cookieName())
		s.admit(w, r, next, err == nil && s.valid(c.Value))
	})
}

func (s *Server) admit(w http.ResponseWriter, r *http.Request, next http.Handler, ok bool) {
	if !ok {
		s.refuse(w, r)
		return
	}
	next.ServeHTTP(w, r)
}

// valid compares token with the dashboard's in constant time.
func (s *Server) valid(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// unauthorized is the message of a 401.
const unauthorized = "the kplex dashboard requires its token: open the URL `kplex dashboard` printed (…/?token=…), " +
	"or send \"Authorization: Bearer <token>\""

// refuse answers 401, as JSON under /api/ (the page shows its error) and
// as text elsewhere (a person opened a URL without the token).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="kplex dashboard"`)
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": unauthorized})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, unauthorized, http.StatusUnauthorized)
}

// cookieName is per port: cookies do not tell ports apart, and two
// dashboards on one host must not overwrite each other's.
func (s *Server) cookieName() string {
	return fmt.Sprintf("kplex-dashboard-%d", s.listener.Addr().(*net.TCPAddr).Port)
}

// setCookie gives the browser the token for the session: HttpOnly, so the
// page's script never holds it; SameSite=Strict, so another site's page
// cannot make the browser send it.
func (s *Server) setCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: s.opts.Token, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// redirectWithout sends the client to r's URL without the query
// parameter param, on this server: a path of "//host" would leave it.
func redirectWithout(w http.ResponseWriter, r *http.Request, param string) {
	u := url.URL{Path: "/" + strings.TrimLeft(r.URL.Path, "/")}
	q := r.URL.Query()
	q.Del(param)
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
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
