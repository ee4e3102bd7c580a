package nodeagent

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kplex/kplex/tenant"
)

// A tenant's pod sharing a node namespace runs only on a node fenced to
// that tenant, whatever its Pod Security level let through; root's run
// anywhere.
func TestRefuseHostNamespaces(t *testing.T) {
	shared := &Agent{cfg: &Config{}, name: "shared-1", net: &podNetwork{cni: true}}
	fenced := &Agent{cfg: &Config{Tenant: "a"}, name: "a-1", net: &podNetwork{cni: true}}
	hostOnly := &Agent{cfg: &Config{}, name: "host-1"} // --network=host: every pod is on the node's network
	with := func(f func(*v1.Pod)) *v1.Pod { p := &v1.Pod{}; f(p); return p }
	hostNetwork := with(func(p *v1.Pod) { p.Spec.HostNetwork = true })
	hostPID := with(func(p *v1.Pod) { p.Spec.HostPID = true })
	hostIPC := with(func(p *v1.Pod) { p.Spec.HostIPC = true })
	plain := with(func(*v1.Pod) {})
	for _, tc := range []struct {
		name       string
		agent      *Agent
		tenant     string
		pod        *v1.Pod
		wantReason string
		wantIn     string
	}{
		{"hostNetwork on a shared node", shared, "a", hostNetwork, "HostNetworkRefused", "node shared-1 is shared"},
		{"hostPID on a shared node", shared, "a", hostPID, "HostNamespaceRefused", "hostPID pods of tenant a run only on nodes fenced to it"},
		{"hostIPC on a shared node", shared, "a", hostIPC, "HostNamespaceRefused", "hostIPC pods of tenant a"},
		{"hostPID on a shared host-network node", hostOnly, "a", hostPID, "HostNamespaceRefused", "hostPID"},
		{"hostNetwork on a host-network node", hostOnly, "a", hostNetwork, "", ""},
		{"plain pod on a shared node", shared, "a", plain, "", ""},
		{"hostPID on the tenant's own node", fenced, "a", hostPID, "", ""},
		{"hostNetwork on the tenant's own node", fenced, "a", hostNetwork, "", ""},
		{"another tenant on a fenced node", fenced, "b", hostPID, "HostNamespaceRefused", "tenant b"},
		{"root's hostPID pod", shared, tenant.Root, hostPID, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, msg := tc.agent.refuseHostNamespaces(context.Background(), tc.tenant, tc.pod)
			if reason != tc.wantReason || !strings.Contains(msg, tc.wantIn) || (tc.wantReason == "") != (msg == "") {
				t.Errorf("refuseHostNamespaces = %q, %q; want %q containing %q", reason, msg, tc.wantReason, tc.wantIn)
			}
		})
	}
}
