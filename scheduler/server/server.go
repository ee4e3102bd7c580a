// Package server builds upstream's kube-scheduler over every tenant: its
// pods, namespaces and claims come from one cross-tenant informer each,
// with namespaces joined tenant~namespace (client/crosstenant/tenantns);
// its writes (bindings, status, events, evictions) are routed back to each
// pod's tenant; and every profile runs the tenancy plugin, which fences
// pools, enforces quotas and orders the queue by fair share.
package server

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	schedulerserverconfig "k8s.io/kubernetes/cmd/kube-scheduler/app/config"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler"
	kubeschedulerconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/latest"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultpreemption"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/profile"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/crosstenant/tenantns"
	"github.com/kplex/kplex/scheduler/preemption"
	"github.com/kplex/kplex/scheduler/tenancy"
)

// Setup is upstream's app.Setup with kplex's clients, informers and
// plugins: opts are kube-scheduler's options, its kubeconfig root's with
// the right to read every tenant (system:masters).
func Setup(ctx context.Context, opts *options.Options) (*schedulerserverconfig.CompletedConfig, *scheduler.Scheduler, error) {
	cfg, err := latest.Default()
	if err != nil {
		return nil, nil, err
	}
	opts.ComponentConfig = cfg
	if errs := opts.Validate(); len(errs) > 0 {
		return nil, nil, utilerrors.NewAggregate(errs)
	}
	c, err := opts.Config(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := acrossTenants(ctx, c); err != nil {
		return nil, nil, err
	}
	cc := c.Complete()
	for i := range cc.ComponentConfig.Profiles {
		requireTenancy(&cc.ComponentConfig.Profiles[i])
	}
	registry := frameworkruntime.Registry{
		tenancy.Name:    tenancy.New,
		preemption.Name: preemption.New,
	}
	recorders := profile.RecorderFactory(func(name string) events.EventRecorderLogger {
		return cc.EventBroadcaster.NewRecorder(name)
	})
	sched, err := scheduler.New(ctx, cc.Client, cc.InformerFactory, cc.DynInformerFactory, recorders,
		scheduler.WithComponentConfigVersion(cc.ComponentConfig.TypeMeta.APIVersion),
		scheduler.WithKubeConfig(cc.KubeConfig),
		scheduler.WithProfiles(cc.ComponentConfig.Profiles...),
		scheduler.WithPercentageOfNodesToScore(cc.ComponentConfig.PercentageOfNodesToScore),
		scheduler.WithFrameworkOutOfTreeRegistry(registry),
		scheduler.WithPodMaxBackoffSeconds(cc.ComponentConfig.PodMaxBackoffSeconds),
		scheduler.WithPodInitialBackoffSeconds(cc.ComponentConfig.PodInitialBackoffSeconds),
		scheduler.WithPodMaxInUnschedulablePodsDuration(cc.PodMaxInUnschedulablePodsDuration),
		scheduler.WithExtenders(cc.ComponentConfig.Extenders...),
		scheduler.WithParallelism(cc.ComponentConfig.Parallelism),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("building the scheduler: %w", err)
	}
	return &cc, sched, nil
}

// requireTenancy puts the tenancy plugin in a profile, whatever a config
// file says: fencing is never optional. It takes the places of the queue
// sort, the binder and the preemption plugin.
func requireTenancy(p *kubeschedulerconfig.KubeSchedulerProfile) {
	if p.Plugins == nil {
		p.Plugins = &kubeschedulerconfig.Plugins{}
	}
	mp := &p.Plugins.MultiPoint
	for _, name := range []string{queuesort.Name, defaultbinder.Name, defaultpreemption.Name} {
		if !slices.ContainsFunc(mp.Disabled, func(pl kubeschedulerconfig.Plugin) bool { return pl.Name == name }) {
			mp.Disabled = append(mp.Disabled, kubeschedulerconfig.Plugin{Name: name})
		}
		mp.Enabled = slices.DeleteFunc(mp.Enabled, func(pl kubeschedulerconfig.Plugin) bool { return pl.Name == name })
	}
	for _, set := range []*kubeschedulerconfig.PluginSet{&p.Plugins.QueueSort, &p.Plugins.Bind, &p.Plugins.PostFilter} {
		set.Enabled = nil
	}
	for _, pl := range []kubeschedulerconfig.Plugin{{Name: tenancy.Name, Weight: tenancy.ScoreWeight}, {Name: preemption.Name}} {
		if !slices.ContainsFunc(mp.Enabled, func(have kubeschedulerconfig.Plugin) bool { return have.Name == pl.Name }) {
			mp.Enabled = append(mp.Enabled, pl)
		}
	}
	// Preemption keeps upstream's arguments, under the new name.
	for i, a := range p.PluginConfig {
		if a.Name == defaultpreemption.Name {
			p.PluginConfig = append(p.PluginConfig, kubeschedulerconfig.PluginConfig{Name: preemption.Name, Args: a.Args})
			p.PluginConfig = slices.Delete(p.PluginConfig, i, i+1)
			break
		}
	}
}

// acrossTenants replaces the clients and informers opts.Config made for
// one cluster with ones that see every tenant.
func acrossTenants(ctx context.Context, c *schedulerserverconfig.Config) error {
	root := c.KubeConfig
	// Writes name joined namespaces; the router sends them to the tenant.
	// It rewrites JSON bodies, so the writing client speaks JSON.
	routed := rest.CopyConfig(root)
	routed.ContentType, routed.AcceptContentTypes = "application/json", "application/json"
	routed.Wrap(tenantns.Router)
	client, err := kubernetes.NewForConfig(rest.AddUserAgent(routed, "kplex-scheduler"))
	if err != nil {
		return err
	}
	reader, err := kubernetes.NewForConfig(rest.AddUserAgent(root, "kplex-scheduler"))
	if err != nil {
		return err
	}
	cross, err := kubernetes.NewForConfig(rest.AddUserAgent(crosstenant.Config(root), "kplex-scheduler"))
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(root)
	if err != nil {
		return err
	}
	c.KubeConfig = routed
	c.Client = client
	c.EventBroadcaster = events.NewEventBroadcasterAdapterWithContext(ctx, client)
	c.InformerFactory = InformerFactory(reader, cross)
	c.DynInformerFactory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, corev1.NamespaceAll, nil)
	klog.FromContext(ctx).V(1).Info("Scheduling across tenants", "server", root.Host)
	return nil
}

