package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	v1helper "k8s.io/kubernetes/pkg/apis/core/v1/helper"
	"k8s.io/kubernetes/pkg/kubelet/envvars"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/client/pools"
	"github.com/kplex/kplex/dataplane/dns"
	"github.com/kplex/kplex/tenant"
)

// needsNetwork says whether the pod gets a network namespace of its own
// (and so must wait for the node's pod network).
func (w *podWorker) needsNetwork(pod *v1.Pod) bool {
	return w.agent.net != nil && !pod.Spec.HostNetwork
}

// readPodIPs learns the pod's IPs from its sandbox, once per sandbox: the
// network plugin chose them when the sandbox was made.
func (w *podWorker) readPodIPs(ctx context.Context, pod *v1.Pod, sandboxID string) {
	if !w.needsNetwork(pod) || sandboxID == "" || w.ipsOf == sandboxID {
		return
	}
	st, err := w.agent.runtime.Service.PodSandboxStatus(ctx, sandboxID, false)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Reading the pod's IPs")
		return
	}
	var ips []string
	if n := st.GetStatus().GetNetwork(); n != nil && n.Ip != "" {
		ips = append(ips, n.Ip)
		for _, extra := range n.AdditionalIps {
			ips = append(ips, extra.Ip)
		}
	}
	w.podIPs, w.ipsOf = ips, sandboxID
}

// refuseHostNamespaces says why a tenant's pod that shares one of the
// node's namespaces may not run on this node, with the pod's failure
// reason, or "". Only a node fenced to the pod's tenant (--tenant) runs
// such pods; root's (the operator's) run anywhere. Whatever the tenant's
// Pod Security level, a shared node's processes (hostPID), IPC (hostIPC)
// and, on a node of the pod network, its network are every tenant's: its
// addresses, its routes to every pod, its DNS and agent ports, which the
// isolation rules cannot tell from the node's own.
func (a *Agent) refuseHostNamespaces(ctx context.Context, tenantName string, pod *v1.Pod) (reason, message string) {
	hostNetwork := pod.Spec.HostNetwork && a.net != nil && a.net.cni
	if tenantName == tenant.Root || !hostNetwork && !pod.Spec.HostPID && !pod.Spec.HostIPC || a.fencedTo(ctx, tenantName) {
		return "", ""
	}
	if hostNetwork {
		return "HostNetworkRefused", fmt.Sprintf("hostNetwork pods of tenant %s run only on nodes fenced to it (kplex-nodeagent --tenant %s): node %s is shared, and its network is every tenant's", tenantName, tenantName, a.name)
	}
	for _, shared := range []struct {
		on   bool
		name string
	}{{pod.Spec.HostPID, "hostPID"}, {pod.Spec.HostIPC, "hostIPC"}} {
		if shared.on {
			return "HostNamespaceRefused", fmt.Sprintf("%s pods of tenant %s run only on nodes fenced to it (kplex-nodeagent --tenant %s): node %s is shared, and its processes and IPC are every tenant's", shared.name, tenantName, tenantName, a.name)
		}
	}
	return "", ""
}

// fencedTo reports whether this node is the tenant's alone: fenced by
// --tenant, or in a pool dedicated to it.
func (a *Agent) fencedTo(ctx context.Context, tenantName string) bool {
	if a.cfg.Tenant == tenantName {
		return true
	}
	if a.pools == nil {
		return false
	}
	_, pool, err := a.nodePool(ctx)
	return err == nil && pool != nil && pool.Spec.Mode == schedulingv1alpha1.Dedicated && pools.Admits(pool, tenantName)
}

// nodePool reads the agent's Node and the NodePool it is in (nil for
// none): pools may take nodes by their labels, which the operator sets.
func (a *Agent) nodePool(ctx context.Context) (*v1.Node, *schedulingv1alpha1.NodePool, error) {
	if !a.pools.HasSynced() {
		return nil, nil, errors.New("the node pools are not read yet")
	}
	node, err := a.root.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("reading node %s for its pool: %w", a.name, err)
	}
	return node, a.pools.Pool(a.pools.PoolOf(node.Labels)), nil
}

