package dataplane

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/dataplane/dns"
	"github.com/kplex/kplex/dataplane/isolation"
)

// startIsolation keeps package isolation's rules in step with every
// tenant's pods, namespaces and NetworkPolicies: a change marks them dirty,
// and one goroutine syncs at most every syncEvery.
func startIsolation(ctx context.Context, t *tenants) error {
	nft, err := isolation.NewInterface()
	if err != nil {
		return fmt.Errorf("tenant isolation: %w", err)
	}
	syncer := isolation.New(nft)
	dirty := make(chan struct{}, 1)
	mark := func(string) {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	for _, c := range []*crosstenant.Cache{t.pods, t.namespaces, t.policies} {
		c.Watch(mark)
	}
	snapshot := func() isolation.Snapshot {
		var pods []*v1.Pod
		for _, o := range t.pods.List() {
			pods = append(pods, o.(*v1.Pod))
		}
		var namespaces []*v1.Namespace
		for _, o := range t.namespaces.List() {
			namespaces = append(namespaces, o.(*v1.Namespace))
		}
		var policies []*networkingv1.NetworkPolicy
		for _, o := range t.policies.List() {
			policies = append(policies, o.(*networkingv1.NetworkPolicy))
		}
		return isolation.SnapshotFrom(pods, namespaces, policies)
	}
	// The first rules are in place before a pod of this node can start.
	if err := syncer.Sync(ctx, snapshot()); err != nil {
		return fmt.Errorf("tenant isolation: %w", err)
	}
	go func() {
		logger := klog.FromContext(ctx).WithName("isolation")
		for {
			select {
			case <-ctx.Done():
				return
			case <-dirty:
			}
			if err := syncer.Sync(ctx, snapshot()); err != nil && ctx.Err() == nil {
				logger.Error(err, "Syncing tenant isolation rules")
				mark("")
			}
			time.Sleep(syncEvery)
		}
	}()
	return nil
}

// syncEvery bounds how often isolation rules are rewritten: a burst of pod
// changes costs one rewrite.
const syncEvery = 100 * time.Millisecond

// startDNS serves cluster DNS on the cluster DNS address, which nodenet
// put on the node.
func startDNS(ctx context.Context, t *tenants, o Options) error {
	s, err := dns.New(dns.Config{
		Addresses:     []string{net.JoinHostPort(o.ClusterDNS.String(), "53")},
		ClusterDomain: o.ClusterDomain,
		Upstreams:     o.DNSUpstreams,
		Records:       records{t},
	})
	if err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	return nil
}

// records answers the DNS server from the data plane's caches.
type records struct{ t *tenants }

func (r records) PodByIP(ip netip.Addr) (string, string, bool) {
	pod := r.t.podByIP(ip)
	if pod == nil {
		return "", "", false
	}
	return crosstenant.TenantOf(pod), pod.Namespace, true
}

func (r records) Service(tenantName, namespace, name string) *v1.Service {
	return r.t.service(tenantName, namespace, name)
}

func (r records) EndpointSlices(tenantName, namespace, service string) []*discoveryv1.EndpointSlice {
	return r.t.endpointSlices(tenantName, namespace, service)
}

func (r records) PodIPInNamespace(tenantName, namespace string, ip netip.Addr) bool {
	pod := r.t.podByIP(ip)
	return pod != nil && crosstenant.TenantOf(pod) == tenantName && pod.Namespace == namespace
}
