package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

const (
	benchReplicas = 3
	benchApp      = "bench-web"
	// aloneTenants are timed one after another (the baseline), then
	// togetherTenants at once.
	aloneTenants    = 5
	togetherTenants = 100
	// busyReplicas are what one tenant scales to while besideTenants, one
	// at a time, time their small deployment.
	busyReplicas  = 300
	besideTenants = 5
)

// deployments are the times from creating a Deployment of benchReplicas
// to that many pods existing, in tenants one at a time, all at once, and
// one at a time beside a busy tenant.
type deployments struct {
	alone, together, beside []time.Duration
	// busyPods is how many pods the busy tenant had when the last of
	// beside was timed.
	busyPods int
}

// podCounter counts, from one cross-tenant watch, each tenant's bench pods
// and tells when one reaches benchReplicas.
type podCounter struct {
	mu      sync.Mutex
	seen    map[string]map[string]bool // tenant → pod names
	reached map[string]chan struct{}
}

func (c *podCounter) wait(t string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.reached[t]
	if !ok {
		ch = make(chan struct{})
		c.reached[t] = ch
	}
	return ch
}

func (c *podCounter) add(p *corev1.Pod) {
	t := crosstenant.TenantOf(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[t] == nil {
		c.seen[t] = map[string]bool{}
	}
	c.seen[t][p.Name] = true
	if len(c.seen[t]) == benchReplicas {
		ch, ok := c.reached[t]
		if !ok {
			ch = make(chan struct{})
			c.reached[t] = ch
		}
		close(ch)
	}
}

// measureDeployments times Deployments in tenants whose controllers sleep:
// aloneTenants one at a time, then togetherTenants at once. The names
// must hold that many tenants.
func measureDeployments(admin *rest.Config, names []string) (*deployments, error) {
	if len(names) < aloneTenants+togetherTenants {
		return nil, fmt.Errorf("%d tenants, need %d", len(names), aloneTenants+togetherTenants)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cross, err := kubernetes.NewForConfig(crosstenant.Config(admin))
	if err != nil {
		return nil, err
	}
	w, err := watchFrom(ctx, cross.CoreV1().Pods(""), metav1.ListOptions{LabelSelector: "app=" + benchApp})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	counter := &podCounter{seen: map[string]map[string]bool{}, reached: map[string]chan struct{}{}}
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted {
				counter.add(p)
			}
		}
	}()
	one := func(t string) (time.Duration, error) {
		c, err := kubernetes.NewForConfig(tenantConfig(admin, t))
		if err != nil {
			return 0, err
		}
		reached := counter.wait(t)
		began := time.Now()
		if _, err := c.AppsV1().Deployments("default").Create(ctx, benchDeployment(), metav1.CreateOptions{}); err != nil {
			return 0, fmt.Errorf("tenant %s: %w", t, err)
		}
		select {
		case <-reached:
			return time.Since(began), nil
		case <-time.After(2 * time.Minute):
			counter.mu.Lock()
			defer counter.mu.Unlock()
			return 0, fmt.Errorf("tenant %s: %d pods of %d after 2 minutes", t, len(counter.seen[t]), benchReplicas)
		}
	}
	out := &deployments{}
	for _, t := range names[:aloneTenants] {
		d, err := one(t)
		if err != nil {
			return nil, err
		}
		out.alone = append(out.alone, d)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for _, t := range names[aloneTenants : aloneTenants+togetherTenants] {
		wg.Go(func() {
			d, err := one(t)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out.together = append(out.together, d)
		})
	}
	wg.Wait()
	if firstErr != nil {
		return out, firstErr
	}
	rest := names[aloneTenants+togetherTenants:]
	if len(rest) < 1+besideTenants {
		return out, nil
	}
	busy := rest[0]
	cfg := tenantConfig(admin, busy)
	bc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	d := benchDeployment()
	d.Name, d.Spec.Replicas = "busy", new(int32(busyReplicas))
	if _, err := bc.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("tenant %s: %w", busy, err)
	}
	time.Sleep(time.Second) // its replicaset is creating pods
	for _, t := range rest[1 : 1+besideTenants] {
		d, err := one(t)
		if err != nil {
			// The figures so far stand; this one is left out.
			progress("beside a busy tenant: %v", err)
			return out, nil
		}
		out.beside = append(out.beside, d)
	}
	busyPods, err := bc.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + benchApp})
	if err != nil {
		return nil, err
	}
	out.busyPods = len(busyPods.Items)
	return out, nil
}

// tenantConfig is admin's config of tenant t's path, without client-side
// rate limits.
func tenantConfig(admin *rest.Config, t string) *rest.Config {
	cfg := rest.CopyConfig(admin)
	cfg.Host += tenant.Path(t)
	cfg.QPS, cfg.Burst = -1, -1
	return cfg
}

func benchDeployment() *appsv1.Deployment {
	labels := map[string]string{"app": benchApp}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: benchApp},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(benchReplicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "busybox"}}},
			},
		},
	}
}
