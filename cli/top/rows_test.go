package top

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kplex/kplex/capacity"
)

func list(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

// report is a fleet: gpu-a dedicated to a (8 GPUs, 1 unhealthy), shared
// (8 GPUs), and a node in no pool; b has a quota in shared and borrows.
func report() *capacity.Report {
	return &capacity.Report{
		Pools: []capacity.Pool{
			{Name: "", Nodes: 1, ReadyNodes: 1, Capacity: list("cpu", "4"), Allocatable: list("cpu", "4", "memory", "8Gi"), Requested: list("cpu", "250m")},
			{Name: "gpu-a", Mode: "dedicated", Tenants: []string{"a"}, Nodes: 1, ReadyNodes: 1,
				Capacity: list("nvidia.com/gpu", "8"), Allocatable: list("nvidia.com/gpu", "7", "cpu", "8", "memory", "32Gi"),
				Requested: list("nvidia.com/gpu", "6", "cpu", "1", "memory", "2Gi"), Limits: list("nvidia.com/gpu", "64")},
			{Name: "shared", Mode: "shared", Nodes: 2, ReadyNodes: 1, Sandbox: "gvisor", SandboxedNodes: 1,
				Capacity: list("nvidia.com/gpu", "8"), Allocatable: list("nvidia.com/gpu", "8", "cpu", "16", "memory", "64Gi"),
				Requested: list("nvidia.com/gpu", "7", "cpu", "1500m", "memory", "1536Mi")},
		},
		TenantPools: []capacity.TenantPool{
			{Tenant: "a", Pool: "gpu-a", Pods: 2, Requested: list("nvidia.com/gpu", "6", "cpu", "1", "memory", "2Gi")},
			{Tenant: "b", Pool: "shared", Pods: 2, Requested: list("nvidia.com/gpu", "4", "cpu", "1"),
				Nominal: list("nvidia.com/gpu", "2"), BorrowingLimit: list("nvidia.com/gpu", "2"), Borrowed: list("nvidia.com/gpu", "2")},
			{Tenant: "c", Pool: "", Pods: 1, Requested: list("cpu", "250m")},
			{Tenant: "c", Pool: "shared", Pods: 1, Requested: list("nvidia.com/gpu", "1", "cpu", "500m"),
				Nominal: list("nvidia.com/gpu", "4"), BorrowingLimit: list(), Borrowed: list("nvidia.com/gpu", "0")},
		},
		Pending: []capacity.Pending{
			{Tenant: "b", Reason: capacity.ReasonQuota, Pods: 3, Requested: list("nvidia.com/gpu", "3")},
			{Tenant: "b", Reason: capacity.ReasonFenced, Pods: 1, Requested: list("nvidia.com/gpu", "1")},
			{Tenant: "d", Reason: capacity.ReasonNotTried, Pods: 1, Requested: list("cpu", "1")},
		},
	}
}

func names[T any](rows []T, name func(T) string) string {
	var s []string
	for _, r := range rows {
		s = append(s, name(r))
	}
	return strings.Join(s, ",")
}

func TestPoolsOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		by   Sort
		want string
	}{
		{SortName, "gpu-a,shared,"},
		{SortGPU, "shared,gpu-a,"},
		{SortCPU, "shared,gpu-a,"},
	} {
		got := names(Pools(report(), tc.by), func(p Pool) string { return p.Name })
		if got != tc.want {
			t.Errorf("--sort-by %s: %s, want %s", tc.by, got, tc.want)
		}
	}
}

func TestPoolsFigures(t *testing.T) {
	t.Parallel()
	pools := Pools(report(), SortName)
	a := pools[0]
	if a.GPUCapacity != 8 || a.GPUAllocatable != 7 || a.GPURequested != 6 || a.GPUUnhealthy != 1 || a.GPULimit == nil || *a.GPULimit != 64 {
		t.Errorf("gpu-a GPUs: %+v", a)
	}
	if a.CPURequestedMillis != 1000 || a.CPUAllocatableMillis != 8000 || a.MemoryRequestedBytes != 2<<30 {
		t.Errorf("gpu-a CPU and memory: %+v", a)
	}
	if s := pools[1]; s.Nodes != 2 || s.ReadyNodes != 1 || s.GPULimit != nil || s.CPURequestedMillis != 1500 {
		t.Errorf("shared: %+v", s)
	}
}

