package server

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplex/kplex/apiserver/pki"
)

// Etcd certificate flags without --etcd-servers would go unused: the
// embedded etcd trusts only its own CA.
func TestEtcdCertificatesNeedEtcdServers(t *testing.T) {
	t.Parallel()
	cfg := NewConfig()
	if err := validateEtcdTLS(cfg); err != nil {
		t.Fatalf("embedded etcd, no certificate flags: %v", err)
	}
	cfg.Kube.Etcd.StorageConfig.Transport.TrustedCAFile = "/etc/etcd/ca.crt"
	if err := validateEtcdTLS(cfg); err == nil || !strings.Contains(err.Error(), "--etcd-servers") {
		t.Errorf("--etcd-cafile without --etcd-servers: %v", err)
	}
	cfg.Kube.Etcd.StorageConfig.Transport.ServerList = []string{"https://10.0.0.5:2379"}
	if err := validateEtcdTLS(cfg); err != nil {
		t.Errorf("--etcd-cafile with --etcd-servers: %v", err)
	}
}

// The storage of a server on embedded etcd, and kplex's own client of it,
// dial https with the etcd CA's client certificate.
func TestEmbeddedEtcdStorageUsesTheEtcdClientCertificate(t *testing.T) {
	t.Parallel()
	files := pki.Files{Dir: filepath.Join(t.TempDir(), "pki")}
	if err := pki.EnsureEtcd(files); err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig()
	tr := &cfg.Kube.Etcd.StorageConfig.Transport
	if c, err := etcdTLS(*tr); c != nil || err != nil {
		t.Errorf("no certificates: TLS %v, %v; want none, as upstream", c, err)
	}
	useEmbeddedEtcd(tr, "https://127.0.0.1:2379", files)
	if len(tr.ServerList) != 1 || !strings.HasPrefix(tr.ServerList[0], "https://") ||
		tr.CertFile != files.EtcdClientCert() || tr.KeyFile != files.EtcdClientKey() || tr.TrustedCAFile != files.EtcdCACert() {
		t.Fatalf("storage transport %+v", *tr)
	}
	c, err := etcdTLS(*tr)
	if err != nil {
		t.Fatal(err)
	}
	if c == nil || c.RootCAs == nil || len(c.Certificates) == 0 && c.GetClientCertificate == nil {
		t.Errorf("kplex's etcd client TLS %+v: want the etcd CA and the client certificate", c)
	}
}
