package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	tenancyv1alpha1 "github.com/kplex/kplex/apis/tenancy/v1alpha1"
	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/apiserver/server/servertest"
)

// widgetsA is tenant A's widgets.example.com: namespaced, v1 (and v1beta1),
// with a defaulted color, a size that must be an integer, and status and
// scale.
func widgetsA() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				// An older version, converted to v1 by A's CRD (strategy None).
				Name: "v1beta1", Served: true, Storage: false,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptrTo(true),
				}},
			}, {
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"size":     {Type: "integer"},
							"replicas": {Type: "integer"},
							"color":    {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"red"`)}},
						}},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"replicas": {Type: "integer"},
							"phase":    {Type: "string"},
						}},
					},
				}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{
					Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
					Scale:  &apiextensionsv1.CustomResourceSubresourceScale{SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas"},
				},
				AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{{Name: "Size", Type: "integer", JSONPath: ".spec.size"}},
			}},
		},
	}
}

// widgetsB is tenant B's widgets.example.com: the same name, but
// cluster-scoped, v2 only, and a required spec.name.
func widgetsB() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.ClusterScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v2", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Required: []string{"name"}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"name": {Type: "string"},
						}},
					},
				}},
			}},
		},
	}
}

// createCRD creates crd through cfg and waits until it is Established.
func createCRD(t *testing.T, cfg *rest.Config, crd *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	ctx := ctxT(t)
	c, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating CRD %s: %v", crd.Name, err)
	}
	eventually(t, "CRD "+crd.Name+" Established", func() bool {
		got, err := c.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true
			}
		}
		return false
	})
}

func dynamicClient(t *testing.T, cfg *rest.Config) dynamic.Interface {
	t.Helper()
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func object(apiVersion, kind, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name},
		"spec":     spec,
	}}
}

var (
	widgetsV1 = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	widgetsV2 = schema.GroupVersionResource{Group: "example.com", Version: "v2", Resource: "widgets"}
)

func TestIntegrationCRDsArePerTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	adminA, adminB := e.CreateTenant(t, "crd-a"), e.CreateTenant(t, "crd-b")
	createCRD(t, adminA, widgetsA())
	createCRD(t, adminB, widgetsB())
	a, b, root := dynamicClient(t, adminA), dynamicClient(t, adminB), dynamicClient(t, e.Admin)

	// A's schema: defaulting, pruning and validation are A's.
	w, err := a.Resource(widgetsV1).Namespace("default").Create(ctx,
		object("example.com/v1", "Widget", "w1", map[string]any{"size": int64(3), "replicas": int64(1), "junk": "x"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("A creates a widget: %v", err)
	}
	if color, _, _ := unstructured.NestedString(w.Object, "spec", "color"); color != "red" {
		t.Errorf("A's widget spec.color = %q, want the default red", color)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(w.Object, "spec", "junk"); found {
		t.Errorf("A's widget kept spec.junk, which A's schema prunes")
	}
	_, err = a.Resource(widgetsV1).Namespace("default").Create(ctx, object("example.com/v1", "Widget", "bad", map[string]any{"size": "big"}), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Errorf("A's widget with spec.size=big: %v, want Invalid", err)
	}

	// Conversion is A's: v1 objects read as v1beta1, which B does not serve.
	old, err := a.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1beta1", Resource: "widgets"}).Namespace("default").Get(ctx, "w1", metav1.GetOptions{})
	if err != nil || old.GetAPIVersion() != "example.com/v1beta1" {
		t.Errorf("A reads its v1 widget as v1beta1: %v (apiVersion %q)", err, old.GetAPIVersion())
	}

	// B's schema is B's: cluster-scoped v2 with a required name; A's v1 is not there.
	if _, err := b.Resource(widgetsV1).Namespace("default").List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("B lists A's version of widgets: %v, want NotFound", err)
	}
	_, err = b.Resource(widgetsV2).Create(ctx, object("example.com/v2", "Widget", "nameless", map[string]any{}), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Errorf("B's widget without spec.name: %v, want Invalid", err)
	}
	if _, err := b.Resource(widgetsV2).Create(ctx, object("example.com/v2", "Widget", "w1", map[string]any{"name": "b"}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("B creates a widget: %v", err)
	}
	list, err := b.Resource(widgetsV2).List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("B lists its widgets: %v, %d items, want 1", err, len(list.Items))
	}

	// Root serves neither tenant's widgets; no tenant serves root's Tenants.
	if _, err := root.Resource(widgetsV1).Namespace("default").List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("root lists widgets: %v, want NotFound", err)
	}
	if _, err := a.Resource(tenancyv1alpha1.TenantsResource).List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("A lists root's tenants: %v, want NotFound", err)
	}

	// Status and scale are A's subresources.
	w.Object["status"] = map[string]any{"replicas": int64(1), "phase": "Ready"}
	if _, err := a.Resource(widgetsV1).Namespace("default").UpdateStatus(ctx, w, metav1.UpdateOptions{}); err != nil {
		t.Errorf("A updates a widget's status: %v", err)
	}
	scale, err := a.Resource(widgetsV1).Namespace("default").Get(ctx, "w1", metav1.GetOptions{}, "scale")
	if err != nil {
		t.Errorf("A reads a widget's scale: %v", err)
	} else if replicas, _, _ := unstructured.NestedInt64(scale.Object, "spec", "replicas"); replicas != 1 {
		t.Errorf("A's widget scale spec.replicas = %d, want 1", replicas)
	}

	// Discovery: each tenant sees its own widgets and not root's groups.
	checkDiscovery(t, adminA, "example.com/v1", true, "example.com/v1beta1")
	checkDiscovery(t, adminB, "example.com/v2", false)
	checkNoGroup(t, adminA, tenancyv1alpha1.GroupName)
	checkNoGroup(t, e.Admin, "example.com")

	// OpenAPI v2: each tenant's document has its own widgets, not root's tenants.
	checkOpenAPIV2(t, adminA, []string{"com.example.v1.Widget"}, []string{"com.example.v2.Widget", "io.kplex.v1alpha1.Tenant"})
	checkOpenAPIV2(t, adminB, []string{"com.example.v2.Widget"}, []string{"com.example.v1.Widget", "io.kplex.v1alpha1.Tenant"})
	checkOpenAPIV2(t, e.Admin, []string{"io.kplex.v1alpha1.Tenant"}, []string{"com.example.v1.Widget", "com.example.v2.Widget"})

	// Deleting A's CRD removes A's widgets, not B's.
	crdsA, _ := apiextensionsclient.NewForConfig(adminA)
	if err := crdsA.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, "widgets.example.com", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("A deletes its CRD: %v", err)
	}
	eventually(t, "A's CRD gone", func() bool {
		_, err := crdsA.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets.example.com", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if keys := e.EtcdKeys(t, "/registry/example.com/widgets/crd-a/"); len(keys) != 0 {
		t.Errorf("A's widgets left in etcd after its CRD was deleted: %v", keys)
	}
	if _, err := b.Resource(widgetsV2).Get(ctx, "w1", metav1.GetOptions{}); err != nil {
		t.Errorf("B's widget after A's CRD was deleted: %v", err)
	}
	checkNoGroup(t, adminA, "example.com")
}

// checkDiscovery asserts that cfg's discovery serves widgets in gv, with
// the scope given, and that example.com has exactly gv and others.
func checkDiscovery(t *testing.T, cfg *rest.Config, gv string, namespaced bool, others ...string) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, resources, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatalf("discovery of %s: %v", cfg.Host, err)
	}
	var versions []string
	for _, g := range groups {
		if g.Name == "example.com" {
			for _, v := range g.Versions {
				versions = append(versions, v.GroupVersion)
			}
		}
	}
	if want := append([]string{gv}, others...); !slices.Equal(versions, want) {
		t.Errorf("discovery of %s: example.com versions %v, want %v", cfg.Host, versions, want)
	}
	for _, list := range resources {
		if list.GroupVersion != gv {
			continue
		}
		for _, r := range list.APIResources {
			if r.Name == "widgets" {
				if r.Namespaced != namespaced {
					t.Errorf("discovery of %s: widgets namespaced=%v, want %v", cfg.Host, r.Namespaced, namespaced)
				}
				return
			}
		}
	}
	t.Errorf("discovery of %s: no widgets in %s", cfg.Host, gv)
}

// checkNoGroup asserts that cfg's discovery, aggregated and legacy, does
// not list group, and that the group's own path is not found.
func checkNoGroup(t *testing.T, cfg *rest.Config, group string) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := dc.ServerGroups()
	if err != nil {
		t.Fatalf("discovery of %s: %v", cfg.Host, err)
	}
	for _, g := range groups.Groups {
		if g.Name == group {
			t.Errorf("discovery of %s lists group %s", cfg.Host, group)
		}
	}
	legacy := &metav1.APIGroupList{}
	if err := dc.RESTClient().Get().AbsPath("/apis").SetHeader("Accept", "application/json").Do(context.Background()).Into(legacy); err != nil {
		t.Fatalf("legacy discovery of %s: %v", cfg.Host, err)
	}
	for _, g := range legacy.Groups {
		if g.Name == group {
			t.Errorf("legacy discovery of %s lists group %s", cfg.Host, group)
		}
	}
	err = dc.RESTClient().Get().AbsPath("/apis", group).Do(context.Background()).Error()
	if !apierrors.IsNotFound(err) {
		t.Errorf("GET %s/apis/%s: %v, want NotFound", cfg.Host, group, err)
	}
}

// checkOpenAPIV2 asserts which definitions cfg's /openapi/v2 has and lacks.
func checkOpenAPIV2(t *testing.T, cfg *rest.Config, has, lacks []string) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := dc.RESTClient().Get().AbsPath("/openapi/v2").SetHeader("Accept", "application/json").Do(context.Background()).Raw()
	if err != nil {
		t.Fatalf("GET %s/openapi/v2: %v", cfg.Host, err)
	}
	var doc struct {
		Definitions map[string]json.RawMessage `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("decoding %s/openapi/v2: %v", cfg.Host, err)
	}
	for _, name := range has {
		if _, ok := doc.Definitions[name]; !ok {
			t.Errorf("%s/openapi/v2 lacks %s", cfg.Host, name)
		}
	}
	for _, name := range lacks {
		if _, ok := doc.Definitions[name]; ok {
			t.Errorf("%s/openapi/v2 has %s", cfg.Host, name)
		}
	}
	if _, ok := doc.Definitions["io.k8s.api.core.v1.ConfigMap"]; !ok {
		t.Errorf("%s/openapi/v2 lacks the built-in ConfigMap", cfg.Host)
	}
}

