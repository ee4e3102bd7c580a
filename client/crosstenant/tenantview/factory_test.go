package tenantview

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

type fakeLW struct{ w *watch.FakeWatcher }

func (f fakeLW) List(metav1.ListOptions) (runtime.Object, error) {
	return &corev1.ServiceAccountList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}, nil
}
func (f fakeLW) Watch(metav1.ListOptions) (watch.Interface, error) { return f.w, nil }
func (fakeLW) IsWatchListSemanticsUnSupported() bool               { return true }

func sa(t, name string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, ResourceVersion: "2",
		Annotations: map[string]string{tenant.Annotation: t}}}
}

func TestCloseRemovesEveryHandlerOfTheFactory(t *testing.T) {
	t.Parallel()
	w := watch.NewFakeWithChanSize(10, false)
	c := crosstenant.NewCache(fakeLW{w}, &corev1.ServiceAccount{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), c.HasSynced) {
		t.Fatal("cache never synced")
	}
	f := NewFactory(&Caches{ServiceAccounts: c}, "a")
	var heard atomic.Int32
	count := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { heard.Add(1) }}
	inf := f.Core().V1().ServiceAccounts().Informer()
	if _, err := inf.AddEventHandler(count); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Core().V1().Namespaces().Informer().AddEventHandler(count); err != nil {
		t.Fatal(err) // a nil cache: nothing to remove
	}
	w.Add(sa("a", "one"))
	w.Add(sa("b", "other")) // another tenant's: not heard
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		return c.Get("b", "default", "other") != nil, nil
	}); err != nil {
		t.Fatal("the cache never stored the objects")
	}
	if got := heard.Load(); got != 1 {
		t.Fatalf("heard %d adds before Close, want 1", got)
	}
	if got, err := f.Core().V1().ServiceAccounts().Lister().ServiceAccounts("default").Get("one"); err != nil || got.Name != "one" {
		t.Fatalf("lister of a's view: %v, %v", got, err)
	}
	f.Close()
	// Registered after Close: never added.
	if _, err := inf.AddEventHandler(count); err != nil {
		t.Fatal(err)
	}
	w.Add(sa("a", "two"))
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		return c.Get("a", "default", "two") != nil, nil
	}); err != nil {
		t.Fatal("the cache never stored two")
	}
	if got := heard.Load(); got != 1 {
		t.Errorf("heard %d adds, want 1 (one before Close): Close left a handler, or a late one was added", got)
	}
}