func TestTenants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		by   Sort
		want string
	}{
		{SortName, "a,b,c,d"},
		{SortGPU, "a,b,c,d"}, // 6, 4, 1, 0
		{SortCPU, "a,b,c,d"}, // 1000m, 1000m (then by name), 750m, 0 (pending pods use nothing)
	} {
		got := names(Tenants(report(), tc.by), func(t Tenant) string { return t.Name })
		if got != tc.want {
			t.Errorf("--sort-by %s: %s, want %s", tc.by, got, tc.want)
		}
	}
	r := report()
	r.TenantPools = append(r.TenantPools, capacity.TenantPool{Tenant: "0", Pool: "shared", Pods: 1, Requested: list("nvidia.com/gpu", "1", "cpu", "4")})
	for by, want := range map[Sort]string{SortName: "0,a,b,c,d", SortGPU: "a,b,0,c,d", SortCPU: "0,a,b,c,d"} {
		if got := names(Tenants(r, by), func(t Tenant) string { return t.Name }); got != want {
			t.Errorf("with tenant 0, --sort-by %s: %s, want %s", by, got, want)
		}
	}
	rows := Tenants(report(), SortName)
	b := rows[1]
	if b.GPUUsed != 4 || b.Pods != 2 || b.PendingPods != 4 || len(b.Pending) != 2 || b.Pending[0].Reason != capacity.ReasonFenced {
		t.Errorf("b: %+v", b)
	}
	if p := b.Pools[0]; p.GPUNominal == nil || *p.GPUNominal != 2 || p.GPUBorrowingLimit == nil || *p.GPUBorrowingLimit != 2 || p.GPUBorrowed != 2 {
		t.Errorf("b's quota in shared: %+v", p)
	}
	c := rows[2]
	if got := names(c.Pools, func(p TenantPool) string { return p.Pool }); got != "shared," {
		t.Errorf("c's pools %q, want shared then no pool", got)
	}
	if p := c.Pools[0]; p.GPUNominal == nil || p.GPUBorrowingLimit != nil || Quota(p) != "4+∞" {
		t.Errorf("c's unbounded borrowing: %+v %s", p, Quota(p))
	}
	if p := c.Pools[1]; p.GPUNominal != nil || Quota(p) != "-" {
		t.Errorf("c without quota in no pool: %+v", p)
	}
	if d := rows[3]; len(d.Pools) != 0 || d.PendingPods != 1 {
		t.Errorf("d, only pending: %+v", d)
	}
}

func TestParseSort(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Sort{"": SortName, "name": SortName, "gpu": SortGPU, "cpu": SortCPU} {
		if got, err := ParseSort(in); err != nil || got != want {
			t.Errorf("ParseSort(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseSort("memory"); err == nil || !strings.Contains(err.Error(), "--sort-by") {
		t.Errorf("ParseSort(memory): %v, want an error naming --sort-by", err)
	}
}

func TestWriteTables(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := Write(&out, "", Pools(report(), SortName)); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{
		{"NAME", "MODE", "NODES", "READY", "SANDBOX", "GPU(REQ/ALLOC)", "GPU%", "UNHEALTHY-GPUS", "CPU(REQ/ALLOC)", "MEMORY(REQ/ALLOC)"},
		{"gpu-a", "dedicated", "1", "1", "-", "6/7", "85%", "1", "1/8", "2Gi/32Gi"},
		{"shared", "shared", "2", "1", "gvisor", "1/2", "7/8", "87%", "0", "1.5/16", "1.5Gi/64Gi"},
		{"(no", "pool)", "-", "1", "1", "-", "0/0", "-", "0", "0.25/4", "0/8Gi"},
	} {
		if !hasLine(out.String(), want) {
			t.Errorf("pools table has no line %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := Write(&out, "", Tenants(report(), SortName)); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{
		{"TENANT", "POOL", "PODS", "GPU-USED", "GPU-QUOTA", "BORROWED", "CPU-USED", "MEMORY-USED", "PENDING"},
		{"a", "gpu-a", "2", "6", "-", "-", "1", "2Gi", "-"},
		{"b", "shared", "2", "4", "2+2", "2", "1", "0", "1", "PoolNotAllowed,", "3", "QuotaExhausted"},
		{"c", "shared", "1", "1", "4+∞", "0", "0.5", "0", "-"},
		{"c", "(no", "pool)", "1", "0", "-", "-", "0.25", "0"},
		{"d", "-", "0", "0", "-", "-", "0", "0", "1", "NotYetScheduled"},
	} {
		if !hasLine(out.String(), want) {
			t.Errorf("tenants table has no line %q:\n%s", want, out.String())
		}
	}
}

func hasLine(out string, fields []string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(l), " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := Write(&out, "json", Tenants(report(), SortName)); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	b := got[1]
	pool := b["pools"].([]any)[0].(map[string]any)
	if b["name"] != "b" || b["pendingPods"] != 4.0 || pool["gpuUsed"] != 4.0 || pool["gpuNominal"] != 2.0 || pool["gpuBorrowed"] != 2.0 {
		t.Errorf("b as JSON: %s", out.String())
	}
	if d := got[3]; len(d["pools"].([]any)) != 0 {
		t.Errorf("d's pools as JSON: %v, want []", d["pools"])
	}
	if err := Write(&out, "wide", nil); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Errorf("-o wide: %v", err)
	}
}

func TestFormats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{Cores(8000), "8"}, {Cores(1500), "1.5"}, {Cores(250), "0.25"}, {Cores(0), "0"},
		{Bytes(0), "0"}, {Bytes(512), "512"}, {Bytes(32 << 30), "32Gi"}, {Bytes(1536 << 20), "1.5Gi"}, {Bytes(100 << 20), "100Mi"},
		{Percent(6, 8), "75%"}, {Percent(1, 0), "-"},
		{PoolName(""), "(no pool)"}, {PoolName("x"), "x"},
		{PendingSummary(nil), "-"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
