package server_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kplex/kplex/apiserver/server/servertest"
)

// webhookServer is an admission webhook on loopback https. /validate denies
// configmaps named deny-*, /mutate labels every configmap; both record the
// names they were asked about.
type webhookServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]string // name -> path
}

func startWebhook(t *testing.T) *webhookServer {
	w := &webhookServer{seen: map[string]string{}}
	w.Server = httptest.NewTLSServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.Close)
	return w
}

func (w *webhookServer) caBundle() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.Certificate().Raw})
}

func (w *webhookServer) serve(rw http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	req := review.Request
	w.mu.Lock()
	w.seen[req.Name] = r.URL.Path
	w.mu.Unlock()
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	switch r.URL.Path {
	case "/validate":
		if strings.HasPrefix(req.Name, "deny-") {
			resp.Allowed = false
			resp.Result = &metav1.Status{Message: "tenant A's webhook says no", Code: http.StatusForbidden}
		}
	case "/mutate":
		patch := `[{"op":"add","path":"/metadata/labels","value":{"mutated-by":"a"}}]`
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = []byte(patch), &pt
	}
	review.Response = resp
	_ = json.NewEncoder(rw).Encode(&review)
}

func (w *webhookServer) saw(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.seen[name]
	return ok
}

func createConfigMap(ctx context.Context, c kubernetes.Interface, name string) (*corev1.ConfigMap, error) {
	return c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
}

var probes atomic.Int64

// probe returns a fresh name with prefix.
func probe(prefix string) string { return fmt.Sprintf("%s%d", prefix, probes.Add(1)) }

func configMapRules() []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
	}}
}

func TestIntegrationWebhooksArePerTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	adminA, adminB := e.CreateTenant(t, "hook-a"), e.CreateTenant(t, "hook-b")
	a, b, root := servertest.Client(t, adminA), servertest.Client(t, adminB), servertest.Client(t, rootHost(e))
	hook := startWebhook(t)
	url := func(path string) *string { u := hook.URL + path; return &u }
	none, fail := admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.Fail
	if _, err := a.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "deny"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "deny.example.com",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: url("/validate"), CABundle: hook.caBundle()},
			Rules:                   configMapRules(),
			SideEffects:             &none,
			FailurePolicy:           &fail,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "label"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "label.example.com",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: url("/mutate"), CABundle: hook.caBundle()},
			Rules:                   configMapRules(),
			SideEffects:             &none,
			FailurePolicy:           &fail,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var denial error
	eventually(t, "A's validating webhook denies in A", func() bool {
		_, denial = createConfigMap(ctx, a, probe("deny-a-"))
		return denial != nil
	})
	if !apierrors.IsForbidden(denial) || !strings.Contains(denial.Error(), "tenant A's webhook says no") {
		t.Errorf("A's denial = %v, want Forbidden with the webhook's message", denial)
	}
	eventually(t, "A's mutating webhook labels A's configmaps", func() bool {
		cm, err := createConfigMap(ctx, a, probe("ok-a-"))
		if err != nil {
			t.Fatal(err)
		}
		return cm.Labels["mutated-by"] == "a" && hook.saw(cm.Name)
	})

	for name, c := range map[string]kubernetes.Interface{"b": b, "root": root} {
		for _, prefix := range []string{"deny-", "ok-"} {
			cm, err := createConfigMap(ctx, c, probe(prefix+name+"-"))
			if err != nil {
				t.Errorf("%s's create of %s-configmap: %v, want A's webhook to stay out of it", name, prefix, err)
				continue
			}
			if cm.Labels["mutated-by"] != "" {
				t.Errorf("%s's configmap was mutated by A's webhook: labels %v", name, cm.Labels)
			}
			if hook.saw(cm.Name) {
				t.Errorf("A's webhook was called for %s's configmap %s", name, cm.Name)
			}
		}
	}
}

