package nodeauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	genericrequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/endpoints/responsewriter"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/tenant"
)

// WithPodProjection serves a node's list and watch of pods across tenants
// as a projection: what a data plane routes and enforces policy by (the
// pod's identity, labels, node, host network, container ports, phase and
// addresses), never its images, commands, environment, volumes or
// annotations. A node reads its own pods whole by selecting
// spec.nodeName=<itself>, as a kubelet does. next must run after
// authentication and request info.
//
// The projection is of the response, not of storage: the watch cache above
// the tenants' storage serves every reader, so only the reply knows who
// asked.
func WithPodProjection(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !projected(req) {
			next.ServeHTTP(w, req)
			return
		}
		// JSON, uncompressed, whatever the node asked for: the projection
		// reads what it writes.
		req.Header.Set("Accept", "application/json")
		req.Header.Del("Accept-Encoding")
		p := &projectingWriter{inner: w}
		next.ServeHTTP(responsewriter.WrapForHTTP1Or2(p), req)
	})
}

// projected reports whether req is a node's list or watch of pods across
// tenants that does not select the node's own pods.
func projected(req *http.Request) bool {
	ctx := req.Context()
	u, ok := genericrequest.UserFrom(ctx)
	if !ok {
		return false
	}
	node, ok := NodeName(u)
	if !ok || tenant.FromContext(ctx) != tenant.Wildcard {
		return false
	}
	info, ok := genericrequest.RequestInfoFrom(ctx)
	if !ok || !info.IsResourceRequest || info.APIGroup != "" || info.Resource != "pods" || info.Subresource != "" ||
		(info.Verb != "list" && info.Verb != "watch") {
		return false
	}
	return !selectsNode(req.URL.Query().Get("fieldSelector"), node)
}

// selectsNode reports whether a field selector keeps only node's pods.
func selectsNode(selector, node string) bool {
	s, err := fields.ParseSelector(selector)
	if err != nil {
		return false
	}
	value, found := s.RequiresExactMatch("spec.nodeName")
	return found && value == node
}

// projectingWriter rewrites each JSON value the handler writes (a PodList,
// or a watch event per value) as it completes, and passes anything that is
// not JSON through.
type projectingWriter struct {
	inner       http.ResponseWriter
	wroteHeader bool
	passThrough bool
	scan        valueScanner
}

func (p *projectingWriter) Unwrap() http.ResponseWriter { return p.inner }

func (p *projectingWriter) Header() http.Header { return p.inner.Header() }

func (p *projectingWriter) WriteHeader(code int) {
	if p.wroteHeader {
		return
	}
	p.wroteHeader = true
	media, _, _ := mime.ParseMediaType(p.inner.Header().Get("Content-Type"))
	p.passThrough = media != "application/json"
	if !p.passThrough {
		p.inner.Header().Del("Content-Length") // the projection is shorter
	}
	p.inner.WriteHeader(code)
}

