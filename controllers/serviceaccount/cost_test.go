package serviceaccount_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/crosstenant/tenantview"
	"github.com/kplex/kplex/controllers/activation"
	"github.com/kplex/kplex/controllers/serviceaccount"
	"github.com/kplex/kplex/tenant"
)

// fakeLW lists objs once and then tells what is sent on its watcher.
type fakeLW struct {
	list kruntime.Object
	w    *watch.FakeWatcher
	once sync.Once
}

func (f *fakeLW) List(metav1.ListOptions) (kruntime.Object, error) { return f.list, nil }
func (f *fakeLW) Watch(metav1.ListOptions) (watch.Interface, error) {
	var w watch.Interface = watch.NewFake()
	f.once.Do(func() { w = f.w })
	return w, nil
}
func (*fakeLW) IsWatchListSemanticsUnSupported() bool { return true }

var _ cache.ListerWatcher = &fakeLW{}

func meta(t, ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1", Annotations: map[string]string{tenant.Annotation: t}}
}

// apiserver answers creates and updates by echoing them, like a server
// that accepts everything; it counts writes.
func apiserver(t *testing.T) (*rest.Config, *atomic.Int64) {
	writes := &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.Method {
		case http.MethodPost, http.MethodPut:
			writes.Add(1)
			w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
			w.WriteHeader(http.StatusCreated)
			w.Write(body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return &rest.Config{Host: srv.URL, ContentConfig: rest.ContentConfig{GroupVersion: &schema.GroupVersion{Version: "v1"}}}, writes
}

// measure closes idle keep-alive connections (their goroutines are the
// transport's, not an instance's), collects, and reads goroutines and
// HeapAlloc.
func measure() (int, uint64) {
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	time.Sleep(50 * time.Millisecond)
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}

// TestCostOfIdleTenantsAndAwakeInstances runs both controllers over
// caches of many tenants with nothing to do, wakes some with a namespace
// each, and lets them sleep again, three times: idle tenants have no
// instance and cost no goroutine, woken ones do their work, sleeping
// instances leave no goroutine behind. Figures are logged.
func TestCostOfIdleTenantsAndAwakeInstances(t *testing.T) {
	const tenants, woken, cycles = 300, 50, 6
	ca := []byte("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
	nsList, saList, cmList := &corev1.NamespaceList{}, &corev1.ServiceAccountList{}, &corev1.ConfigMapList{}
	nsList.ResourceVersion, saList.ResourceVersion, cmList.ResourceVersion = "1", "1", "1"
	for i := range tenants {
		tn := fmt.Sprintf("t%d", i)
		for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
			nsList.Items = append(nsList.Items, corev1.Namespace{ObjectMeta: meta(tn, "", ns), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}})
			saList.Items = append(saList.Items, corev1.ServiceAccount{ObjectMeta: meta(tn, ns, "default")})
			cm := corev1.ConfigMap{ObjectMeta: meta(tn, ns, "kube-root-ca.crt"), Data: map[string]string{"ca.crt": string(ca)}}
			cm.Annotations["kubernetes.io/description"] = "x"
			cmList.Items = append(cmList.Items, cm)
		}
	}
	nsWatch := watch.NewFakeWithChanSize(2*woken, false)
	c := serviceaccount.Caches{
		Namespaces:      crosstenant.NewCache(&fakeLW{list: nsList, w: nsWatch}, &corev1.Namespace{}),
		ServiceAccounts: crosstenant.NewCache(&fakeLW{list: saList, w: watch.NewFake()}, &corev1.ServiceAccount{}),
		ConfigMaps:      crosstenant.NewCache(&fakeLW{list: cmList, w: watch.NewFake()}, &corev1.ConfigMap{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, x := range []*crosstenant.Cache{c.Namespaces, c.ServiceAccounts, c.ConfigMaps} {
		go x.Run(ctx)
	}
	views := &tenantview.Caches{Namespaces: c.Namespaces, ServiceAccounts: c.ServiceAccounts, ConfigMaps: c.ConfigMaps}
	if !cache.WaitForCacheSync(ctx.Done(), views.HasSynced) {
		t.Fatal("caches never synced")
	}
	loopback, writes := apiserver(t)
	quiet := 500 * time.Millisecond
	a, err := activation.New(activation.Options{
		Loopback:    loopback,
		Caches:      views,
		Tenants:     func() []string { return c.Namespaces.ListIndexFuncValues(crosstenant.ByTenant) },
		QuietPeriod: quiet,
	}, serviceaccount.ServiceAccounts(c), serviceaccount.RootCAPublisher(c, ca))
	if err != nil {
		t.Fatal(err)
	}
	gCaches, hCaches := measure()
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(2 * quiet) // the sweep finds nothing to do
	awake := func() int {
		n := 0
		for _, v := range a.Awake() {
			n += v
		}
		return n
	}
	if n := awake(); n != 0 {
		t.Fatalf("%d instances awake for %d tenants with nothing to do, want 0", n, tenants)
	}
	g0, h0 := measure()
	t.Logf("%d idle tenants: activator %+d goroutines (fixed), %+.0f B heap per idle tenant",
		tenants, g0-gCaches, float64(int64(h0)-int64(hCaches))/tenants)

	// Cycle 0 adds a namespace to each woken tenant; later cycles take it
	// out of Active and back (relevant), so that the shared cache does not
	// grow and what stays after a sleep is the activator's.
	for cycle := range cycles {
		for i := range woken {
			tn := fmt.Sprintf("t%d", i)
			ns := &corev1.Namespace{ObjectMeta: meta(tn, "", "new"), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
			if cycle == 0 {
				nsWatch.Add(ns)
				continue
			}
			terminating := ns.DeepCopy()
			terminating.Status.Phase = corev1.NamespaceTerminating
			nsWatch.Modify(terminating)
			nsWatch.Modify(ns)
		}
		if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return writes.Load() >= int64(2*woken*(cycle+1)), nil
		}); err != nil {
			t.Fatalf("cycle %d: the woken instances did not write a ServiceAccount and a ConfigMap in each new namespace", cycle)
		}
		if n := awake(); n != 2*woken {
			t.Errorf("cycle %d: %d instances awake, want %d (2 controllers x %d tenants)", cycle, n, 2*woken, woken)
		}
		g1, h1 := measure()
		t.Logf("cycle %d: %d awake instances: %.1f goroutines and %.1f KiB heap per instance",
			cycle, 2*woken, float64(g1-g0)/(2*woken), float64(int64(h1)-int64(h0))/1024/(2*woken))
		if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*quiet, true, func(context.Context) (bool, error) {
			return awake() == 0, nil
		}); err != nil {
			t.Fatalf("cycle %d: instances still awake %s after their work", cycle, 10*quiet)
		}
		g2, h2 := measure()
		t.Logf("cycle %d: asleep again: %+d goroutines, %+.0f B heap per woken tenant against the first idle",
			cycle, g2-g0, float64(int64(h2)-int64(h0))/woken)
		if g2 > g0+1 {
			t.Errorf("cycle %d: %d goroutines after every instance slept, %d before: sleeping instances leak goroutines", cycle, g2, g0)
		}
	}
}
