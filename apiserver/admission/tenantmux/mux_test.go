package tenantmux

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/admission"
	validatingwebhook "k8s.io/apiserver/pkg/admission/plugin/webhook/validating"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/compatibility"
	api "k8s.io/kubernetes/pkg/apis/core"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/crosstenant/tenantview"
	"github.com/kplex/kplex/tenant"
)

type listWatch struct{ *cache.ListWatch }

func (listWatch) IsWatchListSemanticsUnSupported() bool { return true }

// staticCache returns a synced cache holding objs, fed by a fake watch
// events can be sent on.
func staticCache(t testing.TB, list, example k8sruntime.Object) (*crosstenant.Cache, *watch.FakeWatcher) {
	w := watch.NewFake()
	lw := listWatch{&cache.ListWatch{
		ListFunc:  func(metav1.ListOptions) (k8sruntime.Object, error) { return list, nil },
		WatchFunc: func(metav1.ListOptions) (watch.Interface, error) { return w, nil },
	}}
	c := crosstenant.NewCache(lw, example)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Run(ctx)
	for !c.HasSynced() {
		runtime.Gosched()
	}
	return c, w
}

func annotated(t string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Annotations: map[string]string{tenant.Annotation: t}, ResourceVersion: "1"}
}

func namespace(t, name string) corev1.Namespace {
	m := annotated(t)
	m.Name = name
	return corev1.Namespace{ObjectMeta: m}
}

func webhookConfig(t string) *admissionregistrationv1.ValidatingWebhookConfiguration {
	m := annotated(t)
	m.Name = "deny"
	url, none, ignore := "https://127.0.0.1:1/validate", admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.Ignore
	return &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: m, Webhooks: []admissionregistrationv1.ValidatingWebhook{{
		Name:                    "deny.example.com",
		ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
		Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{"CREATE"}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
		SideEffects:             &none,
		FailurePolicy:           &ignore,
		AdmissionReviewVersions: []string{"v1"},
	}}}
}

// rootPlugin records what root's instance was asked.
type rootPlugin struct {
	*admission.Handler
	calls int
}

func (p *rootPlugin) Validate(context.Context, admission.Attributes, admission.ObjectInterfaces) error {
	p.calls++
	return nil
}

// newHub returns a hub of the validating webhook over tenants' namespaces
// (default) and one webhook configuration each.
func newHub(t testing.TB, tenants []string) (*Hub, *Mux, *rootPlugin, *crosstenant.Cache, *watch.FakeWatcher) {
	var nsList corev1.NamespaceList
	var hooks admissionregistrationv1.ValidatingWebhookConfigurationList
	nsList.ResourceVersion, hooks.ResourceVersion = "1", "1"
	for _, name := range tenants {
		nsList.Items = append(nsList.Items, namespace(name, "default"))
		hooks.Items = append(hooks.Items, *webhookConfig(name))
	}
	namespaces, _ := staticCache(t, &nsList, &corev1.Namespace{})
	webhooks, w := staticCache(t, &hooks, &admissionregistrationv1.ValidatingWebhookConfiguration{})
	h := New([]Spec{Specs[1]})
	root := &rootPlugin{Handler: admission.NewHandler(admission.Create)}
	if _, ok := h.Decorator().Decorate(root, validatingwebhook.PluginName).(admission.ValidationInterface); !ok {
		t.Fatal("the mux of a validating plugin does not validate")
	}
	if err := h.SetEnv(Env{
		Loopback:         &rest.Config{Host: "https://127.0.0.1:1"},
		Authorizer:       authorizerfactory.NewAlwaysAllowAuthorizer(),
		EffectiveVersion: compatibility.NewEffectiveVersionFromString("1.37", "", ""),
	}); err != nil {
		t.Fatal(err)
	}
	caches := &tenantview.Caches{Namespaces: namespaces, ValidatingWebhooks: webhooks}
	h.caches.Store(caches)
	for _, c := range Specs[1].watched(caches) {
		m := h.muxes[0]
		c.Watch(func(t string) { m.sweep(caches, t) })
	}
	return h, h.muxes[0], root, webhooks, w
}

func configMapCreate(name string) admission.Attributes {
	cm := &api.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	return admission.NewAttributesRecord(cm, nil, api.Kind("ConfigMap").WithVersion("v1"), "default", name,
		schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "", admission.Create, &metav1.CreateOptions{}, false, nil)
}

func TestMuxDispatchesByTenant(t *testing.T) {
	t.Parallel()
	_, m, root, _, w := newHub(t, []string{"a"})
	v := wrap(m).(admission.ValidationInterface)
	for _, tc := range []struct {
		tenant    string
		rootCalls int
		instances int
	}{
		{tenant.Root, 1, 0},
		{tenant.Wildcard, 1, 0},
		{"b", 1, 0}, // no webhook configurations: nothing built
		{"a", 1, 1},
	} {
		if err := v.Validate(tenant.WithTenant(context.Background(), tc.tenant), configMapCreate("x"), nil); err != nil {
			t.Errorf("%s: %v", tc.tenant, err)
		}
		if root.calls != tc.rootCalls || m.running() != tc.instances {
			t.Errorf("after a request of %q: root called %d times, %d tenant instances; want %d, %d", tc.tenant, root.calls, m.running(), tc.rootCalls, tc.instances)
		}
	}
	// A's last configuration goes: its instance stops.
	w.Delete(webhookConfig("a"))
	for i := 0; m.running() != 0; i++ {
		if i > 1000 {
			t.Fatal("a's instance outlived its last webhook configuration")
		}
		runtime.Gosched()
	}
}

// TestTenantWebhookMemory measures what a tenant with one validating
// webhook configuration costs, once its instance has served a request.
func TestTenantWebhookMemory(t *testing.T) {
	const n = 50
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("t%d", i))
	}
	_, m, _, _, _ := newHub(t, names)
	v := wrap(m).(admission.ValidationInterface)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, name := range names {
		if err := v.Validate(tenant.WithTenant(context.Background(), name), configMapCreate("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if m.running() != n {
		t.Fatalf("%d instances, want %d", m.running(), n)
	}
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("a tenant with one validating webhook configuration: %d KiB of heap", per/1024)
	if per > 1<<20 {
		t.Errorf("a tenant's webhook instance costs %d KiB, over the 1 MiB budget", per/1024)
	}
}

func TestIdleInstancesAreStoppedAndRebuilt(t *testing.T) {
	t.Parallel()
	_, m, _, _, _ := newHub(t, []string{"a", "b"})
	v := wrap(m).(admission.ValidationInterface)
	validate := func(name string) {
		t.Helper()
		if err := v.Validate(tenant.WithTenant(context.Background(), name), configMapCreate("x"), nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	validate("a")
	m.mu.Lock()
	stopA := m.tenants["a"].stop
	m.mu.Unlock()
	cutoff := time.Now()
	validate("b") // b is used after the cutoff, a before it
	m.evictIdle(cutoff)
	m.mu.Lock()
	_, aRuns := m.tenants["a"]
	_, bRuns := m.tenants["b"]
	m.mu.Unlock()
	if aRuns || !bRuns {
		t.Fatalf("after evicting what was idle since the cutoff: a runs=%v, b runs=%v; want false, true", aRuns, bRuns)
	}
	select {
	case <-stopA:
	default:
		t.Error("a's evicted instance was not told to stop")
	}
	validate("a") // a's next request builds it again
	if m.running() != 2 {
		t.Errorf("%d instances after a's next request, want 2", m.running())
	}
}
