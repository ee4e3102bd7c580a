package server_test

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/apiserver/server/servertest"
)

// NodePools and TenantQuotas are served in the management plane; a bad
// spec is refused with 422 naming the field, and nothing is stored.
func TestIntegrationSchedulingAPIRefusesBadSpecs(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	client, err := dynamic.NewForConfig(e.Admin)
	if err != nil {
		t.Fatal(err)
	}
	pools := client.Resource(schedulingv1alpha1.NodePoolsResource)
	quotas := client.Resource(schedulingv1alpha1.TenantQuotasResource)
	for _, good := range []string{
		`{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: gpu-a},
		  spec: {mode: dedicated, tenants: [team-a], limits: {nvidia.com/gpu: 64}, weight: 10,
		         template: {metadata: {labels: {gpu: h100}}, spec: {taints: [{key: gpu, effect: NoSchedule}]}}}}`,
		`{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: shared}, spec: {mode: shared}}`,
	} {
		if _, err := pools.Create(ctx, servertest.FromYAML(t, good), metav1.CreateOptions{}); err != nil {
			t.Fatalf("a good NodePool was refused: %v", err)
		}
	}
	if _, err := quotas.Create(ctx, servertest.FromYAML(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: TenantQuota, metadata: {name: team-a},
		spec: {fairSharing: {weight: 2}, pools: [{name: gpu-a, resources: [{name: nvidia.com/gpu, nominalQuota: 8, borrowingLimit: 4}]}]}}`), metav1.CreateOptions{}); err != nil {
		t.Fatalf("a good TenantQuota was refused: %v", err)
	}

	for _, tc := range []struct {
		what, doc, field, message string
	}{
		{"dedicated pool with two tenants", `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: bad-1},
			spec: {mode: dedicated, tenants: [a, b]}}`, "spec.tenants", "a dedicated pool names exactly one tenant"},
		{"dedicated pool with no tenant", `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: bad-2},
			spec: {mode: dedicated}}`, "spec.tenants", "a dedicated pool names exactly one tenant"},
		{"unknown mode", `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: bad-3},
			spec: {mode: private}}`, "spec.mode", "Unsupported value"},
		{"unknown pod security level", `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: bad-7},
			spec: {mode: shared, podSecurity: strict}}`, "spec.podSecurity", `Unsupported value: "strict"`},
		{"unknown sandbox", `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: bad-8},
			spec: {mode: shared, sandbox: kata}}`, "spec.sandbox", `Unsupported value: "kata"`},
		{"negative limit", `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: bad-4},
			spec: {mode: shared, limits: {nvidia.com/gpu: -1}}}`, "spec.limits[nvidia.com/gpu]", "must be a non-negative quantity"},
		{"negative quota", `{apiVersion: scheduling.kplex.io/v1alpha1, kind: TenantQuota, metadata: {name: bad-5},
			spec: {pools: [{name: gpu-a, resources: [{name: nvidia.com/gpu, nominalQuota: "-2"}]}]}}`, "spec.pools[0].resources[0].nominalQuota", "must be a non-negative quantity"},
		{"unknown pool", `{apiVersion: scheduling.kplex.io/v1alpha1, kind: TenantQuota, metadata: {name: bad-6},
			spec: {pools: [{name: gpu-a, resources: [{name: cpu, nominalQuota: 1}]}, {name: gpu-z, resources: [{name: nvidia.com/gpu, nominalQuota: 1}]}]}}`,
			"spec.pools[1].name", `"gpu-z": no NodePool of this name exists`},
	} {
		u := servertest.FromYAML(t, tc.doc)
		res := pools
		if u.GetKind() == "TenantQuota" {
			res = quotas
		}
		_, err := res.Create(ctx, u, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Errorf("%s: got %v, want 422 Invalid", tc.what, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: %v does not name %s with %q", tc.what, err, tc.field, tc.message)
		}
		if _, err := res.Get(ctx, u.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: stored anyway (%v)", tc.what, err)
		}
	}

	// A tenant does not see the management plane's pools.
	tenant, err := dynamic.NewForConfig(e.CreateTenant(t, "pools-b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tenant.Resource(schedulingv1alpha1.NodePoolsResource).List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a tenant listing nodepools: got %v, want 404", err)
	}
}