// TestIntegrationIdleCRDServingIsDroppedAndRemade has a tenant's custom
// resource serving outlive neither its use nor its idleness: an open watch
// keeps it, a quiet tenant loses it, and its next request makes it again.
func TestIntegrationIdleCRDServingIsDroppedAndRemade(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "", func(c *server.Config) { c.CRDIdleTimeout = time.Second })
	ctx := ctxT(t)
	admin := e.CreateTenant(t, "idle-a")
	createCRD(t, admin, widgetsA())
	widgets := dynamicClient(t, admin).Resource(widgetsV1).Namespace("default")
	if _, err := widgets.Create(ctx, object("example.com/v1", "Widget", "w1", map[string]any{"size": int64(1)}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a widget: %v", err)
	}
	serving := func() bool { return slices.Contains(e.Server.CRDs().Serving(), "idle-a") }

	w, err := widgets.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watching widgets: %v", err)
	}
	time.Sleep(3 * time.Second)
	if !serving() {
		t.Fatal("the tenant's custom resource serving was dropped under an open watch")
	}
	w.Stop()
	eventually(t, "idle serving dropped", func() bool { return !serving() })

	got, err := widgets.Get(ctx, "w1", metav1.GetOptions{})
	if err != nil || got.GetName() != "w1" {
		t.Fatalf("reading a widget after its serving was dropped: %v", err)
	}
	if !serving() {
		t.Error("a request did not make the serving again")
	}
	eventually(t, "idle serving dropped again", func() bool { return !serving() })

	// Deleting the CRD needs the finalizer: the serving comes back for it.
	crds, _ := apiextensionsclient.NewForConfig(admin)
	if err := crds.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, "widgets.example.com", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the CRD deleted while its tenant was idle", func() bool {
		_, err := crds.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets.example.com", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if keys := e.EtcdKeys(t, "/registry/example.com/widgets/idle-a/"); len(keys) != 0 {
		t.Errorf("widgets left after their CRD was deleted: %v", keys)
	}
}

