// Package namespace runs upstream's namespace controller per tenant, as an
// activation Spec: a deleted namespace is emptied of every namespaced
// resource the tenant serves (its own CRDs' included) and then removed.
package namespace

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/metadata"
	nscontroller "k8s.io/kubernetes/pkg/controller/namespace"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/controllers/activation"
)

// Name names the controller.
const Name = "namespace"

const (
	// resync is kube-controller-manager's --namespace-sync-period.
	resync = 5 * time.Minute
	// workers is fewer than kube-controller-manager's 10: these are one
	// tenant's namespaces.
	workers = 2
	// The deleter makes a discovery call and a delete per resource; like
	// kube-controller-manager (which multiplies its QPS by 20 and its
	// burst by 100 for this controller), it gets more than the others.
	qps   = 100
	burst = 500
)

func terminating(obj any) bool {
	ns, ok := obj.(*corev1.Namespace)
	return ok && ns.DeletionTimestamp != nil
}

// Spec is upstream's namespace controller per tenant, awake while the
// tenant has a namespace being deleted. namespaces is the cross-tenant
// Namespace cache.
func Spec(namespaces *crosstenant.Cache) activation.Spec {
	anyTerminating := func(t string) bool {
		for _, obj := range namespaces.InTenant(t) {
			if terminating(obj) {
				return true
			}
		}
		return false
	}
	return activation.Spec{
		Name:     Name,
		Watch:    []*crosstenant.Cache{namespaces},
		Relevant: func(_ string, _, newObj any) bool { return terminating(newObj) },
		Pending:  anyTerminating,
		// Content left over is retried on a timer (upstream re-queues
		// after half the pods' grace period): stay awake until the
		// namespace is gone.
		Keep:  anyTerminating,
		QPS:   qps,
		Burst: burst,
		Build: func(ctx context.Context, env activation.Env) (func(context.Context), error) {
			md, err := metadata.NewForConfigAndClient(env.Config, env.HTTPClient)
			if err != nil {
				return nil, err
			}
			// The tenant's own discovery: built-ins and its CRDs, never
			// another tenant's.
			discover := env.Client.Discovery().ServerPreferredNamespacedResources
			nc := nscontroller.NewNamespaceController(ctx, env.Client, md, discover,
				env.Informers.Core().V1().Namespaces(), resync, corev1.FinalizerKubernetes)
			return func(ctx context.Context) { nc.Run(ctx, workers) }, nil
		},
	}
}
