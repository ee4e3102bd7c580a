package nodelifecycle

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

// The node controllers work on every tenant's pods at once, through one
// informer: a tenant's namespace ns is shown to them as tenant~ns (neither
// a tenant nor a namespace name may hold a "~"), so that same-named pods
// of two tenants stay two pods, and their writes are routed back to the
// pod's tenant by the client's transport.
const sep = "~"

// Renamed is the namespace the node controllers see for tenant t's ns.
func Renamed(t, ns string) string { return t + sep + ns }

// split undoes Renamed.
func split(renamed string) (t, ns string, ok bool) {
	return strings.Cut(renamed, sep)
}

// rename is the transform of the cross-tenant informers: it renames the
// namespace of a tenant's object.
func rename(obj any) (any, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		o, err := rename(d.Obj)
		return cache.DeletedFinalStateUnknown{Key: d.Key, Obj: o}, err
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	t := crosstenant.TenantOf(m)
	if t == "" {
		return nil, fmt.Errorf("%T %s/%s carries no tenant identity", obj, m.GetNamespace(), m.GetName())
	}
	if ns := m.GetNamespace(); ns != "" && !strings.Contains(ns, sep) {
		m.SetNamespace(Renamed(t, ns))
	}
	return obj, nil
}

// router sends a request for a renamed namespace to its tenant's path,
// with the namespace in the JSON body (metadata, an event's involved
// object) named back; anything else (nodes, leases, root's events) goes
// to root unchanged.
type router struct{ next http.RoundTripper }

const namespacesSegment = "/namespaces/"

func (r router) RoundTrip(req *http.Request) (*http.Response, error) {
	i := strings.Index(req.URL.Path, namespacesSegment)
	if i < 0 {
		return r.next.RoundTrip(req)
	}
	head, rest := req.URL.Path[:i], req.URL.Path[i+len(namespacesSegment):]
	renamed, tail, _ := strings.Cut(rest, "/")
	t, ns, ok := split(renamed)
	if !ok {
		return r.next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.URL.Path = tenant.Path(t) + head + namespacesSegment + ns
	if tail != "" {
		out.URL.Path += "/" + tail
	}
	out.URL.RawPath = ""
	if req.Body != nil && req.Body != http.NoBody {
		body, err := renameIn(req.Body, renamed, ns)
		if err != nil {
			return nil, err
		}
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	resp, err := r.next.RoundTrip(out)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	// Name the namespace back in the answer too, for what the controller
	// keeps of it.
	body, err := renameIn(resp.Body, ns, renamed)
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// renameIn reads and closes a JSON body, naming namespace from as to.
func renameIn(body io.ReadCloser, from, to string) ([]byte, error) {
	b, err := io.ReadAll(body)
	_ = body.Close()
	if err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(b, []byte(`"namespace":"`+from+`"`), []byte(`"namespace":"`+to+`"`)), nil
}
