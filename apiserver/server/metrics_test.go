package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/apiserver/server/servertest"
)

// The apiserver's /metrics serves each tenant's requests by verb and
// code, tenants by phase, provisioning latency and storage; and, with
// the controller manager in the process (as in `kplex up`), the pools'
// capacity.
func TestIntegrationMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "", func(c *server.Config) {
		c.TenantStorageMetricsPeriod = time.Second
		c.MetricsTopTenants = 10000 // this process's other tests' tenants must not crowd ours out
	})
	e.RunControllers(t)
	ctx := ctxT(t)
	metrics := metricsReader(t, e.Admin)

	tenantClient := servertest.Client(t, e.CreateTenant(t, "metrics-a"))
	deletes := `kplex_apiserver_tenant_requests_total{code="404",tenant="metrics-a",verb="delete"}`
	creates := `kplex_apiserver_tenant_requests_total{code="201",tenant="metrics-a",verb="create"}`
	before := metrics(ctx)
	for i := range 3 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: map[string]string{"k": strings.Repeat("v", 1000)}}
		if _, err := tenantClient.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := tenantClient.CoreV1().ConfigMaps("default").Delete(ctx, fmt.Sprintf("missing-%d", i), metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("deleting a missing ConfigMap: %v", err)
		}
	}
	if _, err := tenantClient.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	// The figures name every tenant: a tenant's admin may not read them.
	if err := tenantClient.CoreV1().RESTClient().Get().AbsPath("/metrics").Do(ctx).Error(); !apierrors.IsForbidden(err) {
		t.Errorf("a tenant's admin reading /metrics on its path: %v, want 403 Forbidden", err)
	}

	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: metrics-pool}, spec: {mode: shared, limits: {nvidia.com/gpu: 6}}}`)
	root := servertest.Client(t, e.Admin)
	n, err := root.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "metrics-node", Labels: map[string]string{schedulingv1alpha1.PoolLabel: "metrics-pool"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gpus := corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("8")}
	// The node IPAM controller may write the Node's pod CIDR meanwhile:
	// update its latest version.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if n, err = root.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{}); err != nil {
			return err
		}
		n.Status.Capacity, n.Status.Allocatable = gpus, corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("7")}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
		_, err := root.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}

	var got map[string]float64
	want := map[string]func(float64) bool{
		// The tenant's own requests: none of the controllers deletes a
		// missing ConfigMap; they create some of their own.
		deletes: func(v float64) bool { return v-before[deletes] == 3 },
		creates: func(v float64) bool { return v-before[creates] >= 3 },
		`kplex_apiserver_tenant_requests_total{code="200",tenant="metrics-a",verb="list"}`: func(v float64) bool { return v >= 1 },
		`kplex_tenants{phase="Ready"}`:                                              func(v float64) bool { return v >= 1 },
		`kplex_tenant_provisioning_duration_seconds_count`:                          func(v float64) bool { return v >= 1 },
		`kplex_tenant_objects{tenant="metrics-a"}`:                                  func(v float64) bool { return v >= 3 },
		`kplex_tenant_storage_bytes{tenant="metrics-a"}`:                            func(v float64) bool { return v >= 3000 },
		`kplex_nodepool_nodes{pool="metrics-pool"}`:                                 func(v float64) bool { return v == 1 },
		`kplex_nodepool_ready_nodes{pool="metrics-pool"}`:                           func(v float64) bool { return v == 1 },
		`kplex_nodepool_unhealthy_gpus{pool="metrics-pool"}`:                        func(v float64) bool { return v == 1 },
		`kplex_nodepool_info{mode="shared",pool="metrics-pool"}`:                    func(v float64) bool { return v == 1 },
		`kplex_nodepool_allocatable{pool="metrics-pool",resource="nvidia.com/gpu"}`: func(v float64) bool { return v == 7 },
		`kplex_nodepool_limit{pool="metrics-pool",resource="nvidia.com/gpu"}`:       func(v float64) bool { return v == 6 },
	}
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		got = metrics(ctx)
		for series, ok := range want {
			if v, have := got[series]; !have || !ok(v) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		for series, ok := range want {
			v, have := got[series]
			if !have || !ok(v) {
				t.Errorf("%s = %v (present: %v), not as expected", series, v, have)
			}
		}
	}
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// metricsReader returns a function that reads the server's /metrics as
// root's admin, by series written name{label="value",...} with labels
// sorted.
func metricsReader(t *testing.T, admin *rest.Config) func(context.Context) map[string]float64 {
	client, err := rest.HTTPClientFor(admin)
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context) map[string]float64 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin.Host+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET /metrics: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET /metrics: %s: %s", resp.Status, body)
		}
		out := map[string]float64{}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			m := sampleLine.FindStringSubmatch(sc.Text())
			if m == nil || !strings.HasPrefix(m[1], "kplex_") {
				continue
			}
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				continue
			}
			var labels []string
			for _, l := range labelPair.FindAllStringSubmatch(m[2], -1) {
				labels = append(labels, l[1]+`="`+l[2]+`"`)
			}
			key := m[1]
			if len(labels) > 0 {
				sortStrings(labels)
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = v
		}
		return out
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