// InformerFactory serves root's objects (nodes, storage classes, ...)
// from root, and tenants' pods, namespaces and claims from one
// cross-tenant informer each, namespaces joined. Pods that ended are not
// watched, as upstream's scheduler does not.
func InformerFactory(root, cross kubernetes.Interface) informers.SharedInformerFactory {
	f := informers.NewSharedInformerFactory(root, 0)
	acrossTenants := func(example runtime.Object, resource string, selector fields.Selector) {
		f.InformerFor(example, func(kubernetes.Interface, time.Duration) cache.SharedIndexInformer {
			lw := crosstenant.ListWatchSelected(cross.CoreV1().RESTClient(), resource, selector)
			inf := cache.NewSharedIndexInformer(lw, example, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
			_ = inf.SetTransform(func(obj any) (any, error) {
				if m, err := meta.Accessor(obj); err == nil {
					m.SetManagedFields(nil)
				}
				return tenantns.Transform(obj)
			})
			return inf
		})
	}
	acrossTenants(&corev1.Pod{}, "pods", fields.ParseSelectorOrDie(fmt.Sprintf("status.phase!=%s,status.phase!=%s", corev1.PodSucceeded, corev1.PodFailed)))
	acrossTenants(&corev1.Namespace{}, "namespaces", fields.Everything())
	acrossTenants(&corev1.PersistentVolumeClaim{}, "persistentvolumeclaims", fields.Everything())
	return f
}
