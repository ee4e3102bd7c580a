package etcd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/klog/v2"
)

// Embedded is a running embedded etcd member.
type Embedded struct {
	etcd      *embed.Etcd
	clientURL string
}

// Start starts a single-member etcd with its data in dataDir, listening for
// clients on a free loopback port, and waits until it serves or ctx ends.
func Start(ctx context.Context, dataDir string) (*Embedded, error) {
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
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
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
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd failed: %w", err)
	case <-time.After(time.Minute):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s not ready after a minute", dataDir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	klog.InfoS("Embedded etcd ready", "dataDir", dataDir, "clientURL", clientURL.String())
	return &Embedded{etcd: e, clientURL: clientURL.String()}, nil
}

// ClientURL is where the member serves clients.
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
	return &url.URL{Scheme: "http", Host: addr}, nil
}
