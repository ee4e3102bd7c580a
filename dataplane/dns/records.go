package dns

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Records is the cluster data the server answers from. The node agent
// implements it over its cross-tenant caches; every method is called on the
// query path and must be cheap and safe for concurrent use.
type Records interface {
	// PodByIP names the pod that has ip: its tenant and namespace; ok is
	// false when no pod has it. This is how the server learns who asks.
	PodByIP(ip netip.Addr) (tenant, namespace string, ok bool)
	// Service returns tenant's Service namespace/name, or nil. The shared
	// default/kubernetes and kube-system/kube-dns are the implementation's
	// to resolve.
	Service(tenant, namespace, name string) *corev1.Service
	// EndpointSlices returns tenant's EndpointSlices of Service
	// namespace/service (label kubernetes.io/service-name).
	EndpointSlices(tenant, namespace, service string) []*discoveryv1.EndpointSlice
	// PodIPInNamespace reports whether tenant has a pod with ip in
	// namespace: pod A records are only answered for real pods.
	PodIPInNamespace(tenant, namespace string, ip netip.Addr) bool
}

// ServiceIPs is an optional ability of Records: when the Records also
// implement it, the server answers PTR queries for the asking tenant's
// ClusterIPs.
type ServiceIPs interface {
	// ServiceByClusterIP names tenant's Service that has ip among its
	// ClusterIPs; ok is false when none has.
	ServiceByClusterIP(tenant string, ip netip.Addr) (namespace, name string, ok bool)
}
