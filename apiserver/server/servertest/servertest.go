// Package servertest starts a real kplex apiserver, on real embedded etcd,
// inside a test: the envtest of kplex. Tests get the server, an admin client
// config for root and tenant admin configs.
package servertest

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/client/tenants"
	"github.com/kplex/kplex/controllers/manager"
	"github.com/kplex/kplex/tenant"
)

// Env is a running server.
type Env struct {
	Server  *server.Server
	DataDir string
	Admin   *rest.Config
	Tenants *tenants.Client
}

// Start starts a server with its data in dataDir ("" for a fresh temporary
// one) and stops it when the test ends. configure, if given, adjusts the
// server's configuration first.
func Start(t testing.TB, dataDir string, configure ...func(*server.Config)) *Env {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.NewConfig()
	cfg.DataDir = dataDir
	cfg.Listener = l
	for _, c := range configure {
		c(cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.Start(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("starting kplex apiserver: %v", err)
	}
	env := &Env{Server: s, DataDir: dataDir, Admin: s.AdminConfig()}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			s.Close()
			cancel()
		}
	}
	t.Cleanup(stop)
	select {
	case <-s.Ready():
	case err := <-s.Err():
		t.Fatalf("kplex apiserver failed: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("kplex apiserver not ready after 2 minutes")
	}
	if env.Tenants, err = tenants.New(env.Admin); err != nil {
		t.Fatal(err)
	}
	return env
}

// Stop stops the server before the test ends.
func (e *Env) Stop() { e.Server.Close() }

// CreateTenant creates tenant name, waits until it serves and returns its
// admin config.
func (e *Env) CreateTenant(t testing.TB, name string) *rest.Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.Tenants.Create(ctx, name); err != nil {
		t.Fatalf("creating tenant %q: %v", name, err)
	}
	if err := e.Tenants.WaitServing(ctx, name); err != nil {
		t.Fatalf("tenant %q not serving: %v", name, err)
	}
	return e.TenantConfig(t, name)
}

// TenantConfig returns tenant name's admin config, authenticated by its token.
func (e *Env) TenantConfig(t testing.TB, name string) *rest.Config {
	t.Helper()
	creds, err := e.Tenants.Credentials(context.Background(), name)
	if err != nil {
		t.Fatalf("credentials of tenant %q: %v", name, err)
	}
	return &rest.Config{
		Host:            e.Admin.Host + tenant.Path(name),
		BearerToken:     creds.Token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: e.Admin.CAFile},
		QPS:             -1,
	}
}

// CrossTenantConfig returns the admin config for /clusters/*, where the
// admin may list and watch across tenants.
func (e *Env) CrossTenantConfig() *rest.Config {
	cfg := rest.CopyConfig(e.Admin)
	cfg.Host += tenant.PathPrefix + tenant.Wildcard
	return cfg
}

// Client returns a clientset for cfg.
func Client(t testing.TB, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// FromYAML decodes one object from YAML (or JSON).
func FromYAML(t testing.TB, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// CreateScheduling creates a NodePool or a TenantQuota, by the document's
// kind, in the management plane.
func (e *Env) CreateScheduling(t testing.TB, doc string) {
	t.Helper()
	u := FromYAML(t, doc)
	gvr := schedulingv1alpha1.NodePoolsResource
	if u.GetKind() == "TenantQuota" {
		gvr = schedulingv1alpha1.TenantQuotasResource
	}
	client, err := dynamic.NewForConfig(e.Admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Resource(gvr).Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// EtcdKeys returns every key in the server's etcd under prefix.
func (e *Env) EtcdKeys(t testing.TB, prefix string) []string {
	t.Helper()
	resp, err := e.Server.Etcd().Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatalf("listing etcd keys: %v", err)
	}
	keys := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

// RunControllers runs kplex's controller manager against the server, as
// `kplex up` does, until the test ends or stop is called: tenants get
// their default service accounts, which pods are admitted against.
func (e *Env) RunControllers(t testing.TB) (stop func()) {
	t.Helper()
	ca, err := os.ReadFile(e.Admin.CAFile)
	if err != nil {
		t.Fatalf("reading the server's CA: %v", err)
	}
	key, err := server.PKIFiles(e.DataDir).ServiceAccountSigner()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := manager.Run(ctx, manager.Options{Loopback: e.Admin, RootCA: ca, ServiceAccountKey: key}); err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "Controller manager stopped")
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}
