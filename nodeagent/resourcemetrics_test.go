package nodeagent

import (
	"context"
	"crypto/tls"
	"fmt"
	clientretry "k8s.io/client-go/util/retry"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	apiserver "github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/nodeagent/runtime/simulated"
	"github.com/kplex/kplex/tenant/nodeconn"
)

// Each tenant reads its own pods' usage through metrics.k8s.io, as the node
// agent's runtime reports it; no tenant reads another's, and the agent
// gives its per-tenant figures to the management plane's connections only.
func TestIntegrationResourceMetricsPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts an apiserver")
	}
	env := servertest.Start(t, "", func(c *apiserver.Config) { c.MetricsResolution = time.Second })
	env.RunControllers(t)
	aCfg, bCfg := env.CreateTenant(t, "a"), env.CreateTenant(t, "b")
	a, b := servertest.Client(t, aCfg), servertest.Client(t, bCfg)
	ctx := context.Background()
	port, files := startServingAgent(t, env)
	usage := map[string]string{"a": "250m", "b": "750m"}
	for name, c := range map[string]kubernetes.Interface{"a": a, "b": b} {
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"greeting": "hi"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := pod("web", "node-1", v1.RestartPolicyAlways, map[string]string{simulated.CPUAnnotation: usage[name], simulated.MemoryAnnotation: "64Mi"})
		p.Labels = map[string]string{"app": "web"}
		if _, err := c.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.CoreV1().Pods("default").Create(ctx, pod("only-b", "node-1", v1.RestartPolicyAlways, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for name, cfg := range map[string]*rest.Config{"a": aCfg, "b": bCfg} {
		mc := metricsclient.NewForConfigOrDie(cfg)
		eventually(t, "tenant "+name+" reads its pod's usage", func() (bool, error) {
			m, err := mc.MetricsV1beta1().PodMetricses("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if len(m.Containers) != 1 {
				return false, nil
			}
			cpu, mem := m.Containers[0].Usage.Cpu(), m.Containers[0].Usage.Memory()
			want := resourceMilli(usage[name])
			if d := cpu.MilliValue() - want; d < -want/10 || d > want/10 || mem.Value() != 64<<20 {
				t.Errorf("tenant %s: web uses cpu %s memory %s, want about %s and 64Mi", name, cpu, mem, usage[name])
			}
			return true, nil
		})
		// Selected by label: the tenant's own pods only.
		list, err := mc.MetricsV1beta1().PodMetricses("").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 || list.Items[0].Name != "web" {
			t.Errorf("tenant %s lists %d pod metrics for app=web, want its web only", name, len(list.Items))
		}
	}
	ma := metricsclient.NewForConfigOrDie(aCfg)
	eventually(t, "tenant b reads only-b's usage", func() (bool, error) {
		_, err := metricsclient.NewForConfigOrDie(bCfg).MetricsV1beta1().PodMetricses("default").Get(ctx, "only-b", metav1.GetOptions{})
		return err == nil, err
	})
	if _, err := ma.MetricsV1beta1().PodMetricses("default").Get(ctx, "only-b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("tenant a reading b's pod only-b: %v, want NotFound", err)
	}
	all, err := ma.MetricsV1beta1().PodMetricses("").List(ctx, metav1.ListOptions{})
	if err != nil || len(all.Items) != 1 {
		t.Errorf("tenant a lists %v pod metrics (%v), want its one pod", all, err)
	}
	// The node: root reads it; so does a tenant whose pods may run there.
	eventually(t, "node-1's usage", func() (bool, error) {
		m, err := metricsclient.NewForConfigOrDie(env.Admin).MetricsV1beta1().NodeMetricses().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return m.Usage.Cpu().MilliValue() >= 900, nil
	})

	// A tenant reads the usage of the nodes it reads, no other.
	for name, c := range map[string]kubernetes.Interface{"a": a, "b": b} {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nm, err := metricsclient.NewForConfigOrDie(map[string]*rest.Config{"a": aCfg, "b": bCfg}[name]).MetricsV1beta1().NodeMetricses().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var seen, metered []string
		for _, n := range nodes.Items {
			seen = append(seen, n.Name)
		}
		for _, n := range nm.Items {
			metered = append(metered, n.Name)
		}
		if fmt.Sprint(seen) != fmt.Sprint(metered) {
			t.Errorf("tenant %s reads nodes %v and the usage of %v", name, seen, metered)
		}
	}
	if _, err := ma.MetricsV1beta1().NodeMetricses().Get(ctx, "node-1", metav1.GetOptions{}); err != nil {
		t.Fatalf("tenant a, whose pods run on node-1, reading its usage: %v", err)
	}
	env.CreateScheduling(t, "apiVersion: scheduling.kplex.io/v1alpha1\nkind: NodePool\nmetadata: {name: only-b}\nspec: {mode: dedicated, tenants: [b]}\n")
	root := servertest.Client(t, env.Admin)
	// The agent and the node IPAM controller write the Node too.
	if err := clientretry.RetryOnConflict(clientretry.DefaultRetry, func() error {
		n, err := root.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Labels["kplex.io/pool"] = "only-b"
		_, err = root.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node-1's usage hidden from tenant a once the node is b's", func() (bool, error) {
		_, err := ma.MetricsV1beta1().NodeMetricses().Get(ctx, "node-1", metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})

	// The agent's per-tenant figures are the management plane's: a
	// connection that names a tenant, even the apiserver's, is refused.
	cert, err := tls.LoadX509KeyPair(files.KubeletClientCert(), files.KubeletClientKey())
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext:     nodeconn.Dialer(nil),
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true},
	}}
	resp, err := client.Get("https://" + net.JoinHostPort(nodeconn.Hostname("a", "127.0.0.1"), strconv.Itoa(port)) + "/metrics/resource")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a tenant's connection read resource metrics: %s, want 403", resp.Status)
	}
}

func resourceMilli(q string) int64 {
	v, _ := strconv.ParseInt(q[:len(q)-1], 10, 64)
	return v
}
