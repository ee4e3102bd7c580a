// Package endpoints runs upstream's endpoints and endpointslice
// controllers per tenant, as activation Specs: a tenant's Services select
// its own pods only, and its Endpoints and EndpointSlices are written in it.
package endpoints

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/kubernetes/pkg/controller/endpoint"
	"k8s.io/kubernetes/pkg/controller/endpointslice"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
)

// Controller names.
const (
	EndpointsName     = "endpoints"
	EndpointSliceName = "endpointslice"
)

// maxEndpointsPerSlice is kube-controller-manager's default.
const maxEndpointsPerSlice = 100

// Caches are the cross-tenant caches the controllers read.
type Caches struct {
	Services       *crosstenant.Cache
	Pods           *crosstenant.Cache
	Endpoints      *crosstenant.Cache
	EndpointSlices *crosstenant.Cache
	// Nodes are root's, read for topology by every tenant.
	Nodes *crosstenant.Cache
}

func selects(svc *corev1.Service) bool { return len(svc.Spec.Selector) != 0 }

// spec is what both controllers share: awake while a tenant with Services
// that select pods changes its Services, pods or endpoints.
func spec(c Caches, name string, missing func(t string, svc *corev1.Service) bool, build func(ctx context.Context, env activation.Env) (func(context.Context), error)) activation.Spec {
	selecting := func(t string) []*corev1.Service {
		var out []*corev1.Service
		for _, obj := range c.Services.InTenant(t) {
			if svc := obj.(*corev1.Service); selects(svc) {
				out = append(out, svc)
			}
		}
		return out
	}
	return activation.Spec{
		Name:  name,
		Watch: []*crosstenant.Cache{c.Services, c.Pods, c.Endpoints, c.EndpointSlices},
		Relevant: func(t string, oldObj, newObj any) bool {
			for _, obj := range []any{crosstenant.Unwrap(oldObj), newObj} {
				if svc, ok := obj.(*corev1.Service); ok && selects(svc) {
					return true
				}
			}
			// Any pod or endpoints change, in a tenant with a Service
			// that selects pods (checked without building a list: this
			// runs for every change in every tenant).
			for _, obj := range c.Services.InTenant(t) {
				if selects(obj.(*corev1.Service)) {
					return true
				}
			}
			return false
		},
		// What changed while the manager was down: a selecting Service
		// without its endpoints. (Changed pods are found once a Service or
		// pod event wakes the tenant again.)
		Pending: func(t string) bool {
			for _, svc := range selecting(t) {
				if missing(t, svc) {
					return true
				}
			}
			return false
		},
		Build: build,
	}
}

// Endpoints is upstream's endpoints controller per tenant.
func Endpoints(c Caches) activation.Spec {
	missing := func(t string, svc *corev1.Service) bool {
		return c.Endpoints.Get(t, svc.Namespace, svc.Name) == nil
	}
	return spec(c, EndpointsName, missing, func(ctx context.Context, env activation.Env) (func(context.Context), error) {
		core := env.Informers.Core().V1()
		ec := endpoint.NewEndpointController(ctx, core.Pods(), core.Services(), core.Endpoints(), env.Client, 0)
		return func(ctx context.Context) { ec.Run(ctx, 1) }, nil
	})
}

// EndpointSlices is upstream's endpointslice controller per tenant.
func EndpointSlices(c Caches) activation.Spec {
	missing := func(t string, svc *corev1.Service) bool {
		for _, obj := range c.EndpointSlices.InNamespace(t, svc.Namespace) {
			if obj.(*discoveryv1.EndpointSlice).Labels[discoveryv1.LabelServiceName] == svc.Name {
				return false
			}
		}
		return true
	}
	return spec(c, EndpointSliceName, missing, func(ctx context.Context, env activation.Env) (func(context.Context), error) {
		core := env.Informers.Core().V1()
		esc := endpointslice.NewController(ctx, core.Pods(), core.Services(), core.Nodes(),
			env.Informers.Discovery().V1().EndpointSlices(), maxEndpointsPerSlice, env.Client, 0)
		return func(ctx context.Context) { esc.Run(ctx, 1) }, nil
	})
}
