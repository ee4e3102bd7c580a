package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

// TestIntegrationCrossTenantWatchDeliversEveryEvent: one watch of pods
// across tenants hears of every pod that 40 tenants create at once, once.
// As kube-apiserver does, the watch cache closes a watch that falls behind
// in a burst; a client that watches again from the last resource version
// it saw (client-go's RetryWatcher, as informers do) loses nothing.
func TestIntegrationCrossTenantWatchDeliversEveryEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	names := []string{}
	for i := range 40 {
		n := fmt.Sprintf("w-%02d", i)
		e.CreateTenant(t, n)
		names = append(names, n)
	}
	cross := servertest.Client(t, crosstenant.Config(e.Admin))
	pods := cross.CoreV1().Pods("")
	list, err := pods.List(context.Background(), metav1.ListOptions{LabelSelector: "app=probe"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watchtools.NewRetryWatcherWithContext(context.Background(), list.ResourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = "app=probe"
			return pods.Watch(ctx, o)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			mu.Lock()
			if cm, ok := ev.Object.(*corev1.Pod); ok {
				seen[string(ev.Type)+" "+crosstenant.TenantOf(cm)+"/"+cm.Name]++
			}
			mu.Unlock()
		}
	}()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			cfg := rest.CopyConfig(e.Admin)
			cfg.Host += tenant.Path(n)
			cfg.QPS = -1
			c := kubernetes.NewForConfigOrDie(cfg)
			if _, err := c.CoreV1().ServiceAccounts("default").Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
			for j := range 5 {
				_, err := c.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d", j), Labels: map[string]string{"app": "probe"}}, Spec: corev1.PodSpec{ServiceAccountName: "x", AutomountServiceAccountToken: new(false), Containers: []corev1.Container{{Name: "c", Image: "i"}}}}, metav1.CreateOptions{})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Then wait for the events (or for a lost one not to come).
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= 200 {
			break
		}
	}
	w.Stop()
	<-done
	mu.Lock()
	defer mu.Unlock()
	added := 0
	for k, v := range seen {
		if k[:5] == "ADDED" {
			added += v
		}
	}
	if added != 200 {
		t.Errorf("%d ADDED events for 200 pods", added)
		for _, n := range names {
			for j := range 5 {
				k := fmt.Sprintf("ADDED %s/c%d", n, j)
				if seen[k] != 1 {
					t.Errorf("%s seen %d times", k, seen[k])
				}
			}
		}
	}
}
