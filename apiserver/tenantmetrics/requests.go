package tenantmetrics

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"

	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/endpoints/responsewriter"

	"github.com/kplex/kplex/metrics/bounded"
	"github.com/kplex/kplex/tenant"
)

// verbs are the verb label's values: RequestInfo's verbs for resource
// requests, the lowercased HTTP method for others. Anything else a client
// sends is "other", so that no client makes series.
var verbs = map[string]bool{
	"get": true, "list": true, "watch": true, "create": true, "update": true, "patch": true,
	"delete": true, "deletecollection": true, "proxy": true,
	"post": true, "put": true, "head": true, "options": true,
}

// WithRequests counts every request next answers in
// kplex_apiserver_tenant_requests_total. It goes right inside
// routing.WithTenant, outside authentication, so that refusals (401, 403,
// 404 for an unknown tenant, 429) count too: the verb is resolved here,
// from the path WithTenant left. serving tells the names that are tenants;
// requests for other names count as tenant="_unknown".
func WithRequests(next http.Handler, resolver request.RequestInfoResolver, serving func(name string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name := tenantLabel(tenant.FromContext(req.Context()), serving)
		verb := verbOf(req, resolver)
		rec := &recorder{ResponseWriter: w}
		answered := false
		defer func() {
			// A handler that panics (a timeout aborting the request)
			// answered 500 if it wrote nothing.
			if !answered && rec.code == 0 {
				rec.code = http.StatusInternalServerError
			}
			requests.Inc(name, verb, rec.label())
		}()
		next.ServeHTTP(responsewriter.WrapForHTTP1Or2(rec), req)
		answered = true
	})
}

func tenantLabel(name string, serving func(string) bool) string {
	switch {
	case name == tenant.Root || name == tenant.Wildcard:
		return name
	case name != "" && serving != nil && serving(name):
		return name
	}
	return bounded.Unknown
}

func verbOf(req *http.Request, resolver request.RequestInfoResolver) string {
	verb := strings.ToLower(req.Method)
	if resolver != nil {
		if info, err := resolver.NewRequestInfo(req); err == nil && info.Verb != "" {
			verb = info.Verb
		}
	}
	if !verbs[verb] {
		return "other"
	}
	return verb
}

// recorder remembers the status code of the response.
type recorder struct {
	http.ResponseWriter
	code int
}

var _ responsewriter.UserProvidedDecorator = &recorder{}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Hijack is reached only over HTTP/1 (WrapForHTTP1Or2): an upgraded
// connection (exec, attach, port-forward) answered 101.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if r.code == 0 {
		r.code = http.StatusSwitchingProtocols
	}
	return r.ResponseWriter.(http.Hijacker).Hijack()
}

func (r *recorder) label() string {
	switch {
	case r.code == 0:
		return "200" // nothing written: net/http answers 200
	case r.code < 100 || r.code > 599:
		return "other"
	}
	return strconv.Itoa(r.code)
}