// ips are the pod's IPs for its status: the node's for a pod on the node's
// network, the sandbox's otherwise (none until it has one).
func (w *podWorker) ips(pod *v1.Pod) []v1.PodIP {
	if !w.needsNetwork(pod) {
		return []v1.PodIP{{IP: w.agent.cfg.NodeIP}}
	}
	var out []v1.PodIP
	for _, ip := range w.podIPs {
		out = append(out, v1.PodIP{IP: ip})
	}
	return out
}

// portMappings are the pod's hostPorts, which the portmap plugin maps.
func portMappings(pod *v1.Pod) []*runtimeapi.PortMapping {
	if pod.Spec.HostNetwork {
		return nil
	}
	var out []*runtimeapi.PortMapping
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			proto := runtimeapi.Protocol_TCP
			switch p.Protocol {
			case v1.ProtocolUDP:
				proto = runtimeapi.Protocol_UDP
			case v1.ProtocolSCTP:
				proto = runtimeapi.Protocol_SCTP
			}
			out = append(out, &runtimeapi.PortMapping{Protocol: proto, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP})
		}
	}
	return out
}

// dnsConfig is the pod's resolv.conf by the kubelet's rules (package
// dns): ClusterFirst asks the node's cluster DNS with the search path of
// the pod's namespace; Default is the host's; None only the pod's
// dnsConfig. A node whose pods share its network serves no cluster DNS.
func (w *podWorker) dnsConfig(pod *v1.Pod) (*runtimeapi.DNSConfig, error) {
	nameserver := w.agent.cfg.ClusterDNS
	if w.agent.net == nil {
		nameserver = ""
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	r, err := dns.PodResolver(pod.Spec.DNSPolicy, pod.Spec.DNSConfig, pod.Spec.HostNetwork, pod.Namespace, w.agent.cfg.ClusterDomain, nameserver, withoutLoopback(host))
	if err != nil {
		return nil, err
	}
	return &runtimeapi.DNSConfig{Servers: r.Nameservers, Searches: r.Searches, Options: r.Options}, nil
}

// withoutLoopback drops the host's loopback nameservers, which mean
// nothing in a pod's own network namespace (systemd-resolved's 127.0.0.53).
func withoutLoopback(resolvConf []byte) []byte {
	var out []string
	for _, line := range strings.Split(string(resolvConf), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			if ip := net.ParseIP(f[1]); ip != nil && ip.IsLoopback() {
				continue
			}
		}
		out = append(out, line)
	}
	return []byte(strings.Join(out, "\n"))
}

// serviceEnv are the Services' variables the kubelet gives a container:
// KUBERNETES_SERVICE_HOST/_PORT (default/kubernetes, which every tenant
// reads as its own) always, and with enableServiceLinks those of every
// Service in the pod's namespace, all read from the pod's own tenant.
func (w *podWorker) serviceEnv(ctx context.Context, pod *v1.Pod) ([]v1.EnvVar, error) {
	var services []*v1.Service
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	if links {
		var list v1.ServiceList
		raw, err := w.agent.tenants.Get().AbsPath(tenant.Path(w.tenant), "api/v1/namespaces", pod.Namespace, "services").DoRaw(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the namespace's services: %w", err)
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("listing the namespace's services: %w", err)
		}
		for i := range list.Items {
			if s := &list.Items[i]; v1helper.IsServiceIPSet(s) && !(pod.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes") {
				services = append(services, s)
			}
		}
	}
	var master v1.Service
	if err := w.get(ctx, metav1.NamespaceDefault, "services", "kubernetes", &master); err == nil {
		services = append(services, &master)
	} else if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading default/kubernetes: %w", err)
	}
	return envvars.FromServices(services), nil
}

// hostNameservers are the host's resolvers (host:53), to which the node's
// DNS server forwards names outside the cluster domain.
func hostNameservers() []string {
	host, _ := os.ReadFile("/etc/resolv.conf")
	var out []string
	for _, line := range strings.Split(string(withoutLoopback(host)), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, net.JoinHostPort(f[1], "53"))
		}
	}
	return out
}
