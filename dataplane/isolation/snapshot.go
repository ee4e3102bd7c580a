package isolation

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kplex/kplex/client/crosstenant"
)

// Pod is what isolation knows about one pod of some tenant.
type Pod struct {
	// Tenant is the server-stamped tenant. A pod whose tenant is empty (or not a
	// tenant name) is fenced: its IPs reach nothing and nothing from a pod
	// reaches them, because isolation cannot say whose they are.
	Tenant    string
	Namespace string
	Name      string
	// IPs are the pod's own addresses (status.podIPs), assigned by its node.
	IPs []netip.Addr
	// Labels are matched by NetworkPolicy pod selectors.
	Labels map[string]string
	// Ports resolve named ports in NetworkPolicy rules.
	Ports []corev1.ContainerPort
}

// Namespace is what isolation knows about one namespace of some tenant.
type Namespace struct {
	Tenant string
	Name   string
	// Labels are matched by namespaceSelector; kubernetes.io/metadata.name is
	// added when absent, as the apiserver does.
	Labels map[string]string
}

// Snapshot is the whole input of a Sync: every pod with an IP in the cluster
// (not only this node's: forwarded traffic to and from other nodes' pods is
// checked here too), every namespace and every NetworkPolicy, of every tenant.
type Snapshot struct {
	Pods       []Pod
	Namespaces []Namespace
	// Policies carry their tenant in the kplex.io/tenant annotation; a policy
	// without one is ignored.
	Policies []*networkingv1.NetworkPolicy
}

// SnapshotFrom converts API objects read across tenants. hostNetwork pods use
// their node's address, which is not theirs to be isolated by, and pods that
// have finished or have no IP yet hold no address, so all three are left out.
func SnapshotFrom(pods []*corev1.Pod, namespaces []*corev1.Namespace, policies []*networkingv1.NetworkPolicy) Snapshot {
	snap := Snapshot{Policies: policies}
	for _, p := range pods {
		if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ips := podIPs(p)
		if len(ips) == 0 {
			continue
		}
		snap.Pods = append(snap.Pods, Pod{
			Tenant:    crosstenant.TenantOf(p),
			Namespace: p.Namespace,
			Name:      p.Name,
			IPs:       ips,
			Labels:    p.Labels,
			Ports:     containerPorts(p),
		})
	}
	for _, ns := range namespaces {
		snap.Namespaces = append(snap.Namespaces, Namespace{
			Tenant: crosstenant.TenantOf(ns),
			Name:   ns.Name,
			Labels: ns.Labels,
		})
	}
	return snap
}

func podIPs(p *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	add := func(s string) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		a = a.Unmap()
		for _, have := range out {
			if have == a {
				return
			}
		}
		out = append(out, a)
	}
	for _, ip := range p.Status.PodIPs {
		add(ip.IP)
	}
	if p.Status.PodIP != "" {
		add(p.Status.PodIP)
	}
	return out
}

// containerPorts gathers the ports of every container that can serve
// traffic, restartable init containers (sidecars) included, as upstream
// resolves named ports over all of them.
func containerPorts(p *corev1.Pod) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, c := range p.Spec.InitContainers {
		out = append(out, c.Ports...)
	}
	for _, c := range p.Spec.Containers {
		out = append(out, c.Ports...)
	}
	return out
}
