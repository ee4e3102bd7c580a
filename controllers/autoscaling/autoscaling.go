// Package autoscaling runs upstream's horizontal pod autoscaler per tenant,
// as an activation Spec: it scales a tenant's workloads from the usage the
// apiserver serves the tenant in metrics.k8s.io.
package autoscaling

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	autoscalingv2listers "k8s.io/client-go/listers/autoscaling/v2"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/pkg/controller/podautoscaler"
	metricsclient "k8s.io/kubernetes/pkg/controller/podautoscaler/metrics"
	resourceclient "k8s.io/metrics/pkg/client/clientset/versioned/typed/metrics/v1beta1"
	"k8s.io/metrics/pkg/client/custom_metrics"
	"k8s.io/metrics/pkg/client/external_metrics"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
)

// Name names the controller.
const Name = "horizontalpodautoscaling"

// Options are kube-controller-manager's --horizontal-pod-autoscaler-*.
type Options struct {
	// SyncPeriod is how often each autoscaler is evaluated.
	SyncPeriod time.Duration
	// DownscaleStabilization is how far back the highest recommendation
	// counts before a scale down.
	DownscaleStabilization time.Duration
	// Tolerance is the ratio of usage to target within which nothing is
	// scaled.
	Tolerance float64
	// CPUInitializationPeriod: a pod's CPU samples this long after its
	// start are skipped.
	CPUInitializationPeriod time.Duration
	// InitialReadinessDelay: readiness changes this long after a pod's
	// start are taken as its initial readiness.
	InitialReadinessDelay time.Duration
}

// DefaultOptions are kube-controller-manager's defaults.
func DefaultOptions() Options {
	return Options{
		SyncPeriod:              15 * time.Second,
		DownscaleStabilization:  5 * time.Minute,
		Tolerance:               0.1,
		CPUInitializationPeriod: 5 * time.Minute,
		InitialReadinessDelay:   30 * time.Second,
	}
}

// AddFlags binds o to kube-controller-manager's flag names.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&o.SyncPeriod, "horizontal-pod-autoscaler-sync-period", o.SyncPeriod, "how often every tenant's horizontal pod autoscalers are evaluated")
	fs.DurationVar(&o.DownscaleStabilization, "horizontal-pod-autoscaler-downscale-stabilization", o.DownscaleStabilization, "an autoscaler scales down to the highest recommendation of this past window")
	fs.Float64Var(&o.Tolerance, "horizontal-pod-autoscaler-tolerance", o.Tolerance, "the ratio of usage to target within which an autoscaler does not scale")
	fs.DurationVar(&o.CPUInitializationPeriod, "horizontal-pod-autoscaler-cpu-initialization-period", o.CPUInitializationPeriod, "after a pod starts, CPU samples are skipped for this long")
	fs.DurationVar(&o.InitialReadinessDelay, "horizontal-pod-autoscaler-initial-readiness-delay", o.InitialReadinessDelay, "after a pod starts, readiness changes for this long are taken as its initial readiness")
}

// Validate names the flag of an option out of range.
func (o Options) Validate() error {
	switch {
	case o.SyncPeriod <= 0:
		return fmt.Errorf("--horizontal-pod-autoscaler-sync-period must be positive, got %s", o.SyncPeriod)
	case o.DownscaleStabilization < 0:
		return fmt.Errorf("--horizontal-pod-autoscaler-downscale-stabilization must not be negative, got %s", o.DownscaleStabilization)
	case o.Tolerance < 0:
		return fmt.Errorf("--horizontal-pod-autoscaler-tolerance must not be negative, got %g", o.Tolerance)
	}
	return nil
}

// NewCache is the cross-tenant cache of autoscalers.
func NewCache(lw cache.ListerWatcher) *crosstenant.Cache {
	return crosstenant.NewCache(lw, &autoscalingv2.HorizontalPodAutoscaler{})
}

// Spec is upstream's horizontal pod autoscaler per tenant. It works on the
// clock (every SyncPeriod), so a tenant's instance runs while the tenant
// has autoscalers, and only then.
func Spec(autoscalers *crosstenant.Cache, opts Options) activation.Spec {
	has := func(t string) bool { return len(autoscalers.InTenant(t)) > 0 }
	return activation.Spec{
		Name:     Name,
		Watch:    []*crosstenant.Cache{autoscalers},
		Relevant: func(string, any, any) bool { return true },
		Pending:  has,
		Keep:     has,
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			disc, err := discovery.NewDiscoveryClientForConfigAndClient(env.Config, env.HTTPClient)
			if err != nil {
				return nil, err
			}
			// The tenant's own discovery: its custom resources may have a
			// scale subresource.
			cached := memory.NewMemCacheClient(disc)
			mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
			scales, err := scale.NewForConfig(env.Config, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(cached))
			if err != nil {
				return nil, err
			}
			resource, err := resourceclient.NewForConfigAndClient(env.Config, env.HTTPClient)
			if err != nil {
				return nil, err
			}
			external, err := external_metrics.NewForConfig(env.Config)
			if err != nil {
				return nil, err
			}
			metrics := metricsclient.NewRESTMetricsClient(resource,
				custom_metrics.NewForConfig(env.Config, mapper, custom_metrics.NewAvailableAPIsGetter(disc)), external)
			inf := env.Informers.InformerOf(autoscalers)
			hc := podautoscaler.NewHorizontalController(ctx, env.Client.CoreV1(), scales, env.Client.AutoscalingV2(), mapper, metrics,
				informer{inf: inf, lister: autoscalingv2listers.NewHorizontalPodAutoscalerLister(inf.GetIndexer())},
				env.Informers.Core().V1().Pods(), opts.SyncPeriod, opts.DownscaleStabilization, opts.Tolerance,
				opts.CPUInitializationPeriod, opts.InitialReadinessDelay)
			return func(ctx context.Context) { hc.Run(ctx, 1) }, nil
		},
	}
}

// informer is the tenant's autoscalers as upstream's informer type.
type informer struct {
	inf    cache.SharedIndexInformer
	lister autoscalingv2listers.HorizontalPodAutoscalerLister
}

func (i informer) Informer() cache.SharedIndexInformer                        { return i.inf }
func (i informer) Lister() autoscalingv2listers.HorizontalPodAutoscalerLister { return i.lister }