// TestIntegrationTenantConversionWebhooksNeedAURL: a tenant's conversion
// webhook given as a Service could never be reached; the CRD is refused
// with the field named, and nothing is stored. A URL is taken.
func TestIntegrationTenantConversionWebhooksNeedAURL(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	admin := e.CreateTenant(t, "conv-a")
	c, err := apiextensionsclient.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	crd := widgetsA()
	crd.Spec.Versions[0].Schema.OpenAPIV3Schema = crd.Spec.Versions[1].Schema.OpenAPIV3Schema
	crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{
		Strategy: apiextensionsv1.WebhookConverter,
		Webhook: &apiextensionsv1.WebhookConversion{
			ConversionReviewVersions: []string{"v1"},
			ClientConfig:             &apiextensionsv1.WebhookClientConfig{Service: &apiextensionsv1.ServiceReference{Namespace: "default", Name: "convert"}},
		},
	}
	_, err = c.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.conversion.webhook.clientConfig.service") {
		t.Fatalf("a tenant CRD converting through a Service: %v, want Invalid naming spec.conversion.webhook.clientConfig.service", err)
	}
	if _, err := c.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused CRD was stored: %v", err)
	}
	crd.Spec.Conversion.Webhook.ClientConfig = &apiextensionsv1.WebhookClientConfig{URL: ptrTo("https://convert.example.com/convert")}
	if _, err := c.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Errorf("a tenant CRD converting through a URL: %v", err)
	}
}

