// Package nodelifecycle runs upstream's node lifecycle and taint eviction
// controllers once for the management plane: nodes and their Leases are
// root's, the pods on a node are every tenant's. A node whose Lease
// expires is marked NotReady (and tainted) in root, its pods are marked not
// ready in their own tenants, and pods that do not tolerate the taint are
// evicted from every tenant.
//
// Unlike the tenant controllers these are not per tenant: their unit of
// work is a node. They read every tenant's pods through one informer with
// namespaces joined tenant~namespace (package tenantns), and their writes
// go back to each pod's tenant through tenantns's router.
package nodelifecycle

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appsv1listers "k8s.io/client-go/listers/apps/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/pkg/controller/nodelifecycle"
	"k8s.io/kubernetes/pkg/controller/tainteviction"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/crosstenant/tenantns"
)

// Defaults of Options: kube-controller-manager's.
const (
	DefaultMonitorPeriod      = 5 * time.Second
	DefaultStartupGracePeriod = time.Minute
	DefaultMonitorGracePeriod = 50 * time.Second

	evictionQPS            = 0.1
	secondaryEvictionQPS   = 0.01
	largeClusterThreshold  = 50
	unhealthyZoneThreshold = 0.55
)

// Options configure the controllers. Zero durations take the defaults.
type Options struct {
	// Loopback is a config of root with the right to read every tenant's
	// pods and to write in every tenant (system:masters). Required.
	Loopback *rest.Config
	// MonitorPeriod is how often node health is checked
	// (--node-monitor-period).
	MonitorPeriod time.Duration
	// StartupGracePeriod is how long a new node may be unready
	// (--node-startup-grace-period).
	StartupGracePeriod time.Duration
	// MonitorGracePeriod is how long a node's Lease may go unrenewed
	// before it is NotReady (--node-monitor-grace-period).
	MonitorGracePeriod time.Duration
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

type podInformer struct{ inf cache.SharedIndexInformer }

func (p podInformer) Informer() cache.SharedIndexInformer { return p.inf }
func (p podInformer) Lister() corev1listers.PodLister {
	return corev1listers.NewPodLister(p.inf.GetIndexer())
}

type daemonSetInformer struct{ inf cache.SharedIndexInformer }

func (d daemonSetInformer) Informer() cache.SharedIndexInformer { return d.inf }
func (d daemonSetInformer) Lister() appsv1listers.DaemonSetLister {
	return appsv1listers.NewDaemonSetLister(d.inf.GetIndexer())
}

// Run runs both controllers until ctx ends.
func Run(ctx context.Context, opts Options) error {
	if opts.Loopback == nil {
		return fmt.Errorf("nodelifecycle: Options.Loopback is required")
	}
	root, err := kubernetes.NewForConfig(opts.Loopback)
	if err != nil {
		return err
	}
	cross, err := kubernetes.NewForConfig(crosstenant.Config(opts.Loopback))
	if err != nil {
		return err
	}
	// Writes are JSON, so that the router can name namespaces back.
	cfg := rest.CopyConfig(opts.Loopback)
	cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
	cfg.UserAgent = "kplex-controller-manager/node-lifecycle"
	cfg.Wrap(tenantns.Router)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(root, 0)
	nodes, leases := factory.Core().V1().Nodes(), factory.Coordination().V1().Leases()
	pods := cache.NewSharedIndexInformer(crosstenant.ListWatch(cross.CoreV1().RESTClient(), "pods"), &corev1.Pod{}, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	daemonSets := cache.NewSharedIndexInformer(crosstenant.ListWatch(cross.AppsV1().RESTClient(), "daemonsets"), &appsv1.DaemonSet{}, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, inf := range []cache.SharedIndexInformer{pods, daemonSets} {
		if err := inf.SetTransform(tenantns.Transform); err != nil {
			return err
		}
	}
	lifecycle, err := nodelifecycle.NewNodeLifecycleController(ctx, leases, podInformer{pods}, nodes, daemonSetInformer{daemonSets}, client,
		orDefault(opts.MonitorPeriod, DefaultMonitorPeriod),
		orDefault(opts.StartupGracePeriod, DefaultStartupGracePeriod),
		orDefault(opts.MonitorGracePeriod, DefaultMonitorGracePeriod),
		evictionQPS, secondaryEvictionQPS, largeClusterThreshold, unhealthyZoneThreshold)
	if err != nil {
		return fmt.Errorf("node lifecycle controller: %w", err)
	}
	eviction, err := tainteviction.New(ctx, client, podInformer{pods}, nodes, "taint-eviction-controller")
	if err != nil {
		return fmt.Errorf("taint eviction controller: %w", err)
	}
	factory.Start(ctx.Done())
	go pods.RunWithContext(ctx)
	go daemonSets.RunWithContext(ctx)
	done := make(chan struct{}, 2)
	go func() { lifecycle.Run(ctx); done <- struct{}{} }()
	go func() { eviction.Run(ctx); done <- struct{}{} }()
	<-done
	<-done
	factory.Shutdown()
	return nil
}