func TestIntegrationValidatingAdmissionPolicyIsPerTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	adminA, adminB := e.CreateTenant(t, "vap-a"), e.CreateTenant(t, "vap-b")
	a, b, root := servertest.Client(t, adminA), servertest.Client(t, adminB), servertest.Client(t, rootHost(e))
	if _, err := a.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-deny"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: configMapRules()[0]}}},
			Validations:      []admissionregistrationv1.Validation{{Expression: "!object.metadata.name.startsWith('deny-')", Message: "tenant A's policy says no"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "no-deny"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        "no-deny",
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var denial error
	eventually(t, "A's policy denies in A", func() bool {
		_, denial = createConfigMap(ctx, a, probe("deny-a-"))
		return denial != nil
	})
	if !apierrors.IsInvalid(denial) && !apierrors.IsForbidden(denial) || !strings.Contains(denial.Error(), "tenant A's policy says no") {
		t.Errorf("A's denial = %v, want the policy's message", denial)
	}
	if _, err := createConfigMap(ctx, a, probe("ok-a-")); err != nil {
		t.Errorf("A's policy denies what it allows: %v", err)
	}
	for name, c := range map[string]kubernetes.Interface{"b": b, "root": root} {
		if _, err := createConfigMap(ctx, c, probe("deny-"+name+"-")); err != nil {
			t.Errorf("A's policy applies to %s: %v", name, err)
		}
	}
}

// TestIntegrationMutatingAdmissionPolicyIsPerTenant: a tenant's bound
// MutatingAdmissionPolicy changes its own objects, never another tenant's
// or root's (upstream's conformance suite found it did nothing at all).
func TestIntegrationMutatingAdmissionPolicyIsPerTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	a, b, root := servertest.Client(t, e.CreateTenant(t, "map-a")), servertest.Client(t, e.CreateTenant(t, "map-b")), servertest.Client(t, rootHost(e))
	if _, err := a.AdmissionregistrationV1().MutatingAdmissionPolicies().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "stamp"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints:   &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: configMapRules()[0]}}},
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
			Mutations: []admissionregistrationv1.Mutation{{
				PatchType:          admissionregistrationv1.PatchTypeApplyConfiguration,
				ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: `Object{metadata: Object.metadata{labels: {"stamped-by": "map-a"}}}`},
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "stamp"},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: "stamp"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "map-a's policy stamps map-a's ConfigMaps", func() bool {
		cm, err := createConfigMap(ctx, a, probe("stamp-a-"))
		return err == nil && cm.Labels["stamped-by"] == "map-a"
	})
	for name, c := range map[string]kubernetes.Interface{"map-b": b, "root": root} {
		cm, err := createConfigMap(ctx, c, probe("stamp-"+name+"-"))
		if err != nil {
			t.Errorf("creating %s's ConfigMap: %v", name, err)
		} else if cm.Labels["stamped-by"] != "" {
			t.Errorf("map-a's policy stamped %s's ConfigMap: %v", name, cm.Labels)
		}
	}
}

// pod is a plain pod: baseline, but not restricted (it may run as root,
// escalate privileges, and keeps its capabilities). Privileged pods are
// refused by --allow-privileged=false before PodSecurity.
func pod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func TestIntegrationLimitRangeIsPerTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	adminA, adminB := e.CreateTenant(t, "limits-a"), e.CreateTenant(t, "limits-b")
	a, b := servertest.Client(t, adminA), servertest.Client(t, adminB)
	cpu := resource.MustParse("300m")
	if _, err := a.CoreV1().LimitRanges("default").Create(ctx, &corev1.LimitRange{
		ObjectMeta: metav1.ObjectMeta{Name: "cpu"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type:    corev1.LimitTypeContainer,
			Default: corev1.ResourceList{corev1.ResourceCPU: cpu},
		}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A's LimitRange defaults A's pods", func() bool {
		p, err := a.CoreV1().Pods("default").Create(ctx, pod(probe("pod-a-")), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := p.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU]
		return got.Cmp(cpu) == 0
	})
	p, err := b.CoreV1().Pods("default").Create(ctx, pod(probe("pod-b-")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if limits := p.Spec.Containers[0].Resources.Limits; len(limits) != 0 {
		t.Errorf("B's pod got limits %v from A's LimitRange", limits)
	}
	p, err = servertest.Client(t, rootHost(e)).CoreV1().Pods("default").Create(ctx, pod(probe("pod-root-")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if limits := p.Spec.Containers[0].Resources.Limits; len(limits) != 0 {
		t.Errorf("root's pod got limits %v from A's LimitRange", limits)
	}
}

func TestIntegrationPodSecurityIsPerTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	adminA, adminB := e.CreateTenant(t, "psa-a"), e.CreateTenant(t, "psa-b")
	a, b := servertest.Client(t, adminA), servertest.Client(t, adminB)
	for c, labels := range map[kubernetes.Interface]map[string]string{
		a: {"pod-security.kubernetes.io/enforce": "restricted"},
		b: nil,
	} {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps", Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var denial error
	eventually(t, "restricted is enforced in A's namespace", func() bool {
		_, denial = a.CoreV1().Pods("apps").Create(ctx, pod(probe("priv-a-")), metav1.CreateOptions{})
		return denial != nil
	})
	if !apierrors.IsForbidden(denial) || !strings.Contains(denial.Error(), "violates PodSecurity") {
		t.Errorf("A's denial = %v, want Forbidden by PodSecurity", denial)
	}
	if _, err := b.CoreV1().Pods("apps").Create(ctx, pod(probe("priv-b-")), metav1.CreateOptions{}); err != nil {
		t.Errorf("B's same-named namespace, unlabelled, refuses a pod restricted forbids: %v", err)
	}
}
