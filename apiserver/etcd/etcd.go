package etcd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/apiserver/pki"
)

// Embedded is a running embedded etcd member.
type Embedded struct {
	etcd      *embed.Etcd
	clientURL string
}

// Start starts a single-member etcd with its data in dataDir, serving
// clients on a free loopback port over mutual TLS only, and waits until it
// serves or ctx ends. Its certificates are certs' etcd PKI, made if missing:
// clients need certs.EtcdClientCert (or another certificate the etcd CA
// signed) and trust certs.EtcdCACert.
func Start(ctx context.Context, dataDir string, certs pki.Files) (*Embedded, error) {
	if err := pki.EnsureEtcd(certs); err != nil {
		return nil, fmt.Errorf("preparing the etcd PKI in %s: %w", certs.Dir, err)
	}
	clientURL, err := freeURL()
	if err != nil {
		return nil, err
	}
	peerURL, err := freeURL()
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "kplex"
	cfg.Dir = dataDir
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ClientTLSInfo = clientTLS(certs)
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.PeerTLSInfo = peerTLS(certs)
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	// Keep history short: the watch cache serves reads, and compaction keeps
	// the database from growing without bound.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "5m"
	cfg.QuotaBackendBytes = 8 << 30

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd in %s: %w", dataDir, err)
	}
	if err := waitReady(ctx, e); err != nil {
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", dataDir, err)
	}
	klog.InfoS("Embedded etcd ready", "dataDir", dataDir, "clientURL", clientURL.String(), "clientCA", certs.EtcdCACert())
	return &Embedded{etcd: e, clientURL: clientURL.String()}, nil
}

// clientTLS admits only clients with a certificate of the etcd CA: the
// port is on loopback, but every process of the host (a hostNetwork pod
// too) reaches loopback.
func clientTLS(certs pki.Files) transport.TLSInfo {
	return transport.TLSInfo{
		CertFile:       certs.EtcdServerCert(),
		KeyFile:        certs.EtcdServerKey(),
		TrustedCAFile:  certs.EtcdCACert(),
		ClientCertAuth: true,
	}
}

// peerTLS guards the peer port, which a single member never dials but
// must listen on (etcd has no member without one), and whose handlers
// (raft messages, lease renewals, member list) would otherwise be open to
// the host: mutual TLS under the etcd CA, and only the peer certificate's
// name, so that the apiserver's client certificate does not open it either.
func peerTLS(certs pki.Files) transport.TLSInfo {
	return transport.TLSInfo{
		CertFile:       certs.EtcdPeerCert(),
		KeyFile:        certs.EtcdPeerKey(),
		TrustedCAFile:  certs.EtcdCACert(),
		ClientCertAuth: true,
		AllowedCNs:     []string{pki.EtcdPeerName},
	}
}

func waitReady(ctx context.Context, e *embed.Etcd) error {
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("failed: %w", err)
	case <-time.After(time.Minute):
		return fmt.Errorf("not ready after a minute")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ClientURL is where the member serves clients (https).
func (e *Embedded) ClientURL() string { return e.clientURL }

// Err reports a failure of the running member.
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Close stops the member; it may be called more than once.
func (e *Embedded) Close() { e.etcd.Close() }

func freeURL() (*url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free port for etcd: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return &url.URL{Scheme: "https", Host: addr}, nil
}
