// Package preemption is upstream's DefaultPreemption confined to a tenant:
// a pod may preempt lower-priority pods of its own tenant only. A tenant
// names its own PriorityClasses, so priorities of two tenants say nothing
// about each other; without this, any tenant could evict every other
// tenant's pods from a shared pool by writing a high priority.
package preemption

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultpreemption"
	plfeature "k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	upstream "k8s.io/kubernetes/pkg/scheduler/framework/preemption"

	"github.com/kplex/kplex/scheduler/tenancy"
)

// Name is the plugin's name in scheduler profiles; it replaces
// DefaultPreemption.
const Name = "KplexPreemption"

// Plugin is DefaultPreemption under kplex's name.
type Plugin struct {
	*defaultpreemption.DefaultPreemption
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// New builds upstream's preemption with victims limited to the
// preemptor's tenant.
func New(ctx context.Context, args runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	if args == nil {
		args = &config.DefaultPreemptionArgs{MinCandidateNodesPercentage: 10, MinCandidateNodesAbsolute: 100}
	}
	dp, err := defaultpreemption.New(ctx, args, h, plfeature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	dp.IsEligiblePod = SameTenant
	return &Plugin{dp}, nil
}

// SameTenant allows a victim only of the preemptor's tenant.
func SameTenant(_ fwk.NodeInfo, victim upstream.Victim, preemptor *corev1.Pod) bool {
	want := tenancy.TenantOf(preemptor.Namespace)
	for _, p := range victim.Pods() {
		if tenancy.TenantOf(p.GetPod().Namespace) != want {
			return false
		}
	}
	return true
}