func (p *projectingWriter) Write(b []byte) (int, error) {
	if !p.wroteHeader {
		p.WriteHeader(http.StatusOK)
	}
	if p.passThrough {
		return p.inner.Write(b)
	}
	for _, value := range p.scan.feed(b) {
		out, err := projectValue(value)
		if err != nil {
			// Never pass on what could not be projected.
			klog.ErrorS(err, "Dropping a value of a node's pod list or watch that could not be projected")
			continue
		}
		if _, err := p.inner.Write(append(out, '\n')); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

func (p *projectingWriter) Flush() {
	if f, ok := p.inner.(http.Flusher); ok {
		f.Flush()
	}
}

// valueScanner splits a stream of JSON objects into whole values, across
// writes, by tracking nesting outside strings.
type valueScanner struct {
	buf           []byte
	pos, depth    int
	inString, esc bool
}

func (s *valueScanner) feed(b []byte) [][]byte {
	s.buf = append(s.buf, b...)
	var values [][]byte
	start := 0
	for ; s.pos < len(s.buf); s.pos++ {
		c := s.buf[s.pos]
		switch {
		case s.inString && s.esc:
			s.esc = false
		case s.inString && c == '\\':
			s.esc = true
		case s.inString && c == '"':
			s.inString = false
		case s.inString:
		case c == '"':
			s.inString = true
		case c == '{' || c == '[':
			s.depth++
		case c == '}' || c == ']':
			s.depth--
			if s.depth == 0 {
				values = append(values, bytes.Clone(bytes.TrimSpace(s.buf[start:s.pos+1])))
				start = s.pos + 1
			}
		}
	}
	if start > 0 {
		rest := copy(s.buf, s.buf[start:])
		s.buf = s.buf[:rest]
		s.pos -= start
	}
	return values
}

// projectValue projects a PodList's items, or a watch event's pod; a
// Status passes unchanged, and anything else is refused.
func projectValue(value []byte) ([]byte, error) {
	var v map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var kind string
	_ = json.Unmarshal(v["kind"], &kind)
	switch {
	case kind == "PodList":
		var items []json.RawMessage
		if err := json.Unmarshal(v["items"], &items); err != nil {
			return nil, err
		}
		for i, item := range items {
			out, err := projectPod(item)
			if err != nil {
				return nil, err
			}
			items[i] = out
		}
		raw, err := json.Marshal(items)
		if err != nil {
			return nil, err
		}
		v["items"] = raw
	case v["type"] != nil && v["object"] != nil:
		var object struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(v["object"], &object); err != nil {
			return nil, err
		}
		if object.Kind == "Status" {
			return value, nil
		}
		out, err := projectPod(v["object"])
		if err != nil {
			return nil, err
		}
		v["object"] = out
	case kind == "Status":
		return value, nil
	default:
		return nil, fmt.Errorf("a reply to a node's pod list or watch holds a %q, neither pods nor a Status", kind)
	}
	return json.Marshal(v)
}

// podProjection is what a node's data plane reads of another node's pod.
type podProjection struct {
	APIVersion string            `json:"apiVersion,omitempty"`
	Kind       string            `json:"kind,omitempty"`
	Metadata   projectedMeta     `json:"metadata"`
	Spec       projectedPodSpec  `json:"spec"`
	Status     projectedPodState `json:"status"`
}

type projectedMeta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	CreationTimestamp *metav1.Time      `json:"creationTimestamp,omitempty"`
	DeletionTimestamp *metav1.Time      `json:"deletionTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

type projectedPodSpec struct {
	NodeName       string               `json:"nodeName,omitempty"`
	HostNetwork    bool                 `json:"hostNetwork,omitempty"`
	InitContainers []projectedContainer `json:"initContainers,omitempty"`
	Containers     []projectedContainer `json:"containers"`
}

type projectedContainer struct {
	Name          string          `json:"name"`
	Ports         json.RawMessage `json:"ports,omitempty"`
	RestartPolicy string          `json:"restartPolicy,omitempty"`
}

type projectedPodState struct {
	Phase   string          `json:"phase,omitempty"`
	HostIP  string          `json:"hostIP,omitempty"`
	HostIPs json.RawMessage `json:"hostIPs,omitempty"`
	PodIP   string          `json:"podIP,omitempty"`
	PodIPs  json.RawMessage `json:"podIPs,omitempty"`
}

// keptAnnotations are the annotations a projection keeps: the tenant's
// identity, and a watch bookmark's marker.
var keptAnnotations = []string{tenant.Annotation, metav1.InitialEventsAnnotationKey}

func projectPod(raw json.RawMessage) (json.RawMessage, error) {
	var p podProjection
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	annotations := p.Metadata.Annotations
	p.Metadata.Annotations = nil
	for _, k := range keptAnnotations {
		if v, ok := annotations[k]; ok {
			if p.Metadata.Annotations == nil {
				p.Metadata.Annotations = map[string]string{}
			}
			p.Metadata.Annotations[k] = v
		}
	}
	return json.Marshal(p)
}
