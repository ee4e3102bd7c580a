package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/kplex/kplex/apiserver/pki"
)

// start starts a member in a fresh directory with the apiserver's PKI
// beside the etcd one, as a kplex data directory has.
func start(t *testing.T) (*Embedded, pki.Files) {
	t.Helper()
	dir := t.TempDir()
	files := pki.Files{Dir: filepath.Join(dir, "pki")}
	if err := pki.Ensure(files, nil); err != nil {
		t.Fatal(err)
	}
	e, err := Start(ctxT(t), filepath.Join(dir, "etcd"), files)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, files
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// tlsConfig trusts the etcd CA and presents certFile, if any.
func tlsConfig(t *testing.T, files pki.Files, certFile, keyFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(files.EtcdCACert())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no etcd CA certificate")
	}
	c := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c
}

// getVersion asks rawURL's /version, which a member serves on both its
// client and peer ports, with c (nil for plain HTTP).
func getVersion(rawURL string, c *tls.Config) error {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c}}
	resp, err := client.Get(rawURL + "/version")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "etcdserver") {
		return errors.New(resp.Status + ": " + string(body))
	}
	return nil
}

// The client port serves only clients with a certificate of the etcd CA;
// the apiserver's client certificate works, over https.
func TestClientPortServesOnlyMutualTLS(t *testing.T) {
	t.Parallel()
	e, files := start(t)
	u, err := url.Parse(e.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "https" || u.Hostname() != "127.0.0.1" {
		t.Fatalf("client URL %s, want https on 127.0.0.1", e.ClientURL())
	}
	etcdClient := tlsConfig(t, files, files.EtcdClientCert(), files.EtcdClientKey())
	if err := getVersion(e.ClientURL(), etcdClient); err != nil {
		t.Fatalf("the apiserver's etcd client certificate: %v", err)
	}

	plain := "http://" + u.Host
	if err := getVersion(plain, nil); err == nil {
		t.Error("plain HTTP served")
	}
	if err := getVersion(e.ClientURL(), tlsConfig(t, files, "", "")); !refused(err) {
		t.Errorf("no client certificate: %v, want a TLS certificate error", err)
	}
	// The apiserver's client CA signs the admin certificate, and node
	// certificates one day: none of them is etcd's to accept.
	if err := getVersion(e.ClientURL(), tlsConfig(t, files, files.AdminCert(), files.AdminKey())); !refused(err) {
		t.Errorf("the apiserver CA's admin certificate: %v, want a TLS certificate error", err)
	}
	if _, err := kv(t, plain, nil, "plain"); err == nil {
		t.Error("etcd client over plain HTTP wrote and read a key")
	}

	tlsInfo := transport.TLSInfo{CertFile: files.EtcdClientCert(), KeyFile: files.EtcdClientKey(), TrustedCAFile: files.EtcdCACert()}
	c, err := tlsInfo.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kv(t, e.ClientURL(), c, "mtls"); err != nil || got != "mtls" {
		t.Errorf("etcd client with the apiserver's certificate read %q, %v", got, err)
	}
}

// The peer port, which a single member never needs, takes only the peer
// certificate: not even the apiserver's certificate of the etcd CA.
func TestPeerPortTakesOnlyThePeerCertificate(t *testing.T) {
	t.Parallel()
	e, files := start(t)
	peers := e.etcd.Config().ListenPeerUrls
	if len(peers) != 1 || peers[0].Scheme != "https" || peers[0].Hostname() != "127.0.0.1" {
		t.Fatalf("peer URLs %v, want one https URL on 127.0.0.1", peers)
	}
	peer := peers[0].String()
	if err := getVersion(peer, tlsConfig(t, files, files.EtcdPeerCert(), files.EtcdPeerKey())); err != nil {
		t.Fatalf("the peer certificate: %v", err)
	}
	if err := getVersion("http://"+peers[0].Host, nil); err == nil {
		t.Error("plain HTTP served on the peer port")
	}
	for name, c := range map[string]*tls.Config{
		"no certificate": tlsConfig(t, files, "", ""),
		"the apiserver's etcd client certificate": tlsConfig(t, files, files.EtcdClientCert(), files.EtcdClientKey()),
		"the apiserver CA's admin certificate":    tlsConfig(t, files, files.AdminCert(), files.AdminKey()),
	} {
		if err := getVersion(peer, c); err == nil {
			t.Errorf("peer port with %s: served", name)
		}
	}
}

// A data directory an older kplex made, when etcd served plain HTTP, keeps
// its data under mutual TLS.
func TestStartKeepsDataOfAPlainHTTPMember(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "etcd")
	writePlain(t, dataDir, "/registry/kept", "yes")

	files := pki.Files{Dir: filepath.Join(dir, "pki")}
	e, err := Start(ctxT(t), dataDir, files)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c, err := (transport.TLSInfo{CertFile: files.EtcdClientCert(), KeyFile: files.EtcdClientKey(), TrustedCAFile: files.EtcdCACert()}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := newClient(t, e.ClientURL(), c).Get(ctx, "/registry/kept")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "yes" {
		t.Errorf("key of the plain HTTP member: %v, %v", resp, err)
	}
}

// writePlain puts key in a member at dataDir configured as kplex's did
// before mutual TLS.
func writePlain(t *testing.T, dataDir, key, value string) {
	t.Helper()
	clientURL, peerURL := plainURL(t), plainURL(t)
	cfg := embed.NewConfig()
	cfg.Name = "kplex"
	cfg.Dir = dataDir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*clientURL}, []url.URL{*clientURL}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peerURL}, []url.URL{*peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := waitReady(ctxT(t), e); err != nil {
		t.Fatal(err)
	}
	// The probes TestClientPortServesOnlyMutualTLS expects to fail on plain
	// HTTP succeed on a plain member.
	if err := getVersion(clientURL.String(), nil); err != nil {
		t.Fatalf("plain member: %v", err)
	}
	if got, err := kv(t, clientURL.String(), nil, value); err != nil || got != value {
		t.Fatalf("plain member: read %q, %v", got, err)
	}
	if _, err := newClient(t, clientURL.String(), nil).Put(ctxT(t), key, value); err != nil {
		t.Fatal(err)
	}
}

func plainURL(t *testing.T) *url.URL {
	u, err := freeURL()
	if err != nil {
		t.Fatal(err)
	}
	u.Scheme = "http"
	return u
}

func newClient(t *testing.T, endpoint string, c *tls.Config) *clientv3.Client {
	t.Helper()
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, TLS: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// kv puts value under a key and reads it back through endpoint.
func kv(t *testing.T, endpoint string, c *tls.Config, value string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := newClient(t, endpoint, c)
	if _, err := client.Put(ctx, "/kplex-test/"+value, value); err != nil {
		return "", err
	}
	resp, err := client.Get(ctx, "/kplex-test/"+value)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) != 1 {
		return "", errors.New("key not found")
	}
	return string(resp.Kvs[0].Value), nil
}

// refused reports whether err is the server's refusal of the client's
// certificate in the TLS handshake.
func refused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "tls:") && strings.Contains(err.Error(), "certificate")
}
