package crosstenant

import (
	"fmt"
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

// recorder is a handler that records what it was told.
type recorder struct{ events []string }

func (r *recorder) OnAdd(obj any, _ bool) {
	r.events = append(r.events, "add "+obj.(*corev1.ConfigMap).Name)
}
func (r *recorder) OnUpdate(_, obj any) {
	r.events = append(r.events, "update "+obj.(*corev1.ConfigMap).Name)
}
func (r *recorder) OnDelete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		r.events = append(r.events, "gone "+d.Key)
		return
	}
	r.events = append(r.events, "delete "+obj.(*corev1.ConfigMap).Name)
}

func TestTenantHandlersHearOnlyTheirTenant(t *testing.T) {
	t.Parallel()
	c := &Cache{Indexer: cache.NewIndexer(KeyFunc, Indexers)}
	store := fanoutStore{c}
	if err := store.Add(configMap("a", "default", "old")); err != nil {
		t.Fatal(err)
	}
	var a, b recorder
	var changed []string
	removeA := c.AddTenantHandler("a", &a)
	c.AddTenantHandler("b", &b)
	c.Watch(func(tenantName string) { changed = append(changed, tenantName) })

	web := configMap("a", "default", "web")
	for _, step := range []func() error{
		func() error { return store.Add(web) },
		func() error { return store.Update(web) },
		func() error { return store.Add(configMap("b", "default", "web")) },
		func() error { return store.Delete(web) },
		// A relist without "old": gone while the watch was down.
		func() error { return store.Replace([]any{configMap("b", "default", "web")}, "2") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	removeA()
	if err := store.Add(configMap("a", "default", "late")); err != nil {
		t.Fatal(err)
	}
	want := []string{"add old", "add web", "update web", "delete web", "gone default/old"}
	if fmt.Sprint(a.events) != fmt.Sprint(want) {
		t.Errorf("a's handler heard %v, want %v", a.events, want)
	}
	if fmt.Sprint(b.events) != fmt.Sprint([]string{"add web"}) {
		t.Errorf("b's handler heard %v, want only b's add", b.events)
	}
	if fmt.Sprint(changed) != fmt.Sprint([]string{"a", "a", "b", "a", "a", "a"}) {
		t.Errorf("watchers heard of changes in %v", changed)
	}
}

func TestObserversHearEveryChangeWithOldAndNew(t *testing.T) {
	t.Parallel()
	c := &Cache{Indexer: cache.NewIndexer(KeyFunc, Indexers)}
	store := fanoutStore{c}
	var heard []string
	c.Observe(func(tenantName string, oldObj, newObj any) {
		name := func(obj any) string {
			switch o := obj.(type) {
			case nil:
				return "-"
			case cache.DeletedFinalStateUnknown:
				return "gone:" + o.Key
			default:
				return o.(*corev1.ConfigMap).Name
			}
		}
		heard = append(heard, tenantName+" "+name(oldObj)+">"+name(newObj))
	})
	web := configMap("a", "default", "web")
	for _, step := range []func() error{
		func() error { return store.Add(web) },
		func() error { return store.Update(web) },
		func() error { return store.Add(configMap("b", "default", "db")) },
		func() error { return store.Delete(web) },
		func() error { return store.Replace(nil, "2") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"a ->web", "a web>web", "b ->db", "a web>-", "b gone:default/db>-"}
	if fmt.Sprint(heard) != fmt.Sprint(want) {
		t.Errorf("observers heard %v, want %v", heard, want)
	}
}
