package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplex/kplex/apiserver/etcd"
	"github.com/kplex/kplex/apiserver/pki"
	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/apiserver/server/servertest"
)

func TestIntegrationRestartKeepsEveryTenantAndObject(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver twice")
	}
	ctx := ctxT(t)
	dir := t.TempDir()
	first := servertest.Start(t, dir)
	names := []string{"keep-a", "keep-b", "keep-c"}
	for _, name := range names {
		c := servertest.Client(t, first.CreateTenant(t, name))
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "state"}, Data: map[string]string{"owner": name},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	oldToken := first.TenantConfig(t, "keep-a").BearerToken
	first.Stop()

	second := servertest.Start(t, dir)
	list, err := second.Tenants.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(names) {
		t.Fatalf("after restart %d tenants, want %d: %v", len(list), len(names), list)
	}
	for _, name := range names {
		cfg := second.TenantConfig(t, name)
		cm, err := servertest.Client(t, cfg).CoreV1().ConfigMaps("default").Get(ctx, "state", metav1.GetOptions{})
		if err != nil || cm.Data["owner"] != name {
			t.Errorf("%s after restart: %v, %v", name, cm, err)
		}
		ns, err := servertest.Client(t, cfg).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil || len(ns.Items) != 4 {
			t.Errorf("%s after restart: namespaces %v, %v", name, ns, err)
		}
		if name == "keep-a" && cfg.BearerToken != oldToken {
			t.Errorf("keep-a's token changed across a restart")
		}
	}
}

// etcdWatchers is the number of watchers the in-process etcd serves.
func etcdWatchers(t *testing.T) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "etcd_debugging_mvcc_watcher_total" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("etcd_debugging_mvcc_watcher_total not exported")
	return 0
}

func TestIntegrationEtcdWatchesDoNotGrowWithTenants(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	before := etcdWatchers(t)
	for i := range 20 {
		c := servertest.Client(t, e.CreateTenant(t, fmt.Sprintf("watches-%d", i)))
		if _, err := c.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		w, err := c.CoreV1().Secrets("").Watch(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	if after := etcdWatchers(t); after != before {
		t.Errorf("etcd watchers went from %v to %v with 20 more tenants watching", before, after)
	}
}

func TestIntegrationExternalEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	ctx := ctxT(t)
	useEtcd := startExternalEtcd(t) // cleaned up after the server: cleanups run last-in first-out
	dir := t.TempDir()
	e := servertest.Start(t, dir, useEtcd)
	c := servertest.Client(t, e.CreateTenant(t, "ext"))
	if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if keys := e.EtcdKeys(t, "/registry/configmaps/ext/default/x"); len(keys) != 1 {
		t.Errorf("object not in the external etcd: %v", keys)
	}
	if _, err := os.Stat(filepath.Join(dir, "etcd")); !os.IsNotExist(err) {
		t.Errorf("an embedded etcd data dir was created although --etcd-servers was set: %v", err)
	}
}

// Two replicas over one etcd serve the same tenants: what one writes, the
// other reads, and a tenant's credentials work on both.
func TestIntegrationReplicasShareTenants(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and two apiservers")
	}
	ctx := ctxT(t)
	useEtcd := startExternalEtcd(t)
	shared := t.TempDir() // the PKI, and so the token key, is the replicas' common state
	one := servertest.Start(t, shared, useEtcd)
	two := servertest.Start(t, shared, useEtcd)

	c1 := servertest.Client(t, one.CreateTenant(t, "replicated"))
	if _, err := c1.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "x"}, Data: map[string]string{"from": "one"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := two.Tenants.WaitServing(ctx, "replicated"); err != nil {
		t.Fatal(err)
	}
	cfg := one.TenantConfig(t, "replicated")
	cfg.Host = two.Admin.Host + "/clusters/replicated"
	cm, err := servertest.Client(t, cfg).CoreV1().ConfigMaps("default").Get(ctx, "x", metav1.GetOptions{})
	if err != nil || cm.Data["from"] != "one" {
		t.Errorf("replica two with replica one's token: %v, %v", cm, err)
	}

	// Deleting through replica two removes the tenant for replica one.
	if err := two.Tenants.Delete(ctx, "replicated"); err != nil {
		t.Fatal(err)
	}
	if err := one.Tenants.WaitGone(ctx, "replicated"); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.CoreV1().ConfigMaps("default").Get(ctx, "x", metav1.GetOptions{}); err == nil {
		t.Error("replica one still serves the deleted tenant")
	}
}

// startExternalEtcd starts an etcd of the test's, as an external one, and
// returns what points a Config at it: its servers and, through upstream's
// --etcd-cafile, --etcd-certfile and --etcd-keyfile, the certificates its
// mutual TLS asks for.
func startExternalEtcd(t *testing.T) func(*server.Config) {
	t.Helper()
	dir := t.TempDir()
	files := pki.Files{Dir: filepath.Join(dir, "pki")}
	external, err := etcd.Start(ctxT(t), filepath.Join(dir, "etcd"), files)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(external.Close)
	return func(cfg *server.Config) {
		tr := &cfg.Kube.Etcd.StorageConfig.Transport
		tr.ServerList = []string{external.ClientURL()}
		tr.CertFile, tr.KeyFile, tr.TrustedCAFile = files.EtcdClientCert(), files.EtcdClientKey(), files.EtcdCACert()
	}
}
