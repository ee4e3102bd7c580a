package metrics

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/capacity"
	"github.com/kplex/kplex/metrics/bounded"
	"github.com/kplex/kplex/tenant"
)

func node(name, pool string, gpus, allocatableGPUs int64, ready bool) *corev1.Node {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	list := func(g int64) corev1.ResourceList {
		return corev1.ResourceList{capacity.GPU: *resource.NewQuantity(g, resource.DecimalSI), corev1.ResourceCPU: resource.MustParse("32")}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{schedulingv1alpha1.PoolLabel: pool}},
		Status: corev1.NodeStatus{
			Capacity: list(gpus), Allocatable: list(allocatableGPUs),
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}},
		},
	}
}

func pod(tenantName, name, nodeName string, gpus int64, cpu string, phase corev1.PodPhase, conditions ...corev1.PodCondition) *corev1.Pod {
	req := corev1.ResourceList{capacity.GPU: *resource.NewQuantity(gpus, resource.DecimalSI)}
	if cpu != "" {
		req[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{tenant.Annotation: tenantName}},
		Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Requests: req, Limits: corev1.ResourceList{capacity.GPU: req[capacity.GPU]},
		}}}},
		Status: corev1.PodStatus{Phase: phase, Conditions: conditions},
	}
}

func quota(name, pool string, nominal, borrowing string) *schedulingv1alpha1.TenantQuota {
	rq := schedulingv1alpha1.ResourceQuota{Name: capacity.GPU, NominalQuota: resource.MustParse(nominal)}
	if borrowing != "" {
		b := resource.MustParse(borrowing)
		rq.BorrowingLimit = &b
	}
	return &schedulingv1alpha1.TenantQuota{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: schedulingv1alpha1.TenantQuotaSpec{
		Pools: []schedulingv1alpha1.PoolQuota{{Name: pool, Resources: []schedulingv1alpha1.ResourceQuota{rq}}},
	}}
}

