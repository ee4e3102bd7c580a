// Package services programs every tenant's Services on one node with
// upstream kube-proxy's nftables proxier, used as a library: one proxier
// and one table for all tenants, fed by cross-tenant Service and
// EndpointSlice caches.
//
// Cluster IPs come from one allocator for all tenants, so one table can
// hold every tenant's Services without two of them claiming an address.
// The proxier keys Services by namespace/name; two tenants' default/web
// would collide there, so each tenant's namespace ns is shown to it as
// "<tenant>.<ns>" (a dot cannot occur in either name, and nft chain names
// allow it, unlike the "~" of package tenantns). Root's default/kubernetes,
// which every tenant reads as its own, is added once.
//
// What a tenant writes can point a Service at addresses that are not its
// own (an EndpointSlice naming another tenant's pod IP, an externalIP).
// The proxier then translates to that address, and package isolation drops
// the packet at the forward hook: the proxier decides where a packet goes,
// never whether it may.
package services

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/proxy"
	proxyconfigapi "k8s.io/kubernetes/pkg/proxy/apis/config"
	proxyconfig "k8s.io/kubernetes/pkg/proxy/config"
	"k8s.io/kubernetes/pkg/proxy/nftables"
	proxyutil "k8s.io/kubernetes/pkg/proxy/util"
	"k8s.io/utils/ptr"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

// Options configure the proxier of one node.
type Options struct {
	// NodeName and NodeIP are the node's (NodePorts, local endpoints).
	NodeName string
	NodeIP   net.IP
	// ClusterCIDR is the pods' range: traffic from it is the cluster's
	// own and keeps its source address.
	ClusterCIDR string
	// ServiceCIDRs are the cluster IP ranges (unknown IPs in them are
	// rejected rather than routed away).
	ServiceCIDRs []string
	// SkipServices are root's Services the node serves itself and the
	// proxier must leave alone (kube-system/kube-dns: the node's DNS
	// server holds its address).
	SkipServices []string
	// MinSyncPeriod bounds how often rules are rewritten; SyncPeriod is
	// the resync. Defaults 1s and 30s, as kube-proxy.
	MinSyncPeriod, SyncPeriod time.Duration
}

// Proxier is the running data plane of Services.
type Proxier struct {
	provider proxy.Provider
}

// Join is the namespace the proxier sees for tenant t's namespace ns.
func Join(t, ns string) string { return t + "." + ns }

// Split undoes Join.
func Split(joined string) (t, ns string, ok bool) { return strings.Cut(joined, ".") }

// Start builds the proxier and feeds it until ctx ends. root addresses the
// management plane, cross every tenant (crosstenant.Config).
func Start(ctx context.Context, root, cross kubernetes.Interface, o Options) (*Proxier, error) {
	if o.MinSyncPeriod == 0 {
		o.MinSyncPeriod = time.Second
	}
	if o.SyncPeriod == 0 {
		o.SyncPeriod = 30 * time.Second
	}
	cfg := &proxyconfigapi.KubeProxyConfiguration{
		NFTables:      proxyconfigapi.KubeProxyNFTablesConfiguration{MasqueradeBit: ptr.To[int32](14)},
		SyncPeriod:    metav1.Duration{Duration: o.SyncPeriod},
		MinSyncPeriod: metav1.Duration{Duration: o.MinSyncPeriod},
	}
	logger := klog.FromContext(ctx).WithName("services")
	ctx = klog.NewContext(ctx, logger)
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: root.EventsV1()})
	recorder := broadcaster.NewRecorder(nil, "kplex-nodeagent")
	p, err := nftables.NewProxier(ctx, cfg, v1.IPv4Protocol, proxyutil.NewDetectLocalByCIDR(o.ClusterCIDR), o.NodeName, o.NodeIP, recorder, nil, false)
	if err != nil {
		return nil, fmt.Errorf("starting the nftables proxier: %w", err)
	}
	p.OnServiceCIDRsChanged(o.ServiceCIDRs)
	skip := map[string]bool{}
	for _, s := range o.SkipServices {
		skip[s] = true
	}
	// Every tenant's Services and EndpointSlices (root's shared ones
	// among them: the wildcard lists root's too), listed then watched:
	// client-go's watch-list keys what it gathers by namespace/name, where
	// two tenants' default/web would be one.
	shown := transform(unsafeRanges(o), skip)
	services := crossInformer(cross.CoreV1().RESTClient(), "services", &v1.Service{}, shown)
	slices := crossInformer(cross.DiscoveryV1().RESTClient(), "endpointslices", &discoveryv1.EndpointSlice{}, shown)
	svcConfig := proxyconfig.NewServiceConfig(ctx, serviceInformer{services}, o.SyncPeriod)
	svcConfig.RegisterEventHandler(p)
	sliceConfig := proxyconfig.NewEndpointSliceConfig(ctx, sliceInformer{slices}, o.SyncPeriod)
	sliceConfig.RegisterEventHandler(p)
	go svcConfig.Run(ctx.Done())
	go sliceConfig.Run(ctx.Done())
	go services.RunWithContext(ctx)
	go slices.RunWithContext(ctx)

	go p.SyncLoop()
	go func() {
		<-ctx.Done()
		broadcaster.Shutdown()
	}()
	return &Proxier{provider: p}, nil
}

