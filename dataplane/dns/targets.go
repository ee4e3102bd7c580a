package dns

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// target is one address a Service name leads to: a ClusterIP, or a ready
// endpoint of a headless Service.
type target struct {
	name  string // fully qualified, the target of SRV records
	label string // an endpoint's first label: hostname or dashed IP
	ip    netip.Addr
	ports []port
}

type port struct {
	name, protocol string
	number         uint16
}

func headless(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP == corev1.ClusterIPNone
}

func (s *Server) serviceName(svc *corev1.Service) string {
	return strings.ToLower(svc.Name + "." + svc.Namespace + ".svc." + s.zone)
}

// targets are where svc's own name leads: its endpoints when headless,
// its ClusterIPs otherwise.
func (s *Server) targets(tenant string, svc *corev1.Service) []target {
	if headless(svc) {
		return s.endpoints(tenant, svc)
	}
	var ports []port
	for _, p := range svc.Spec.Ports {
		ports = append(ports, port{name: p.Name, protocol: string(p.Protocol), number: uint16(p.Port)})
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var targets []target
	for _, a := range ips {
		if ip, err := netip.ParseAddr(a); err == nil {
			targets = append(targets, target{name: s.serviceName(svc), ip: ip, ports: ports})
		}
	}
	return targets
}

// endpoints are svc's endpoints that DNS shows: ready ones, or all when the
// Service publishes not-ready addresses.
func (s *Server) endpoints(tenant string, svc *corev1.Service) []target {
	var targets []target
	for _, slice := range s.cfg.Records.EndpointSlices(tenant, svc.Namespace, svc.Name) {
		if slice == nil || slice.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		var ports []port
		for _, p := range slice.Ports {
			if p.Port == nil {
				continue // "all ports" of a port-less headless Service: no SRV
			}
			pt := port{number: uint16(*p.Port), protocol: string(corev1.ProtocolTCP)}
			if p.Name != nil {
				pt.name = *p.Name
			}
			if p.Protocol != nil {
				pt.protocol = string(*p.Protocol)
			}
			ports = append(ports, pt)
		}
		for _, ep := range slice.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			if !ready && !svc.Spec.PublishNotReadyAddresses {
				continue
			}
			for _, a := range ep.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					continue
				}
				label := strings.NewReplacer(".", "-", ":", "-").Replace(ip.String())
				if ep.Hostname != nil && *ep.Hostname != "" {
					label = strings.ToLower(*ep.Hostname)
				}
				targets = append(targets, target{name: label + "." + s.serviceName(svc), label: label, ip: ip, ports: ports})
			}
		}
	}
	return targets
}

// srvRecords are the SRV records at owner of the targets' ports named
// portName with protocol proto ("" for both: every port), with the targets' addresses as
// additional records so clients need no second query.
func (s *Server) srvRecords(owner string, targets []target, portName, proto string) result {
	var res result
	for _, t := range targets {
		for _, p := range t.ports {
			if portName != "" && (p.name == "" || !strings.EqualFold(p.name, portName) || !strings.EqualFold(p.protocol, proto)) {
				continue
			}
			if p.number == 0 {
				continue
			}
			res.answer = append(res.answer, &dns.SRV{Hdr: s.hdr(owner, dns.TypeSRV), Port: p.number, Target: t.name})
			if rr := s.addressRR(t.name, t.ip, dns.Question{Qtype: dns.TypeANY}); rr != nil {
				res.extra = append(res.extra, rr)
			}
		}
	}
	res.answer = dns.Dedup(res.answer, nil)
	res.extra = dns.Dedup(res.extra, nil)
	// Equal shares of one priority, as CoreDNS.
	for _, rr := range res.answer {
		rr.(*dns.SRV).Weight = uint16(100 / len(res.answer))
	}
	return res
}
