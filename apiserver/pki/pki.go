package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"github.com/kplex/kplex/tenant/nodeconn"
)

// Files names the files of a kplex PKI directory.
type Files struct {
	Dir string
}

func (f Files) CACert() string      { return filepath.Join(f.Dir, "ca.crt") }
func (f Files) CAKey() string       { return filepath.Join(f.Dir, "ca.key") }
func (f Files) ServingCert() string { return filepath.Join(f.Dir, "apiserver.crt") }
func (f Files) ServingKey() string  { return filepath.Join(f.Dir, "apiserver.key") }
func (f Files) AdminCert() string   { return filepath.Join(f.Dir, "admin.crt") }
func (f Files) AdminKey() string    { return filepath.Join(f.Dir, "admin.key") }
func (f Files) KubeletClientCert() string {
	return filepath.Join(f.Dir, "apiserver-kubelet-client.crt")
}
func (f Files) KubeletClientKey() string  { return filepath.Join(f.Dir, "apiserver-kubelet-client.key") }
func (f Files) ServiceAccountKey() string { return filepath.Join(f.Dir, "sa.key") }
func (f Files) TenantTokenKey() string    { return filepath.Join(f.Dir, "tenant-token.key") }

// AdminUser is the common name of the admin client certificate.
const AdminUser = "kplex-admin"

// KubeletClientUser is the common name of the apiserver's client
// certificate toward node agents.
const KubeletClientUser = nodeconn.ClientName

const validity = 10 * 365 * 24 * time.Hour

// Ensure creates whatever is missing in f.Dir. hosts are the IPs and DNS
// names the serving certificate must be valid for, beyond localhost and the
// kubernetes Service's names; a serving certificate that lacks one is made
// again.
func Ensure(f Files, hosts []string) error {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return fmt.Errorf("creating pki directory: %w", err)
	}
	caCert, caKey, err := ensureCA(f.CACert(), f.CAKey(), "kplex-ca")
	if err != nil {
		return err
	}
	serving := servingTemplate(hosts)
	if err := dropUnfit(f.ServingCert(), serving, caCert); err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	if err := ensureSigned(f.ServingCert(), f.ServingKey(), caCert, caKey, serving); err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	admin := &x509.Certificate{
		Subject:     pkix.Name{CommonName: AdminUser, Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := ensureSigned(f.AdminCert(), f.AdminKey(), caCert, caKey, admin); err != nil {
		return fmt.Errorf("admin certificate: %w", err)
	}
	// The apiserver's identity toward node agents, which serve logs and
	// exec to it alone.
	kubeletClient := &x509.Certificate{
		Subject:     pkix.Name{CommonName: KubeletClientUser, Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := ensureSigned(f.KubeletClientCert(), f.KubeletClientKey(), caCert, caKey, kubeletClient); err != nil {
		return fmt.Errorf("kubelet client certificate: %w", err)
	}
	if _, err := ensureKey(f.ServiceAccountKey()); err != nil {
		return fmt.Errorf("service-account key: %w", err)
	}
	if !exists(f.TenantTokenKey()) {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return fmt.Errorf("tenant token key: %w", err)
		}
		if err := os.WriteFile(f.TenantTokenKey(), secret, 0o600); err != nil {
			return fmt.Errorf("tenant token key: %w", err)
		}
	}
	return nil
}

func servingTemplate(hosts []string) *x509.Certificate {
	t := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kplex-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range append([]string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			t.IPAddresses = append(t.IPAddresses, ip)
		} else if h != "" {
			t.DNSNames = append(t.DNSNames, h)
		}
	}
	return t
}

// dropUnfit removes the certificate at path unless ca signed it for every
// address template names: a PKI made before an address was needed (the
// kubernetes Service's cluster IP, another advertise address) gets a new
// serving certificate, under the same CA and key, so clients keep trusting it.
func dropUnfit(path string, template *x509.Certificate, ca *x509.Certificate) error {
	if !exists(path) {
		return nil
	}
	if certs, err := certutil.CertsFromFile(path); err == nil && certs[0].CheckSignatureFrom(ca) == nil && names(certs[0], template) {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}

// names reports whether cert is valid for every address of template.
func names(cert, template *x509.Certificate) bool {
	for _, ip := range template.IPAddresses {
		if cert.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	for _, name := range template.DNSNames {
		if cert.VerifyHostname(name) != nil {
			return false
		}
	}
	return true
}

// ensureCA reads the CA at certPath and keyPath, or makes one named cn.
func ensureCA(certPath, keyPath, cn string) (*x509.Certificate, crypto.Signer, error) {
	if exists(certPath) && exists(keyPath) {
		certs, err := certutil.CertsFromFile(certPath)
		if err != nil {
			return nil, nil, fmt.Errorf("reading CA certificate: %w", err)
		}
		key, err := keyutil.PrivateKeyFromFile(keyPath)
		if err != nil {
			return nil, nil, fmt.Errorf("reading CA key: %w", err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, nil, errors.New("CA key cannot sign")
		}
		return certs[0], signer, nil
	}
	key, err := ensureKey(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	cert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: cn}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	if err := certutil.WriteCert(certPath, encodeCertPEM(cert)); err != nil {
		return nil, nil, fmt.Errorf("writing CA certificate: %w", err)
	}
	return cert, key, nil
}

func ensureSigned(certPath, keyPath string, ca *x509.Certificate, caKey crypto.Signer, template *x509.Certificate) error {
	if exists(certPath) && exists(keyPath) {
		return nil
	}
	key, err := ensureKey(keyPath)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	template.SerialNumber = serial
	template.NotBefore = time.Now().Add(-time.Hour)
	template.NotAfter = time.Now().Add(validity)
	template.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, template, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	return certutil.WriteCert(certPath, encodeCertPEM(cert))
}

func ensureKey(path string) (crypto.Signer, error) {
	if exists(path) {
		key, err := keyutil.PrivateKeyFromFile(path)
		if err != nil {
			return nil, err
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s is not a signing key", path)
		}
		return signer, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, err
	}
	if err := keyutil.WriteKey(path, der); err != nil {
		return nil, err
	}
	return key, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func encodeCertPEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: cert.Raw})
}

// ServiceAccountSigner reads the key that signs service account tokens,
// for the controller manager's token controller.
func (f Files) ServiceAccountSigner() (any, error) {
	key, err := keyutil.PrivateKeyFromFile(f.ServiceAccountKey())
	if err != nil {
		return nil, fmt.Errorf("reading the service account key: %w", err)
	}
	return key, nil
}

// AdminConfig is a root client config for the server at url, authenticated
// with the admin certificate.
func (f Files) AdminConfig(url string) *rest.Config {
	return &rest.Config{
		Host: url,
		TLSClientConfig: rest.TLSClientConfig{
			CAFile: f.CACert(), CertFile: f.AdminCert(), KeyFile: f.AdminKey(),
		},
		QPS: -1,
	}
}
