package pools

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/tenant"
)

func TestRuntimeHandlerFor(t *testing.T) {
	withGVisor := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "g"}, Status: corev1.NodeStatus{RuntimeHandlers: []corev1.NodeRuntimeHandler{{Name: "runsc"}}}}
	plain := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	pool := func(mode schedulingv1alpha1.PoolMode, sandbox schedulingv1alpha1.Sandbox) *schedulingv1alpha1.NodePool {
		return &schedulingv1alpha1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "pool"}, Spec: schedulingv1alpha1.NodePoolSpec{Mode: mode, Sandbox: sandbox}}
	}
	for _, tc := range []struct {
		name      string
		tenant    string
		pool      *schedulingv1alpha1.NodePool
		node      *corev1.Node
		requested string
		want      string
		wantErr   string
	}{
		{"shared pool sandboxes where it can", "a", pool(schedulingv1alpha1.Shared, ""), withGVisor, "", "runsc", ""},
		{"whatever the pod asks", "a", pool(schedulingv1alpha1.Shared, ""), withGVisor, "runc", "runsc", ""},
		{"no pool is shared", "a", nil, withGVisor, "", "runsc", ""},
		{"shared pool without gVisor runs the default", "a", pool(schedulingv1alpha1.Shared, ""), plain, "", "", ""},
		{"dedicated pool: the pod chooses", "a", pool(schedulingv1alpha1.Dedicated, ""), withGVisor, "", "", ""},
		{"dedicated pool: the pod asks gVisor", "a", pool(schedulingv1alpha1.Dedicated, ""), withGVisor, "runsc", "runsc", ""},
		{"root chooses on a shared pool", tenant.Root, pool(schedulingv1alpha1.Shared, ""), withGVisor, "", "", ""},
		{"pool requires gVisor, root too", tenant.Root, pool(schedulingv1alpha1.Dedicated, schedulingv1alpha1.SandboxGVisor), withGVisor, "", "runsc", ""},
		{"pool requires gVisor the node lacks", "a", pool(schedulingv1alpha1.Shared, schedulingv1alpha1.SandboxGVisor), plain, "", "", "pool pool requires the gvisor sandbox"},
		{"pool opts out of sandboxing", "a", pool(schedulingv1alpha1.Shared, schedulingv1alpha1.SandboxNone), withGVisor, "", "", ""},
		{"the pod asks a handler the node lacks", "a", pool(schedulingv1alpha1.Dedicated, ""), plain, "kata", "", `no runtime handler "kata"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RuntimeHandlerFor(tc.tenant, tc.pool, tc.node, tc.requested)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("RuntimeHandlerFor = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
