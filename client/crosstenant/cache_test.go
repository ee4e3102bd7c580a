package crosstenant

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/tenant"
)

func configMap(tenantName, namespace, name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Namespace: namespace, Name: name,
		Annotations: map[string]string{tenant.Annotation: tenantName},
	}}
}

func TestSameNamesInTwoTenantsStayApart(t *testing.T) {
	t.Parallel()
	indexer := cache.NewIndexer(KeyFunc, Indexers)
	c := &Cache{Indexer: indexer}
	for _, obj := range []*corev1.ConfigMap{configMap("a", "default", "web"), configMap("b", "default", "web"), configMap("b", "other", "web")} {
		if err := indexer.Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(indexer.List()); got != 3 {
		t.Fatalf("cache holds %d objects, want 3: same names in two tenants collided", got)
	}
	if got := c.Get("a", "default", "web"); got == nil || got.(*corev1.ConfigMap).Annotations[tenant.Annotation] != "a" {
		t.Errorf("Get(a/default/web) = %v", got)
	}
	if got := len(c.InNamespace("a", "default")); got != 1 {
		t.Errorf("a's default namespace holds %d objects, want 1", got)
	}
	if got := len(c.InTenant("b")); got != 2 {
		t.Errorf("tenant b holds %d objects, want 2", got)
	}
	if c.Get("c", "default", "web") != nil {
		t.Error("a tenant without objects has one")
	}
}

func TestObjectsWithoutIdentityAreRefused(t *testing.T) {
	t.Parallel()
	if _, err := KeyFunc(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}); err == nil {
		t.Error("an object without a tenant identity got a key")
	}
}
