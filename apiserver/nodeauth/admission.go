package nodeauth

import (
	"context"
	"fmt"
	"io"

	"k8s.io/apiserver/pkg/admission"
	"k8s.io/kubernetes/pkg/apis/coordination"
	api "k8s.io/kubernetes/pkg/apis/core"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/tenant"
)

// PluginName is the admission plugin that checks what the authorizer
// cannot see: the names and labels in a node's objects.
const PluginName = "NodeIdentity"

// Admission refuses a node agent's Node or Lease named for another node,
// and a change of its own pool: a node that could move itself into a pool
// dedicated to a tenant would be sent that tenant's pods. (Registration
// names the pool, from the node's own configuration, as the kubelet's
// --node-labels do.)
type Admission struct{ *admission.Handler }

var _ admission.ValidationInterface = &Admission{}

// NewAdmission returns the plugin.
func NewAdmission() *Admission {
	return &Admission{Handler: admission.NewHandler(admission.Create, admission.Update)}
}

// Register adds the plugin to plugins as PluginName.
func (p *Admission) Register(plugins *admission.Plugins) {
	plugins.Register(PluginName, func(io.Reader) (admission.Interface, error) { return p, nil })
}

// Validate checks node agents' Nodes and Leases.
func (p *Admission) Validate(ctx context.Context, a admission.Attributes, _ admission.ObjectInterfaces) error {
	node, ok := NodeName(a.GetUserInfo())
	if !ok || tenant.FromContext(ctx) != tenant.Root || a.GetSubresource() != "" {
		return nil
	}
	switch obj := a.GetObject().(type) {
	case *api.Node:
		if obj.Name != node {
			return admission.NewForbidden(a, fmt.Errorf("node %s may not write Node %s", node, obj.Name))
		}
		if old, ok := a.GetOldObject().(*api.Node); ok && old.Labels[schedulingv1alpha1.PoolLabel] != obj.Labels[schedulingv1alpha1.PoolLabel] {
			return admission.NewForbidden(a, fmt.Errorf("node %s may not change its label %s (from %q to %q): its pool is the operator's", node, schedulingv1alpha1.PoolLabel, old.Labels[schedulingv1alpha1.PoolLabel], obj.Labels[schedulingv1alpha1.PoolLabel]))
		}
	case *coordination.Lease:
		if obj.Name != node {
			return admission.NewForbidden(a, fmt.Errorf("node %s may not write Lease %s/%s", node, obj.Namespace, obj.Name))
		}
	}
	return nil
}
