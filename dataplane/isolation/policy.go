package isolation

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/client/crosstenant"
)

// addPolicies compiles every tenant's NetworkPolicies into that tenant's
// ingress and egress chains. Every selector is evaluated over the policy's own
// tenant only, so a policy can name nothing of another tenant; an ipBlock can
// cover other tenants' pods, but their traffic never gets this far.
func addPolicies(logger klog.Logger, rs *ruleset, ix *index, policies []*networkingv1.NetworkPolicy) {
	byTenant := map[string][]*networkingv1.NetworkPolicy{}
	for _, p := range policies {
		t := crosstenant.TenantOf(p)
		if !validTenant(t) {
			logger.V(2).Info("Ignoring a NetworkPolicy without a valid tenant", "policy", klog.KObj(p), "tenant", t)
			continue
		}
		byTenant[t] = append(byTenant[t], p)
	}
	for _, t := range sortedKeys(byTenant) {
		ps := byTenant[t]
		slices.SortFunc(ps, func(a, b *networkingv1.NetworkPolicy) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
		taken := map[string]bool{}
		for _, p := range ps {
			compilePolicy(logger, rs, ix, t, policyID(p.Namespace, p.Name, taken), p)
		}
		// Whatever no rule returned from is not allowed. Added after every
		// policy of the tenant, so each chain ends in exactly one drop.
		for _, d := range []direction{ingress, egress} {
			if c := rs.chains[policyChain(d, t)]; c != nil {
				c.add("drop", "no NetworkPolicy allows it")
			}
		}
	}
}

func compilePolicy(logger klog.Logger, rs *ruleset, ix *index, t, id string, p *networkingv1.NetworkPolicy) {
	logger = logger.WithValues("tenant", t, "policy", klog.KObj(p))
	sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
	if err != nil {
		logger.Info("Ignoring a NetworkPolicy with an invalid podSelector", "err", err)
		return
	}
	var selected []*podInfo
	for _, pod := range ix.tenants[t] {
		if pod.Namespace == p.Namespace && sel.Matches(labels.Set(pod.Labels)) {
			selected = append(selected, pod)
		}
	}
	if len(selected) == 0 {
		return
	}
	for _, f := range families {
		for _, pod := range selected {
			for _, a := range pod.ipsOf(f) {
				rs.set(policyPodsSet(t, id, f), f.addr, false).add(nil, a.String())
			}
		}
	}
	isIngress, isEgress := policyTypes(p)
	w := &ruleWriter{rs: rs, ix: ix, tenant: t, policy: id, selected: selected}
	where := p.Namespace + "/" + p.Name
	if isIngress {
		isolate(rs, ingress, t, selected)
		for i, r := range p.Spec.Ingress {
			cr := compileRule(logger, ix, t, p.Namespace, r.From, r.Ports)
			w.emit(ingress, i, cr, fmt.Sprintf("%s spec.ingress[%d]", where, i))
		}
	}
	if isEgress {
		isolate(rs, egress, t, selected)
		for i, r := range p.Spec.Egress {
			cr := compileRule(logger, ix, t, p.Namespace, r.To, r.Ports)
			w.emit(egress, i, cr, fmt.Sprintf("%s spec.egress[%d]", where, i))
		}
	}
}

// policyTypes applies the API's default: Ingress always, Egress when the
// policy has egress rules.
func policyTypes(p *networkingv1.NetworkPolicy) (isIngress, isEgress bool) {
	if len(p.Spec.PolicyTypes) == 0 {
		return true, len(p.Spec.Egress) > 0
	}
	for _, pt := range p.Spec.PolicyTypes {
		switch pt {
		case networkingv1.PolicyTypeIngress:
			isIngress = true
		case networkingv1.PolicyTypeEgress:
			isEgress = true
		}
	}
	return isIngress, isEgress
}

// isolate sends the selected pods' traffic in direction d through the
// tenant's chain for d, which ends in a drop.
func isolate(rs *ruleset, d direction, t string, selected []*podInfo) {
	rs.chain(policyChain(d, t))
	m := ingressMap
	if d == egress {
		m = egressMap
	}
	for _, pod := range selected {
		for _, a := range pod.ips {
			rs.sets[m+familyOf(a).suffix].add([]string{"jump " + policyChain(d, t)}, a.String())
		}
	}
}

// compiledRule is one ingress or egress rule with its selectors evaluated.
type compiledRule struct {
	anyPeer bool
	peers   []ipRange // merged; pod IPs and ipBlocks alike
	anyPort bool
	ports   []portRange
	named   []namedPort
}

type namedPort struct{ proto, name string }

func compileRule(logger klog.Logger, ix *index, t, ns string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) compiledRule {
	var cr compiledRule
	cr.anyPeer = len(peers) == 0
	for _, peer := range peers {
		if peer.IPBlock != nil {
			rs, err := ipBlockRanges(peer.IPBlock)
			if err != nil {
				logger.Info("Ignoring an invalid ipBlock", "err", err)
				continue
			}
			cr.peers = append(cr.peers, rs...)
			continue
		}
		for _, pod := range peerPods(logger, ix, t, ns, peer) {
			for _, a := range pod.ips {
				cr.peers = append(cr.peers, ipRange{a, a})
			}
		}
	}
	cr.peers = mergeRanges(cr.peers)
	cr.anyPort = len(ports) == 0
	for _, p := range ports {
		proto := "tcp"
		if p.Protocol != nil {
			proto = strings.ToLower(string(*p.Protocol))
		}
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			logger.Info("Ignoring a port of an unknown protocol", "protocol", proto)
			continue
		}
		switch {
		case p.Port == nil:
			cr.ports = append(cr.ports, portRange{proto, 0, 65535})
		case p.Port.Type == intstr.String:
			cr.named = append(cr.named, namedPort{proto, p.Port.StrVal})
		default:
			lo, hi := p.Port.IntVal, p.Port.IntVal
			if p.EndPort != nil && *p.EndPort > lo {
				hi = *p.EndPort
			}
			cr.ports = append(cr.ports, portRange{proto, lo, hi})
		}
	}
	cr.ports = mergePorts(cr.ports)
	return cr
}

