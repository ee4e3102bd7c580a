package tenantns

import (
	"io"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplex/kplex/tenant"
)

type recorder struct {
	path, body string
	answer     string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.path = req.URL.Path
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		r.body = string(b)
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(r.answer))}, nil
}

func TestRouterSendsRenamedNamespacesToTheirTenant(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method, path, body, answer string
		wantPath, wantBody         string
		wantAnswer                 string
	}{
		{"PUT", "/api/v1/namespaces/a~default/pods/p/status", `{"metadata":{"name":"p","namespace":"a~default"}}`, `{"metadata":{"name":"p","namespace":"default"}}`,
			"/clusters/a/api/v1/namespaces/default/pods/p/status", `{"metadata":{"name":"p","namespace":"default"}}`, `{"metadata":{"name":"p","namespace":"a~default"}}`},
		{"POST", "/api/v1/namespaces/b~x/events", `{"metadata":{"namespace":"b~x"},"involvedObject":{"namespace":"b~x","name":"p"}}`, `{}`,
			"/clusters/b/api/v1/namespaces/x/events", `{"metadata":{"namespace":"x"},"involvedObject":{"namespace":"x","name":"p"}}`, `{}`},
		{"DELETE", "/api/v1/namespaces/a~default/pods/p", "", `{}`, "/clusters/a/api/v1/namespaces/default/pods/p", "", `{}`},
		// Root's: nodes and leases, and events in root's own namespaces.
		{"PUT", "/api/v1/nodes/n1/status", `{"metadata":{"name":"n1"}}`, `{}`, "/api/v1/nodes/n1/status", `{"metadata":{"name":"n1"}}`, `{}`},
		{"POST", "/api/v1/namespaces/default/events", `{"metadata":{"namespace":"default"}}`, `{}`, "/api/v1/namespaces/default/events", `{"metadata":{"namespace":"default"}}`, `{}`},
	} {
		rec := &recorder{answer: tc.answer}
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req, err := http.NewRequest(tc.method, "https://127.0.0.1:6443"+tc.path, body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := Router(rec).RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		if rec.path != tc.wantPath || rec.body != tc.wantBody || string(answer) != tc.wantAnswer {
			t.Errorf("%s %s: sent %s %s, answered %s; want %s %s, %s", tc.method, tc.path, rec.path, rec.body, answer, tc.wantPath, tc.wantBody, tc.wantAnswer)
		}
	}
}

func TestRenameKeepsTenantsApart(t *testing.T) {
	t.Parallel()
	pod := func(t string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", Annotations: map[string]string{tenant.Annotation: t}}}
	}
	a, _ := Transform(pod("a"))
	b, _ := Transform(pod("b"))
	if a.(*corev1.Pod).Namespace != "a~default" || b.(*corev1.Pod).Namespace != "b~default" {
		t.Errorf("renamed to %s and %s", a.(*corev1.Pod).Namespace, b.(*corev1.Pod).Namespace)
	}
	if _, err := Transform(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p"}}); err == nil {
		t.Error("an object without a tenant was renamed")
	}
}
