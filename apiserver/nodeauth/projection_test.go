package nodeauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/user"
	genericrequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/kplex/kplex/tenant"
)

func secretPod(name, node string) corev1.Pod {
	return corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{tenant.Annotation: "acme", "kubectl.kubernetes.io/last-applied-configuration": `{"env":"PASSWORD=hunter2"}`}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name: "c", Image: "registry.acme/secret-image", Command: []string{"serve", "--token=hunter2"},
			Env:   []corev1.EnvVar{{Name: "PASSWORD", Value: "hunter2"}},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7", PodIPs: []corev1.PodIP{{IP: "10.0.0.7"}}},
	}
}

// serve runs WithPodProjection over a handler that writes body in chunks
// of size chunk, as user u asking for query on tenant t's pods.
func serve(t *testing.T, u user.Info, tenantName, verb, query string, body []byte, chunk int) (*httptest.ResponseRecorder, *http.Request) {
	t.Helper()
	var seen *http.Request
	h := WithPodProjection(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		seen = req
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "1")
		w.WriteHeader(http.StatusOK)
		for len(body) > 0 {
			n := min(chunk, len(body))
			if _, err := w.Write(body[:n]); err != nil {
				t.Fatal(err)
			}
			w.(http.Flusher).Flush()
			body = body[n:]
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/api/v1/pods?"+query, nil)
	req.Header.Set("Accept", "application/vnd.kubernetes.protobuf")
	req.Header.Set("Accept-Encoding", "gzip")
	ctx := genericrequest.WithUser(req.Context(), u)
	ctx = genericrequest.WithRequestInfo(ctx, &genericrequest.RequestInfo{IsResourceRequest: true, Verb: verb, APIVersion: "v1", Resource: "pods"})
	ctx = tenant.WithTenant(ctx, tenantName)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(ctx))
	return rec, seen
}

var node1 = &user.DefaultInfo{Name: "system:node:n1", Groups: []string{user.NodesGroup}}

func assertProjected(t *testing.T, what string, p corev1.Pod) {
	t.Helper()
	if p.Name == "" || p.Labels["app"] != "web" || p.Annotations[tenant.Annotation] != "acme" || p.Status.PodIP != "10.0.0.7" ||
		len(p.Spec.Containers) != 1 || len(p.Spec.Containers[0].Ports) != 1 || p.Spec.Containers[0].Ports[0].ContainerPort != 8080 {
		t.Errorf("%s: lost what the data plane needs: %+v", what, p)
	}
	if c := p.Spec.Containers[0]; c.Image != "" || len(c.Command) != 0 || len(c.Env) != 0 || len(p.Annotations) != 1 {
		t.Errorf("%s: kept what a node of another pod must not read: %+v", what, p)
	}
}

func TestAnotherNodesPodsAreListedAsAProjection(t *testing.T) {
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, ListMeta: metav1.ListMeta{ResourceVersion: "42"},
		Items: []corev1.Pod{secretPod("a", "n2"), secretPod("b", "n1")}}
	body, _ := json.Marshal(list)
	for _, chunk := range []int{1, 7, len(body)} {
		rec, seen := serve(t, node1, tenant.Wildcard, "list", "", body, chunk)
		if seen.Header.Get("Accept") != "application/json" || seen.Header.Get("Accept-Encoding") != "" {
			t.Errorf("the handler was asked for %q, %q; want uncompressed JSON", seen.Header.Get("Accept"), seen.Header.Get("Accept-Encoding"))
		}
		if rec.Header().Get("Content-Length") != "" {
			t.Errorf("the projection kept the whole list's Content-Length")
		}
		if strings.Contains(rec.Body.String(), "hunter2") {
			t.Fatalf("chunks of %d: a secret got through: %s", chunk, rec.Body)
		}
		var got corev1.PodList
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("chunks of %d: %v: %s", chunk, err, rec.Body)
		}
		if got.ResourceVersion != "42" || len(got.Items) != 2 {
			t.Fatalf("chunks of %d: got %+v", chunk, got)
		}
		for _, p := range got.Items {
			assertProjected(t, "listed "+p.Name, p)
		}
	}
}

func TestAWatchIsProjectedEventByEvent(t *testing.T) {
	var body []byte
	for _, typ := range []string{"ADDED", "MODIFIED", "DELETED"} {
		obj, _ := json.Marshal(secretPod("a", "n2"))
		ev, _ := json.Marshal(metav1.WatchEvent{Type: typ, Object: runtimeRaw(obj)})
		body = append(append(body, ev...), '\n')
	}
	status, _ := json.Marshal(metav1.WatchEvent{Type: "ERROR", Object: runtimeRaw([]byte(`{"kind":"Status","apiVersion":"v1","message":"too old \"}\" resource version","code":410}`))})
	body = append(body, status...)
	rec, _ := serve(t, node1, tenant.Wildcard, "watch", "watch=true", body, 5)
	dec := json.NewDecoder(rec.Body)
	var n int
	for dec.More() {
		var ev struct {
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		n++
		if ev.Type == "ERROR" {
			if !strings.Contains(string(ev.Object), `too old \"}\" resource version`) {
				t.Errorf("the watch's Status changed: %s", ev.Object)
			}
			continue
		}
		var p corev1.Pod
		if err := json.Unmarshal(ev.Object, &p); err != nil {
			t.Fatal(err)
		}
		assertProjected(t, ev.Type, p)
	}
	if n != 4 {
		t.Errorf("got %d events, want 4", n)
	}
}

func TestWholePodsWhereTheNodeSelectsItsOwn(t *testing.T) {
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, Items: []corev1.Pod{secretPod("b", "n1")}}
	body, _ := json.Marshal(list)
	for _, c := range []struct {
		name       string
		user       user.Info
		tenantName string
		query      string
	}{
		{"its own pods", node1, tenant.Wildcard, "fieldSelector=spec.nodeName%3Dn1"},
		{"a tenant's own path", node1, "acme", ""},
		{"not a node", &user.DefaultInfo{Name: "admin", Groups: []string{user.SystemPrivilegedGroup}}, tenant.Wildcard, ""},
	} {
		rec, _ := serve(t, c.user, c.tenantName, "list", c.query, body, 3)
		if rec.Body.String() != string(body) {
			t.Errorf("%s: the reply changed: %s", c.name, rec.Body)
		}
	}
	rec, _ := serve(t, node1, tenant.Wildcard, "list", "fieldSelector=spec.nodeName%3Dn2", body, 3)
	if strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("selecting another node's pods read them whole: %s", rec.Body)
	}
}

func runtimeRaw(b []byte) runtime.RawExtension { return runtime.RawExtension{Raw: b} }
