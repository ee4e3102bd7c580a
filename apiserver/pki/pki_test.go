package pki

import (
	"bytes"
	"os"
	"testing"

	certutil "k8s.io/client-go/util/cert"
)

// A PKI made before an address was needed gets a serving certificate for
// it, under the same CA and key; one that names it already is kept.
func TestEnsureSignsServingCertificateAgainForNewAddresses(t *testing.T) {
	t.Parallel()
	f := Files{Dir: t.TempDir()}
	if err := Ensure(f, nil); err != nil {
		t.Fatal(err)
	}
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ca, key, admin, first := read(f.CACert()), read(f.ServingKey()), read(f.AdminCert()), read(f.ServingCert())

	hosts := []string{"10.96.0.1", "192.0.2.7", "kplex.example"}
	if err := Ensure(f, hosts); err != nil {
		t.Fatal(err)
	}
	second := read(f.ServingCert())
	if bytes.Equal(first, second) {
		t.Fatal("serving certificate kept though it lacks the new addresses")
	}
	if !bytes.Equal(ca, read(f.CACert())) || !bytes.Equal(key, read(f.ServingKey())) || !bytes.Equal(admin, read(f.AdminCert())) {
		t.Error("the CA, the serving key or the admin certificate changed")
	}
	certs, err := certutil.CertsFromFile(f.ServingCert())
	if err != nil {
		t.Fatal(err)
	}
	roots, err := certutil.CertsFromFile(f.CACert())
	if err != nil {
		t.Fatal(err)
	}
	if err := certs[0].CheckSignatureFrom(roots[0]); err != nil {
		t.Errorf("new serving certificate not signed by the CA: %v", err)
	}
	for _, h := range append(hosts, "127.0.0.1", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local") {
		if err := certs[0].VerifyHostname(h); err != nil {
			t.Errorf("serving certificate: %v", err)
		}
	}

	// Fewer addresses than it names, or the same: kept.
	for _, again := range [][]string{hosts, nil, hosts[:1]} {
		if err := Ensure(f, again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(second, read(f.ServingCert())) {
			t.Errorf("Ensure(%v) replaced a serving certificate that names every address", again)
		}
	}
}
