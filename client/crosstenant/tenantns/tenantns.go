// Package tenantns shows every tenant's namespaced objects to a component
// written for one cluster (the node lifecycle controllers, the scheduler)
// as one cluster's: a tenant's namespace ns is shown as tenant~ns, so
// that same-named objects of two tenants stay two objects, and the
// component's writes are routed back to the object's tenant.
package tenantns

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

// sep joins a tenant's name and a namespace's: neither may hold a "~".
const sep = "~"

// Join is the namespace shown for tenant t's namespace ns.
func Join(t, ns string) string { return t + sep + ns }

// Split undoes Join; ok is false for a namespace that is not joined.
func Split(joined string) (t, ns string, ok bool) {
	return strings.Cut(joined, sep)
}

// Transform is the transform of a cross-tenant informer: it joins the
// namespace of a tenant's object, or the name of a tenant's Namespace,
// with the tenant's name.
func Transform(obj any) (any, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		o, err := Transform(d.Obj)
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
	if _, ok := obj.(*corev1.Namespace); ok {
		if !strings.Contains(m.GetName(), sep) {
			m.SetName(Join(t, m.GetName()))
		}
		return obj, nil
	}
	if ns := m.GetNamespace(); ns != "" && !strings.Contains(ns, sep) {
		m.SetNamespace(Join(t, ns))
	}
	return obj, nil
}

// Router returns a transport that sends a request for a joined namespace
// to its tenant's path, with the namespace in the JSON body (metadata, an
// event's involved object) named back; anything else (nodes, leases,
// root's events) goes to root unchanged. The client must send and accept
// JSON.
func Router(next http.RoundTripper) http.RoundTripper { return router{next: next} }

type router struct{ next http.RoundTripper }

const namespacesSegment = "/namespaces/"

func (r router) RoundTrip(req *http.Request) (*http.Response, error) {
	i := strings.Index(req.URL.Path, namespacesSegment)
	if i < 0 {
		return r.next.RoundTrip(req)
	}
	head, rest := req.URL.Path[:i], req.URL.Path[i+len(namespacesSegment):]
	renamed, tail, _ := strings.Cut(rest, "/")
	t, ns, ok := Split(renamed)
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
