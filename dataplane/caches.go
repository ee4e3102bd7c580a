package dataplane

import (
	"context"
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

// byPodIP indexes pods by the IPs of their own network namespace: the
// address a packet or a DNS query comes from names its pod, and so its
// tenant. Pods on the node's network have the node's IP, which names no
// pod.
const byPodIP = "pod-ip"

// tenants are the caches of every tenant's objects the data plane reads.
// The wildcard lists root's objects too: root's Services that every
// tenant reads as its own are among them.
type tenants struct {
	pods, namespaces, policies, services, slices *crosstenant.Cache
}

func startCaches(ctx context.Context, cross kubernetes.Interface) (*tenants, error) {
	rest := cross.CoreV1().RESTClient()
	t := &tenants{
		pods:       crosstenant.NewCache(crosstenant.ListWatch(rest, "pods"), &v1.Pod{}),
		namespaces: crosstenant.NewCache(crosstenant.ListWatch(rest, "namespaces"), &v1.Namespace{}),
		services:   crosstenant.NewCache(crosstenant.ListWatch(rest, "services"), &v1.Service{}),
		policies:   crosstenant.NewCache(crosstenant.ListWatch(cross.NetworkingV1().RESTClient(), "networkpolicies"), &networkingv1.NetworkPolicy{}),
		slices:     crosstenant.NewCache(crosstenant.ListWatch(cross.DiscoveryV1().RESTClient(), "endpointslices"), &discoveryv1.EndpointSlice{}),
	}
	if err := t.pods.AddIndexers(cache.Indexers{byPodIP: podIPs}); err != nil {
		return nil, fmt.Errorf("indexing pods by IP: %w", err)
	}
	if err := t.slices.AddTenantIndexers(cache.Indexers{byService: sliceService}); err != nil {
		return nil, fmt.Errorf("indexing endpoint slices: %w", err)
	}
	all := []*crosstenant.Cache{t.pods, t.namespaces, t.services, t.policies, t.slices}
	for _, c := range all {
		go c.Run(ctx)
	}
	synced := []cache.InformerSynced{}
	for _, c := range all {
		synced = append(synced, c.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil, fmt.Errorf("data plane caches: %w", ctx.Err())
	}
	return t, nil
}

func podIPs(obj any) ([]string, error) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.HostNetwork || pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		return nil, nil
	}
	var out []string
	for _, ip := range pod.Status.PodIPs {
		out = append(out, ip.IP)
	}
	return out, nil
}

// byService indexes EndpointSlices by their Service, within a tenant.
const byService = "service"

func sliceService(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
}

// podByIP returns the pod that has ip, if exactly one tenant's does.
func (t *tenants) podByIP(ip netip.Addr) *v1.Pod {
	objs, _ := t.pods.ByIndex(byPodIP, ip.Unmap().String())
	if len(objs) != 1 {
		// None, or (for an instant, as a pod goes and another comes) two:
		// never guess between tenants.
		return nil
	}
	return objs[0].(*v1.Pod)
}

// sharedService is root's Service that every tenant reads as its own.
func sharedService(namespace, name string) bool {
	return (namespace == "default" && name == "kubernetes") || (namespace == "kube-system" && name == "kube-dns")
}

// service returns tenant t's Service, or root's shared one of that name.
func (t *tenants) service(tenantName, namespace, name string) *v1.Service {
	if obj := t.services.Get(tenantName, namespace, name); obj != nil {
		return obj.(*v1.Service)
	}
	if obj := t.services.Get(tenant.Root, namespace, name); obj != nil && sharedService(namespace, name) {
		return obj.(*v1.Service)
	}
	return nil
}

// endpointSlices returns the slices of tenant t's Service (root's for a
// shared one the tenant does not have itself).
func (t *tenants) endpointSlices(tenantName, namespace, service string) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	if t.services.Get(tenantName, namespace, service) == nil && sharedService(namespace, service) {
		tenantName = tenant.Root
	}
	objs, _ := t.slices.ByIndex(byService, tenantIndex(tenantName, namespace+"/"+service))
	for _, o := range objs {
		out = append(out, o.(*discoveryv1.EndpointSlice))
	}
	return out
}

// tenantIndex is the value a tenant-scoped index (AddTenantIndexers)
// stores for value v of tenant t.
func tenantIndex(t, v string) string { return t + "/" + v }