// Sync applies pending changes now.
func (p *Proxier) Sync() { p.provider.Sync() }

// crossInformer is an informer of resource in every tenant, through
// client (of crosstenant.Config), without watch-list.
func crossInformer(client rest.Interface, resource string, example runtime.Object, transform cache.TransformFunc) cache.SharedIndexInformer {
	inf := cache.NewSharedIndexInformer(crosstenant.ListWatch(client, resource), example, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	_ = inf.SetTransform(transform)
	return inf
}

// serviceInformer and sliceInformer show an informer as the typed ones
// the proxier's configs take.
type serviceInformer struct{ cache.SharedIndexInformer }

func (i serviceInformer) Informer() cache.SharedIndexInformer { return i.SharedIndexInformer }
func (i serviceInformer) Lister() corelisters.ServiceLister {
	return corelisters.NewServiceLister(i.GetIndexer())
}

type sliceInformer struct{ cache.SharedIndexInformer }

func (i sliceInformer) Informer() cache.SharedIndexInformer { return i.SharedIndexInformer }
func (i sliceInformer) Lister() discoverylisters.EndpointSliceLister {
	return discoverylisters.NewEndpointSliceLister(i.GetIndexer())
}

// transform shows a tenant's object in its joined namespace, and drops
// what a tenant may not claim: external and load-balancer IPs in the
// cluster's own ranges (another tenant's pods or Services). Of root's
// objects it keeps those every tenant reads as its own (default/kubernetes)
// but for skip, and hides the rest.
func transform(unsafe []netip.Prefix, skip map[string]bool) func(any) (any, error) {
	return func(obj any) (any, error) {
		m, ok := obj.(metav1.Object)
		if !ok {
			return obj, nil
		}
		t := crosstenant.TenantOf(m)
		if t == "" {
			return nil, fmt.Errorf("%T %s/%s carries no tenant identity", obj, m.GetNamespace(), m.GetName())
		}
		m.SetManagedFields(nil)
		if t == tenant.Root {
			hideUnshared(obj, m, skip)
			return obj, nil
		}
		if ns := m.GetNamespace(); ns != "" && !strings.Contains(ns, ".") {
			m.SetNamespace(Join(t, ns))
		}
		if s, ok := obj.(*v1.Service); ok {
			s.Spec.ExternalIPs = safeIPs(s.Spec.ExternalIPs, unsafe)
			var ingress []v1.LoadBalancerIngress
			for _, in := range s.Status.LoadBalancer.Ingress {
				if len(safeIPs([]string{in.IP}, unsafe)) == 1 {
					ingress = append(ingress, in)
				}
			}
			s.Status.LoadBalancer.Ingress = ingress
		}
		return obj, nil
	}
}

// hideUnshared moves root's object out of the proxier's sight unless every
// tenant reads it as its own: to a namespace no Service is in, and a
// Service to no cluster IP. (An error would fail the whole list.)
func hideUnshared(obj any, m metav1.Object, skip map[string]bool) {
	name := m.GetName()
	if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
		name = s.Labels[discoveryv1.LabelServiceName]
	}
	if shared(m.GetNamespace(), name) && !skip[m.GetNamespace()+"/"+name] {
		return
	}
	m.SetNamespace("kplex-hidden")
	if s, ok := obj.(*v1.Service); ok {
		s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.Type = v1.ClusterIPNone, nil, v1.ServiceTypeClusterIP
		s.Spec.ExternalIPs = nil
	}
}

// shared names root's Services every tenant reads as its own.
func shared(namespace, name string) bool {
	return namespace == metav1.NamespaceDefault && name == "kubernetes"
}

func unsafeRanges(o Options) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range append([]string{o.ClusterCIDR}, o.ServiceCIDRs...) {
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p)
		}
	}
	if a, ok := netip.AddrFromSlice(o.NodeIP); ok {
		out = append(out, netip.PrefixFrom(a.Unmap(), 32))
	}
	return out
}

func safeIPs(ips []string, unsafe []netip.Prefix) []string {
	var out []string
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		ok := true
		for _, p := range unsafe {
			if p.Contains(a.Unmap()) {
				ok = false
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}