// knownReport: two pools, three tenants, known pods; one GPU of gpu-a is
// unhealthy, one of b's pods waits for quota, one of c's was never tried.
func knownReport() *capacity.Report {
	pools := []*schedulingv1alpha1.NodePool{
		{ObjectMeta: metav1.ObjectMeta{Name: "gpu-a"}, Spec: schedulingv1alpha1.NodePoolSpec{Mode: schedulingv1alpha1.Dedicated, Tenants: []string{"a"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shared"}, Spec: schedulingv1alpha1.NodePoolSpec{Mode: schedulingv1alpha1.Shared,
			Limits: corev1.ResourceList{capacity.GPU: resource.MustParse("12")}}},
	}
	nodes := []*corev1.Node{node("a1", "gpu-a", 8, 7, true), node("s1", "shared", 8, 8, true), node("s2", "shared", 8, 8, false)}
	quotas := []*schedulingv1alpha1.TenantQuota{quota("b", "shared", "2", "4")}
	pods := []*corev1.Pod{
		pod("a", "train", "a1", 4, "1", corev1.PodRunning),
		pod("a", "done", "a1", 4, "1", corev1.PodSucceeded),
		pod("b", "x", "s1", 3, "500m", corev1.PodRunning),
		pod("c", "x", "s2", 1, "", corev1.PodPending),
		pod("b", "wait", "", 2, "", corev1.PodPending, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available: 3 tenant quota nvidia.com/gpu exhausted in pool shared."}),
		pod("c", "new", "", 1, "", corev1.PodPending),
	}
	return capacity.Compute(nodes, pods, pools, quotas)
}

func TestKnownState(t *testing.T) {
	c := New(0)
	c.Set(knownReport())
	want := `
# HELP kplex_nodepool_info A node pool, with its mode (dedicated or shared); always 1.
# TYPE kplex_nodepool_info gauge
kplex_nodepool_info{mode="dedicated",pool="gpu-a"} 1
kplex_nodepool_info{mode="shared",pool="shared"} 1
# HELP kplex_nodepool_nodes Nodes in the pool.
# TYPE kplex_nodepool_nodes gauge
kplex_nodepool_nodes{pool="gpu-a"} 1
kplex_nodepool_nodes{pool="shared"} 2
# HELP kplex_nodepool_ready_nodes Nodes in the pool whose Ready condition is True.
# TYPE kplex_nodepool_ready_nodes gauge
kplex_nodepool_ready_nodes{pool="gpu-a"} 1
kplex_nodepool_ready_nodes{pool="shared"} 1
# HELP kplex_nodepool_capacity Sum of the capacity of the pool's nodes, by resource (cores, bytes or devices).
# TYPE kplex_nodepool_capacity gauge
kplex_nodepool_capacity{pool="gpu-a",resource="cpu"} 32
kplex_nodepool_capacity{pool="gpu-a",resource="nvidia.com/gpu"} 8
kplex_nodepool_capacity{pool="shared",resource="cpu"} 64
kplex_nodepool_capacity{pool="shared",resource="nvidia.com/gpu"} 16
# HELP kplex_nodepool_allocatable Sum of the allocatable resources of the pool's nodes (unhealthy GPUs excluded).
# TYPE kplex_nodepool_allocatable gauge
kplex_nodepool_allocatable{pool="gpu-a",resource="cpu"} 32
kplex_nodepool_allocatable{pool="gpu-a",resource="nvidia.com/gpu"} 7
kplex_nodepool_allocatable{pool="shared",resource="cpu"} 64
kplex_nodepool_allocatable{pool="shared",resource="nvidia.com/gpu"} 16
# HELP kplex_nodepool_requested Sum of the requests of the unfinished pods bound to the pool's nodes.
# TYPE kplex_nodepool_requested gauge
kplex_nodepool_requested{pool="gpu-a",resource="cpu"} 1
kplex_nodepool_requested{pool="gpu-a",resource="nvidia.com/gpu"} 4
kplex_nodepool_requested{pool="shared",resource="cpu"} 0.5
kplex_nodepool_requested{pool="shared",resource="nvidia.com/gpu"} 4
# HELP kplex_nodepool_limit The pool's spec.limits: what all tenants together may request there.
# TYPE kplex_nodepool_limit gauge
kplex_nodepool_limit{pool="shared",resource="nvidia.com/gpu"} 12
# HELP kplex_nodepool_unhealthy_gpus GPUs of the pool's nodes in capacity but not allocatable (marked unhealthy by the device plugin).
# TYPE kplex_nodepool_unhealthy_gpus gauge
kplex_nodepool_unhealthy_gpus{pool="gpu-a"} 1
kplex_nodepool_unhealthy_gpus{pool="shared"} 0
# HELP kplex_tenant_pool_pods A tenant's unfinished pods bound to the pool's nodes (top tenants, the rest as tenant="_other").
# TYPE kplex_tenant_pool_pods gauge
kplex_tenant_pool_pods{pool="gpu-a",tenant="a"} 1
kplex_tenant_pool_pods{pool="shared",tenant="b"} 1
kplex_tenant_pool_pods{pool="shared",tenant="c"} 1
# HELP kplex_tenant_pool_requested What a tenant's pods bound to the pool's nodes request.
# TYPE kplex_tenant_pool_requested gauge
kplex_tenant_pool_requested{pool="gpu-a",resource="cpu",tenant="a"} 1
kplex_tenant_pool_requested{pool="gpu-a",resource="nvidia.com/gpu",tenant="a"} 4
kplex_tenant_pool_requested{pool="shared",resource="cpu",tenant="b"} 0.5
kplex_tenant_pool_requested{pool="shared",resource="nvidia.com/gpu",tenant="b"} 3
kplex_tenant_pool_requested{pool="shared",resource="nvidia.com/gpu",tenant="c"} 1
# HELP kplex_tenant_quota_nominal A tenant's TenantQuota nominal quota in the pool.
# TYPE kplex_tenant_quota_nominal gauge
kplex_tenant_quota_nominal{pool="shared",resource="nvidia.com/gpu",tenant="b"} 2
# HELP kplex_tenant_quota_borrowing_limit A tenant's TenantQuota borrowing limit in the pool (absent: unlimited).
# TYPE kplex_tenant_quota_borrowing_limit gauge
kplex_tenant_quota_borrowing_limit{pool="shared",resource="nvidia.com/gpu",tenant="b"} 4
# HELP kplex_tenant_quota_borrowed What a tenant's pods in the pool request beyond its nominal quota.
# TYPE kplex_tenant_quota_borrowed gauge
kplex_tenant_quota_borrowed{pool="shared",resource="nvidia.com/gpu",tenant="b"} 1
# HELP kplex_tenant_pending_pods A tenant's pods waiting for a node, by reason (QuotaExhausted, PoolNotAllowed, InsufficientResources, SchedulingGated, Unschedulable, NotYetScheduled).
# TYPE kplex_tenant_pending_pods gauge
kplex_tenant_pending_pods{reason="NotYetScheduled",tenant="c"} 1
kplex_tenant_pending_pods{reason="QuotaExhausted",tenant="b"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// With room for two tenants, c (the fewest GPUs) is summed into _other.
func TestTopTenantsAndOther(t *testing.T) {
	c := New(2)
	c.Set(knownReport())
	for _, tc := range []struct {
		name string
		want float64
	}{
		{`kplex_tenant_pool_pods{tenant="_other",pool="shared"}`, 1},
		{`kplex_tenant_pool_requested{tenant="_other",pool="shared",resource="nvidia.com/gpu"}`, 1},
		{`kplex_tenant_pending_pods{tenant="_other",reason="NotYetScheduled"}`, 1},
		{`kplex_tenant_pool_pods{tenant="b",pool="shared"}`, 1},
		{`kplex_tenant_pool_pods{tenant="c",pool="shared"}`, -1},
	} {
		got, ok := sample(t, c, tc.name)
		if tc.want < 0 {
			if ok {
				t.Errorf("%s = %v, want no series", tc.name, got)
			}
			continue
		}
		if !ok || got != tc.want {
			t.Errorf("%s = %v (present %v), want %v", tc.name, got, ok, tc.want)
		}
	}
	// Two sources (two fleets in one process) add up; a forgotten one goes.
	c.SetFrom("other-fleet", knownReport())
	if got, _ := sample(t, c, `kplex_nodepool_nodes{pool="shared"}`); got != 4 {
		t.Errorf("two sources: shared has %v nodes, want 4", got)
	}
	c.Forget("other-fleet")
	if got, _ := sample(t, c, `kplex_nodepool_nodes{pool="shared"}`); got != 2 {
		t.Errorf("after Forget: shared has %v nodes, want 2", got)
	}
}

// sample finds one series, written name{label="value",...} in any label
// order, in what c collects.
func sample(t *testing.T, c prometheus.Collector, series string) (float64, bool) {
	t.Helper()
	name, rest, _ := strings.Cut(series, "{")
	want := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
		k, v, _ := strings.Cut(kv, "=")
		want[k] = strings.Trim(v, `"`)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if matches(m, want) {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func matches(m *dto.Metric, want map[string]string) bool {
	if len(m.GetLabel()) != len(want) {
		return false
	}
	for _, l := range m.GetLabel() {
		if want[l.GetName()] != l.GetValue() {
			return false
		}
	}
	return true
}

// fleet is n tenants on two shared pools: every tenant runs a pod in each
// pool, requests GPUs and CPU, has a quota in one and a pod pending for
// each reason.
func fleet(n int) *capacity.Report {
	pools := []*schedulingv1alpha1.NodePool{
		{ObjectMeta: metav1.ObjectMeta{Name: "p0"}, Spec: schedulingv1alpha1.NodePoolSpec{Mode: schedulingv1alpha1.Shared}},
		{ObjectMeta: metav1.ObjectMeta{Name: "p1"}, Spec: schedulingv1alpha1.NodePoolSpec{Mode: schedulingv1alpha1.Shared}},
	}
	var nodes []*corev1.Node
	for i := range 20 {
		nodes = append(nodes, node(fmt.Sprintf("n%d", i), fmt.Sprintf("p%d", i%2), 8, 8, true))
	}
	var pods []*corev1.Pod
	var quotas []*schedulingv1alpha1.TenantQuota
	reasons := []string{"0/20 nodes are available: tenant quota nvidia.com/gpu exhausted in pool p0.", "node(s) in a pool this tenant may not use", "Insufficient nvidia.com/gpu", "something else"}
	for i := range n {
		name := fmt.Sprintf("t%05d", i)
		for j := range 2 {
			p := pod(name, fmt.Sprintf("run-%d", j), fmt.Sprintf("n%d", (i+j)%20), int64(i%9), "250m", corev1.PodRunning)
			p.Spec.Containers[0].Resources.Requests["example.com/made-up"] = resource.MustParse("1")
			pods = append(pods, p)
		}
		for j, msg := range reasons {
			pods = append(pods, pod(name, fmt.Sprintf("wait-%d", j), "", 1, "", corev1.PodPending, corev1.PodCondition{
				Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: msg}))
		}
		gated := pod(name, "gated", "", 1, "", corev1.PodPending, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated})
		pods = append(pods, gated, pod(name, "new", "", 1, "", corev1.PodPending))
		quotas = append(quotas, quota(name, "p0", "4", "2"))
	}
	return capacity.Compute(nodes, pods, pools, quotas)
}

// The bound: per pool 4 series (info, nodes, ready, unhealthy) and 4 per
// resource (capacity, allocatable, requested, limit); per tenant value
// (K tenants and _other) and pool, 1 (pods) and 4 per resource
// (requested, nominal, borrowing limit, borrowed); per tenant value, one
// per pending reason.
func bound(k, pools, resources int) int {
	const reasons = 6
	return pools*(4+4*resources) + (k+1)*(pools*(1+4*resources)+reasons)
}

func TestSeriesBoundedAtManyTenants(t *testing.T) {
	const k = 100
	// The resources the nodes advertise: a pod's made-up resource makes
	// no series.
	const pools, resources = 2, 2
	for _, n := range []int{1000, 10000} {
		c := New(k)
		c.Set(fleet(n))
		got := testutil.CollectAndCount(c)
		if b := bound(k, pools, resources); got > b {
			t.Errorf("%d tenants, top %d: %d series, above the bound %d", n, k, got, b)
		} else {
			t.Logf("%d tenants, top %d: %d series (bound %d)", n, k, got, b)
		}
		tenants := map[string]bool{}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					switch {
					case l.GetName() == "tenant":
						tenants[l.GetValue()] = true
					case l.GetName() == "resource" && l.GetValue() == "example.com/made-up":
						t.Errorf("%s has a series for a resource only a pod names", f.GetName())
					}
				}
			}
		}
		if len(tenants) != k+1 || !tenants[bounded.Other] {
			t.Errorf("%d tenants: %d tenant label values (want %d, with %q)", n, len(tenants), k+1, bounded.Other)
		}
		// The top tenants are those with the most GPUs requested: i%9 == 8.
		for name := range tenants {
			var i int
			if name != bounded.Other {
				if _, err := fmt.Sscanf(name, "t%05d", &i); err != nil || i%9 != 8 {
					t.Errorf("tenant %s exported, but it does not request the most GPUs", name)
					break
				}
			}
		}
	}
}
