package activation

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Metrics of every Activator in the process, by controller.
var (
	awakeInstances = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace:      "kplex",
		Subsystem:      "tenant_controllers",
		Name:           "awake",
		Help:           "Tenant controller instances awake, by controller.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"controller"})
	wakes = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "kplex",
		Subsystem:      "tenant_controllers",
		Name:           "wakes_total",
		Help:           "Tenant controller instances built, by controller.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"controller"})
	sleeps = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "kplex",
		Subsystem:      "tenant_controllers",
		Name:           "sleeps_total",
		Help:           "Tenant controller instances stopped after their quiet period, by controller.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"controller"})
)

var registerMetrics sync.Once

func init() {
	registerMetrics.Do(func() {
		legacyregistry.MustRegister(awakeInstances, wakes, sleeps)
	})
}
