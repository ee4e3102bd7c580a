package server_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/apiserver/fairness"
	"github.com/kplex/kplex/apiserver/server/servertest"
)

// flowSchemaOf returns the UID of the FlowSchema that classified a list of
// configmaps by cfg, and the response status.
func flowSchemaOf(t *testing.T, cfg *rest.Config) (string, int) {
	t.Helper()
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(cfg.Host + "/api/v1/namespaces/default/configmaps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("X-Kubernetes-PF-FlowSchema-UID"), resp.StatusCode
}

// Tenants' requests are not exempt from API Priority and Fairness, as
// system:masters is: whoever sends them, tenant admin or service account,
// they are classified as their tenant, by kplex's flow schema.
func TestIntegrationTenantsAreClassifiedByTenant(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	root := servertest.Client(t, e.Admin)
	exempt, err := root.FlowcontrolV1().FlowSchemas().Get(ctx, "exempt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := root.FlowcontrolV1().FlowSchemas().Get(ctx, fairness.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the tenants' flow schema: %v", err)
	}
	if got, _ := flowSchemaOf(t, e.Admin); got != string(exempt.UID) {
		t.Fatalf("root admin classified as %q, want the exempt flow schema %q", got, exempt.UID)
	}
	admin := e.CreateTenant(t, "fair-a")
	bot := rest.AnonymousClientConfig(admin)
	bot.BearerToken = serviceAccount(t, admin, "kube-system", "generic-garbage-collector")
	for who, cfg := range map[string]*rest.Config{"tenant admin": admin, "tenant's kube-system service account": bot} {
		if got, _ := flowSchemaOf(t, cfg); got != string(tenants.UID) {
			t.Errorf("%s classified as %q, want %s (%q)", who, got, fairness.Name, tenants.UID)
		}
	}
}

// A tenant flooding the server (a bounded loop of ten clients) gets no
// request of a quiet tenant refused. How much slower the quiet tenant gets
// is a benchmark's figure (make bench), logged here for the record.
func TestIntegrationFloodingTenantDoesNotStarveAnother(t *testing.T) {
	e := startEnv(t)
	quiet, flood := e.CreateTenant(t, "quiet"), e.CreateTenant(t, "flood")
	sample := func() []time.Duration {
		var out []time.Duration
		for range 100 {
			began := time.Now()
			if _, code := flowSchemaOf(t, quiet); code != http.StatusOK {
				t.Fatalf("the quiet tenant was answered %d", code)
			}
			out = append(out, time.Since(began))
			time.Sleep(2 * time.Millisecond)
		}
		slices.Sort(out)
		return out
	}
	idle := sample()

	floodClient, err := rest.HTTPClientFor(flood)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 10 {
		wg.Go(func() {
			for range 2000 {
				select {
				case <-stop:
					return
				default:
				}
				if resp, err := floodClient.Get(flood.Host + "/api/v1/namespaces/default/configmaps"); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	flooded := sample()
	close(stop)
	wg.Wait()
	t.Logf("quiet tenant's p99: %v idle, %v beside the flood", idle[98], flooded[98])
}
