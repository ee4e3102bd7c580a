package tenantcrd

import (
	"slices"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

func crd(name, group, kind string, established bool, versions ...string) *apiextensionsv1.CustomResourceDefinition {
	c := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind},
		},
	}
	for i, v := range versions {
		c.Spec.Versions = append(c.Spec.Versions, apiextensionsv1.CustomResourceDefinitionVersion{Name: v, Served: true, Storage: i == 0})
	}
	c.Status.AcceptedNames = apiextensionsv1.CustomResourceDefinitionNames{Plural: name[:len(name)-len(group)-1], Kind: kind}
	if established {
		c.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue}}
	}
	return c
}

func TestGroupsOfServesEstablishedCRDsInVersionOrder(t *testing.T) {
	groups := groupsOf([]*apiextensionsv1.CustomResourceDefinition{
		crd("widgets.b.example.com", "b.example.com", "Widget", true, "v1beta1", "v2", "v1"),
		crd("gadgets.b.example.com", "b.example.com", "Gadget", true, "v1"),
		crd("pending.a.example.com", "a.example.com", "Pending", false, "v1"),
		crd("things.a.example.com", "a.example.com", "Thing", true, "v1alpha1"),
	})
	var names []string
	for _, g := range groups {
		names = append(names, g.name)
	}
	if !slices.Equal(names, []string{"a.example.com", "b.example.com"}) {
		t.Fatalf("groups %v, want a.example.com then b.example.com", names)
	}
	var versions []string
	for _, v := range groups[1].aggregated.Versions {
		versions = append(versions, v.Version)
	}
	if !slices.Equal(versions, []string{"v2", "v1", "v1beta1"}) {
		t.Errorf("b.example.com versions %v, want v2 v1 v1beta1", versions)
	}
	if got := groups[1].aggregated.Versions[1].Resources; len(got) != 2 || got[0].Resource != "gadgets" || got[1].Resource != "widgets" {
		t.Errorf("b.example.com/v1 resources %+v, want gadgets and widgets", got)
	}
	if got := groups[0].resources["v1"]; len(got) != 0 {
		t.Errorf("a not-Established CRD is served: %+v", got)
	}
}

func TestSpecHashIsTheSameForTheSameCRDs(t *testing.T) {
	a := []*apiextensionsv1.CustomResourceDefinition{crd("widgets.example.com", "example.com", "Widget", true, "v1")}
	b := []*apiextensionsv1.CustomResourceDefinition{crd("widgets.example.com", "example.com", "Widget", true, "v1")}
	b[0].ResourceVersion = "99" // another tenant's copy
	if specHash(a, "example.com", "v1") != specHash(b, "example.com", "v1") {
		t.Errorf("identical CRDs in two tenants hash apart: their OpenAPI would not be shared")
	}
	b[0].Spec.Names.Kind = "Gizmo"
	if specHash(a, "example.com", "v1") == specHash(b, "example.com", "v1") {
		t.Errorf("different CRDs hash alike: one tenant would be served another's OpenAPI")
	}
}

func TestStripGroupsRemovesPathsAndDefinitions(t *testing.T) {
	s := &spec.Swagger{SwaggerProps: spec.SwaggerProps{
		Paths: &spec.Paths{Paths: map[string]spec.PathItem{
			"/apis/kplex.io/v1alpha1/tenants": {},
			"/api/v1/configmaps":              {},
		}},
		Definitions: spec.Definitions{
			"io.kplex.v1alpha1.Tenant": {VendorExtensible: spec.VendorExtensible{Extensions: spec.Extensions{
				"x-kubernetes-group-version-kind": []any{map[string]any{"group": "kplex.io", "version": "v1alpha1", "kind": "Tenant"}},
			}}},
			"io.k8s.api.core.v1.ConfigMap": {VendorExtensible: spec.VendorExtensible{Extensions: spec.Extensions{
				"x-kubernetes-group-version-kind": []any{map[string]any{"group": "", "version": "v1", "kind": "ConfigMap"}},
			}}},
		},
	}}
	stripGroups(s, sets.New("kplex.io"))
	if _, ok := s.Paths.Paths["/apis/kplex.io/v1alpha1/tenants"]; ok {
		t.Errorf("root's CRD path kept")
	}
	if _, ok := s.Definitions["io.kplex.v1alpha1.Tenant"]; ok {
		t.Errorf("root's CRD definition kept")
	}
	if _, ok := s.Definitions["io.k8s.api.core.v1.ConfigMap"]; !ok {
		t.Errorf("a built-in definition was removed")
	}
	if _, ok := s.Paths.Paths["/api/v1/configmaps"]; !ok {
		t.Errorf("a built-in path was removed")
	}
}
