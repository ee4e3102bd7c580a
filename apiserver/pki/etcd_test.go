package pki

import (
	"bytes"
	"crypto/x509"
	"os"
	"testing"

	certutil "k8s.io/client-go/util/cert"
)

// The etcd CA signs the etcd certificates and nothing of the apiserver's
// CA; the keys are the owner's alone; a second EnsureEtcd keeps every file.
func TestEnsureEtcdKeepsItsCASeparate(t *testing.T) {
	t.Parallel()
	f := Files{Dir: t.TempDir()}
	if err := Ensure(f, nil); err != nil {
		t.Fatal(err)
	}
	if err := EnsureEtcd(f); err != nil {
		t.Fatal(err)
	}
	etcdCA, apiserverCA := cert(t, f.EtcdCACert()), cert(t, f.CACert())
	if bytes.Equal(etcdCA.RawSubjectPublicKeyInfo, apiserverCA.RawSubjectPublicKeyInfo) {
		t.Fatal("the etcd CA has the apiserver CA's key")
	}
	for _, path := range []string{f.EtcdServerCert(), f.EtcdPeerCert(), f.EtcdClientCert()} {
		c := cert(t, path)
		if err := c.CheckSignatureFrom(etcdCA); err != nil {
			t.Errorf("%s not signed by the etcd CA: %v", path, err)
		}
		if c.CheckSignatureFrom(apiserverCA) == nil {
			t.Errorf("%s signed by the apiserver CA", path)
		}
	}
	for _, path := range []string{f.AdminCert(), f.KubeletClientCert(), f.ServingCert()} {
		if cert(t, path).CheckSignatureFrom(etcdCA) == nil {
			t.Errorf("%s of the apiserver is signed by the etcd CA", path)
		}
	}
	for _, path := range []string{f.EtcdServerCert(), f.EtcdPeerCert()} {
		if err := cert(t, path).VerifyHostname("127.0.0.1"); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	if _, err := cert(t, f.EtcdClientCert()).Verify(x509.VerifyOptions{
		Roots: pool(etcdCA), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("etcd client certificate: %v", err)
	}
	for _, path := range []string{f.EtcdCAKey(), f.EtcdServerKey(), f.EtcdPeerKey(), f.EtcdClientKey()} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", path, st.Mode(), err)
		}
	}

	before := read(t, f.EtcdCACert(), f.EtcdServerCert(), f.EtcdPeerCert(), f.EtcdClientCert(), f.EtcdClientKey())
	if err := EnsureEtcd(f); err != nil {
		t.Fatal(err)
	}
	if after := read(t, f.EtcdCACert(), f.EtcdServerCert(), f.EtcdPeerCert(), f.EtcdClientCert(), f.EtcdClientKey()); !bytes.Equal(before, after) {
		t.Error("a second EnsureEtcd changed the etcd PKI")
	}

	// A new CA (its files lost) signs every etcd certificate again.
	for _, path := range []string{f.EtcdCACert(), f.EtcdCAKey()} {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	if err := EnsureEtcd(f); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{f.EtcdServerCert(), f.EtcdPeerCert(), f.EtcdClientCert()} {
		if err := cert(t, path).CheckSignatureFrom(cert(t, f.EtcdCACert())); err != nil {
			t.Errorf("%s after a new etcd CA: %v", path, err)
		}
	}
}

func cert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := certutil.CertsFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func pool(ca *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca)
	return p
}

func read(t *testing.T, paths ...string) []byte {
	t.Helper()
	var all []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}
