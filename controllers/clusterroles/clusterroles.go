// Package clusterroles runs upstream's ClusterRole aggregation controller
// for the management plane. Its aggregated roles (admin, edit, view and the
// system:aggregate-to-* parts) are root's bootstrap policy, which every
// tenant reads as its own: without this controller they have no rules, and
// a tenant's `kubectl create rolebinding --clusterrole=view` grants nothing.
package clusterroles

import (
	"context"
	"fmt"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/pkg/controller/clusterroleaggregation"
)

// Run aggregates root's ClusterRoles until ctx ends. loopback addresses
// the management plane.
func Run(ctx context.Context, loopback *rest.Config) error {
	client, err := kubernetes.NewForConfig(loopback)
	if err != nil {
		return fmt.Errorf("clusterrole aggregation: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	roles := factory.Rbac().V1().ClusterRoles()
	c := clusterroleaggregation.NewClusterRoleAggregation(roles, client.RbacV1())
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), roles.Informer().HasSynced) {
		return nil
	}
	c.Run(ctx, 1)
	return nil
}