// TestIntegrationTenantLegacyDiscoveryAtEveryPath: upstream's conformance
// suite reads /apis/ (trailing slash) in protobuf-or-JSON, then every
// group's /apis/<group>/, and wants each preferred version among its
// versions. A tenant answers as root does, also when its answer is the
// first since root's document went stale.
func TestIntegrationTenantLegacyDiscoveryAtEveryPath(t *testing.T) {
	e := startEnv(t)
	cfg := e.CreateTenant(t, "legacy-disco")
	for _, c := range []*rest.Config{e.Admin, cfg} {
		dc, err := discovery.NewDiscoveryClientForConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // past the tenant filter's revalidation of root's document
		list := &metav1.APIGroupList{}
		if err := dc.RESTClient().Get().AbsPath("/apis/").SetHeader("Accept", "application/vnd.kubernetes.protobuf, application/json").Do(context.Background()).Into(list); err != nil {
			t.Fatalf("GET %s/apis/: %v", c.Host, err)
		}
		if len(list.Groups) < 10 {
			t.Fatalf("GET %s/apis/: %d groups", c.Host, len(list.Groups))
		}
		for _, g := range list.Groups {
			group := &metav1.APIGroup{}
			if err := dc.RESTClient().Get().AbsPath("/apis/" + g.Name + "/").Do(context.Background()).Into(group); err != nil {
				t.Errorf("GET %s/apis/%s/: %v", c.Host, g.Name, err)
				continue
			}
			if !slices.Contains(group.Versions, group.PreferredVersion) {
				t.Errorf("%s/apis/%s/: preferred version %v is not among %v", c.Host, g.Name, group.PreferredVersion, group.Versions)
			}
		}
	}
}
