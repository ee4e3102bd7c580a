package serviceaddresses

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/initializer"
	"k8s.io/client-go/informers"
	corev1listers "k8s.io/client-go/listers/core/v1"
	api "k8s.io/kubernetes/pkg/apis/core"
	netutils "k8s.io/utils/net"

	"github.com/kplex/kplex/tenant"
)

// PluginName is the name the plugin is registered and enabled by.
const PluginName = "TenantServiceAddresses"

// why ends every refusal.
const why = "kplex never routes a tenant's Service to addresses it does not own"

var servicesResource = api.Resource("services")

// Networks are the address ranges kplex hands out itself.
type Networks struct {
	// Pods is the cluster CIDR (--cluster-cidr), every node's pod CIDR
	// cut from it.
	Pods []netip.Prefix
	// Services are the service CIDRs (--service-cluster-ip-range).
	Services []netip.Prefix
}

// Prefixes converts parsed CIDRs, as flags give them, to prefixes; nil
// entries and empty nets are skipped.
func Prefixes(cidrs ...*net.IPNet) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cidrs {
		if c == nil || c.IP == nil {
			continue
		}
		addr, ok := netip.AddrFromSlice(c.IP)
		if !ok {
			continue
		}
		ones, bits := c.Mask.Size()
		if addr.Unmap().Is4() && bits == 8*net.IPv6len {
			ones -= 96
		}
		out = append(out, netip.PrefixFrom(addr.Unmap(), ones).Masked())
	}
	return out
}

// Plugin refuses tenants' Services that claim kplex's addresses.
type Plugin struct {
	*admission.Handler
	nodes    corev1listers.NodeLister
	networks Networks
}

var (
	_ admission.ValidationInterface                = &Plugin{}
	_ admission.InitializationValidator            = &Plugin{}
	_ initializer.WantsExternalKubeInformerFactory = &Plugin{}
)

// New returns the plugin; Register adds it to a server's plugins,
// SetNetworks gives it the ranges once the flags are parsed.
func New() *Plugin {
	return &Plugin{Handler: admission.NewHandler(admission.Create, admission.Update)}
}

// Register adds p to plugins as PluginName.
func (p *Plugin) Register(plugins *admission.Plugins) {
	plugins.Register(PluginName, func(io.Reader) (admission.Interface, error) { return p, nil })
}

// SetNetworks gives the plugin the cluster's ranges. Call it before the
// server starts serving.
func (p *Plugin) SetNetworks(n Networks) { p.networks = n }

// SetExternalKubeInformerFactory is how the server hands the plugin root's
// informers: the nodes are root's.
func (p *Plugin) SetExternalKubeInformerFactory(factory informers.SharedInformerFactory) {
	nodes := factory.Core().V1().Nodes()
	p.nodes = nodes.Lister()
	p.SetReadyFunc(nodes.Informer().HasSynced)
}

// ValidateInitialization checks the plugin got its informers and ranges.
func (p *Plugin) ValidateInitialization() error {
	if p.nodes == nil {
		return fmt.Errorf("%s needs the server's informers", PluginName)
	}
	if len(p.networks.Pods) == 0 || len(p.networks.Services) == 0 {
		return fmt.Errorf("%s needs the cluster CIDR and the service CIDRs", PluginName)
	}
	return nil
}

// Validate refuses a tenant's Service, or Service status, naming an
// address of the pod network, the service network or a node.
func (p *Plugin) Validate(ctx context.Context, a admission.Attributes, _ admission.ObjectInterfaces) error {
	if t := tenant.FromContext(ctx); t == tenant.Root || t == tenant.Wildcard || a.GetResource().GroupResource() != servicesResource {
		return nil
	}
	svc, ok := a.GetObject().(*api.Service)
	if !ok {
		return nil
	}
	var claimed []claim
	switch a.GetSubresource() {
	case "":
		claimed = specClaims(svc)
	case "status":
		claimed = statusClaims(svc)
	}
	if len(claimed) == 0 {
		return nil
	}
	if !p.WaitForReady() {
		return admission.NewForbidden(a, fmt.Errorf("%s: the server's node cache is not ready yet", PluginName))
	}
	nodes, err := p.nodes.List(labels.Everything())
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("%s: listing nodes: %w", PluginName, err))
	}
	if errs := p.networks.check(claimed, nodeAddresses(nodes)); len(errs) != 0 {
		return apierrors.NewInvalid(a.GetKind().GroupKind(), a.GetName(), errs)
	}
	return nil
}

// claim is an address a Service names, at its field.
type claim struct {
	path  *field.Path
	value string
}

func specClaims(svc *api.Service) []claim {
	var out []claim
	for i, ip := range svc.Spec.ExternalIPs {
		out = append(out, claim{field.NewPath("spec", "externalIPs").Index(i), ip})
	}
	if ip := svc.Spec.LoadBalancerIP; ip != "" {
		out = append(out, claim{field.NewPath("spec", "loadBalancerIP"), ip})
	}
	return out
}

func statusClaims(svc *api.Service) []claim {
	var out []claim
	for i, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			out = append(out, claim{field.NewPath("status", "loadBalancer", "ingress").Index(i).Child("ip"), in.IP})
		}
	}
	return out
}

// nodeAddresses are the InternalIPs and ExternalIPs of nodes.
func nodeAddresses(nodes []*corev1.Node) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			if addr, ok := parseIP(a.Address); ok {
				out[addr] = true
			}
		}
	}
	return out
}

// check names every claim inside the networks or on a node.
func (n Networks) check(claimed []claim, nodes map[netip.Addr]bool) field.ErrorList {
	var errs field.ErrorList
	for _, c := range claimed {
		if reason := n.owner(c.value, nodes); reason != "" {
			errs = append(errs, field.Invalid(c.path, c.value, "must not be "+reason+"; "+why))
		}
	}
	return errs
}

// owner says whose address ip is, "" if kplex does not own it. IPs are
// read as the data plane reads them (leading zeros, IPv4-mapped IPv6);
// what does not parse is upstream validation's to refuse.
func (n Networks) owner(ip string, nodes map[netip.Addr]bool) string {
	addr, ok := parseIP(ip)
	if !ok {
		return ""
	}
	if in := containing(n.Pods, addr); in != "" {
		return "an address of the cluster's pod network (" + in + ")"
	}
	if in := containing(n.Services, addr); in != "" {
		return "an address of the cluster's service network (" + in + ")"
	}
	if nodes[addr] {
		return "a node's address"
	}
	return ""
}

func containing(prefixes []netip.Prefix, addr netip.Addr) string {
	i := slices.IndexFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(addr) })
	if i < 0 {
		return ""
	}
	return prefixes[i].String()
}

func parseIP(s string) (netip.Addr, bool) {
	ip := netutils.ParseIPSloppy(s)
	if ip == nil {
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	return addr.Unmap(), ok
}
