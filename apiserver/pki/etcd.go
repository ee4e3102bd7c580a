package pki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// etcdDir holds the embedded etcd's own CA: etcd accepts any client
// certificate its CA signed, so sharing the apiserver's client CA would let
// every certificate that CA signs (admin, future node certificates) read
// and write all of etcd, every tenant's Secrets included.
func (f Files) etcdDir() string        { return filepath.Join(f.Dir, "etcd") }
func (f Files) EtcdCACert() string     { return filepath.Join(f.etcdDir(), "ca.crt") }
func (f Files) EtcdCAKey() string      { return filepath.Join(f.etcdDir(), "ca.key") }
func (f Files) EtcdServerCert() string { return filepath.Join(f.etcdDir(), "server.crt") }
func (f Files) EtcdServerKey() string  { return filepath.Join(f.etcdDir(), "server.key") }
func (f Files) EtcdPeerCert() string   { return filepath.Join(f.etcdDir(), "peer.crt") }
func (f Files) EtcdPeerKey() string    { return filepath.Join(f.etcdDir(), "peer.key") }
func (f Files) EtcdClientCert() string { return filepath.Join(f.Dir, "apiserver-etcd-client.crt") }
func (f Files) EtcdClientKey() string  { return filepath.Join(f.Dir, "apiserver-etcd-client.key") }

// Common names of the etcd certificates.
const (
	EtcdServerName = "kplex-etcd"
	// EtcdPeerName is the only name the member's peer port accepts.
	EtcdPeerName   = "kplex-etcd-peer"
	EtcdClientUser = "kplex-apiserver-etcd-client"
	etcdCAName     = "kplex-etcd-ca"
)

// EnsureEtcd creates whatever is missing of the embedded etcd's PKI: its CA,
// the member's serving and peer certificates (for the loopback address) and
// the apiserver's client certificate. A certificate its CA did not sign (the
// CA was made again) is signed again.
func EnsureEtcd(f Files) error {
	if err := os.MkdirAll(f.etcdDir(), 0o700); err != nil {
		return fmt.Errorf("creating etcd pki directory: %w", err)
	}
	caCert, caKey, err := ensureCA(f.EtcdCACert(), f.EtcdCAKey(), etcdCAName)
	if err != nil {
		return fmt.Errorf("etcd CA: %w", err)
	}
	leaves := []struct {
		what, cert, key string
		template        *x509.Certificate
	}{
		// Client usage too: etcd's gRPC gateway dials the member with it.
		{"etcd serving certificate", f.EtcdServerCert(), f.EtcdServerKey(), loopbackTemplate(EtcdServerName)},
		{"etcd peer certificate", f.EtcdPeerCert(), f.EtcdPeerKey(), loopbackTemplate(EtcdPeerName)},
		{"etcd client certificate", f.EtcdClientCert(), f.EtcdClientKey(), &x509.Certificate{
			Subject:     pkix.Name{CommonName: EtcdClientUser},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}},
	}
	for _, l := range leaves {
		if err := ensureLeaf(l.cert, l.key, caCert, caKey, l.template); err != nil {
			return fmt.Errorf("%s: %w", l.what, err)
		}
	}
	return nil
}

// ensureLeaf signs template with ca unless certPath holds a certificate ca
// signed for every address template names.
func ensureLeaf(certPath, keyPath string, ca *x509.Certificate, caKey crypto.Signer, template *x509.Certificate) error {
	if err := dropUnfit(certPath, template, ca); err != nil {
		return err
	}
	return ensureSigned(certPath, keyPath, ca, caKey, template)
}

// loopbackTemplate is a certificate that serves on, and dials from, the
// loopback address: the embedded etcd listens nowhere else.
func loopbackTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:    []string{"localhost"},
	}
}