// ipBlockRanges is cidr minus every except, as merged ranges.
func ipBlockRanges(b *networkingv1.IPBlock) ([]ipRange, error) {
	p, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return nil, fmt.Errorf("ipBlock cidr %q: %w", b.CIDR, err)
	}
	rs := []ipRange{prefixRange(unmapPrefix(p))}
	for _, e := range b.Except {
		ep, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("ipBlock except %q: %w", e, err)
		}
		rs = subtractRange(rs, prefixRange(unmapPrefix(ep)))
	}
	return mergeRanges(rs), nil
}

// unmapPrefix writes an IPv4-mapped IPv6 prefix as the IPv4 prefix it is,
// since pod IPs are compared as IPv4.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// peerPods evaluates a pod/namespace selector peer inside tenant t only.
func peerPods(logger klog.Logger, ix *index, t, ns string, peer networkingv1.NetworkPolicyPeer) []*podInfo {
	if peer.PodSelector == nil && peer.NamespaceSelector == nil {
		return nil
	}
	podSel, nsSel := labels.Everything(), labels.Selector(nil)
	var err error
	if peer.PodSelector != nil {
		if podSel, err = metav1.LabelSelectorAsSelector(peer.PodSelector); err != nil {
			logger.Info("Ignoring a peer with an invalid podSelector", "err", err)
			return nil
		}
	}
	if peer.NamespaceSelector != nil {
		if nsSel, err = metav1.LabelSelectorAsSelector(peer.NamespaceSelector); err != nil {
			logger.Info("Ignoring a peer with an invalid namespaceSelector", "err", err)
			return nil
		}
	}
	var out []*podInfo
	for _, pod := range ix.tenants[t] {
		if nsSel == nil && pod.Namespace != ns {
			continue
		}
		if nsSel != nil && !nsSel.Matches(ix.namespaceLabels(t, pod.Namespace)) {
			continue
		}
		if podSel.Matches(labels.Set(pod.Labels)) {
			out = append(out, pod)
		}
	}
	return out
}

// resolve returns the port numbers a named port means on pod, as upstream
// resolves them: by name and protocol over the pod's container ports.
func (n namedPort) resolve(pod *podInfo) []int32 {
	var out []int32
	for _, cp := range pod.Ports {
		proto := strings.ToLower(string(cp.Protocol))
		if cp.Protocol == "" {
			proto = strings.ToLower(string(corev1.ProtocolTCP))
		}
		if cp.Name == n.name && proto == n.proto && !slices.Contains(out, cp.ContainerPort) {
			out = append(out, cp.ContainerPort)
		}
	}
	return out
}
