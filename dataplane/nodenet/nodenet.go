// Package nodenet sets up what a node's network needs around the pods'
// bridge: forwarding, routes to the other nodes' pod CIDRs (host-gw: every
// node is one hop from every other, as on one L2 segment), masquerading of
// pod traffic that leaves the cluster, and the address of the node's DNS
// server.
package nodenet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"sigs.k8s.io/knftables"
)

// DNSLink is the dummy interface that holds the cluster DNS address on a
// node, as NodeLocal DNSCache's nodelocaldns interface does.
const DNSLink = "kplex-dns"

// Table is the nftables table of the node's masquerading.
const Table = "kplex-nat"

// nodeIPsSet holds every node's internal IP.
const nodeIPsSet = "node-ips"

// Options configure a node's network.
type Options struct {
	NodeName    string
	ClusterCIDR string
	// ClusterDNS is the address pods send DNS queries to; it is put on
	// DNSLink so the node's DNS server can listen on it.
	ClusterDNS net.IP
}

// Prepare turns forwarding on, puts the cluster DNS address on the node and
// masquerades pod traffic that leaves the cluster CIDR.
func Prepare(ctx context.Context, o Options) error {
	for _, s := range []struct{ path, value string }{
		{"/proc/sys/net/ipv4/ip_forward", "1"},
		// Pods of one node talk across the bridge; their traffic must pass
		// the IP hooks for Services' replies and for tenant isolation.
		{"/proc/sys/net/bridge/bridge-nf-call-iptables", "1"},
		{"/proc/sys/net/bridge/bridge-nf-call-ip6tables", "1"},
	} {
		if err := os.WriteFile(s.path, []byte(s.value), 0o644); err != nil {
			return fmt.Errorf("setting %s: %w", s.path, err)
		}
	}
	if o.ClusterDNS != nil {
		if err := ensureDNSAddress(o.ClusterDNS); err != nil {
			return fmt.Errorf("cluster DNS address %s: %w", o.ClusterDNS, err)
		}
	}
	nft, err := knftables.New(knftables.IPv4Family, Table)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("kplex: pod traffic leaving the cluster")})
	tx.Flush(&knftables.Table{})
	tx.Add(&knftables.Chain{Name: "postrouting", Type: knftables.PtrTo(knftables.NATType),
		Hook: knftables.PtrTo(knftables.PostroutingHook), Priority: knftables.PtrTo(knftables.SNATPriority)})
	// Traffic to another node keeps the pod's address: that node tells the
	// pod's tenant by it (a NodePort there may lead to another tenant's pod).
	tx.Add(&knftables.Set{Name: nodeIPsSet, Type: "ipv4_addr"})
	tx.Add(&knftables.Rule{Chain: "postrouting", Rule: knftables.Concat("ip saddr", o.ClusterCIDR, "ip daddr !=", o.ClusterCIDR, "ip daddr != @"+nodeIPsSet, "masquerade")})
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("masquerading: %w", err)
	}
	return nil
}

// ensureDNSAddress puts ip on DNSLink, or on lo where the kernel has no
// dummy interfaces: either way it is a local address of the node.
func ensureDNSAddress(ip net.IP) error {
	link, err := netlink.LinkByName(DNSLink)
	if err != nil {
		if err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: DNSLink}}); err != nil && !errors.Is(err, os.ErrExist) {
			if link, err = netlink.LinkByName("lo"); err != nil {
				return fmt.Errorf("adding %s, and finding lo: %w", DNSLink, err)
			}
		} else if link, err = netlink.LinkByName(DNSLink); err != nil {
			return err
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("address on %s: %w", DNSLink, err)
	}
	return netlink.LinkSetUp(link)
}

// Routes keeps a route to every other node's pod CIDR through that node's
// internal IP until ctx ends, and removes a node's route when it goes.
func Routes(ctx context.Context, root kubernetes.Interface, self string) error {
	logger := klog.FromContext(ctx).WithName("routes")
	nft, err := knftables.New(knftables.IPv4Family, Table)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	nodeIP := func(ip net.IP, add bool) {
		tx := nft.NewTransaction()
		e := &knftables.Element{Set: nodeIPsSet, Key: []string{ip.String()}}
		if add {
			tx.Add(e)
		} else {
			tx.Delete(e)
		}
		if err := nft.Run(ctx, tx); err != nil && ctx.Err() == nil {
			logger.Error(err, "Node address set", "ip", ip)
		}
	}
	addresses := map[string]net.IP{} // node → its IP in the set
	factory := informers.NewSharedInformerFactory(root, 10*time.Minute)
	nodes := factory.Core().V1().Nodes().Informer()
	installed := map[string]*net.IPNet{} // node → its CIDR with a route
	apply := func(n *v1.Node) {
		if ip := internalIP(n); ip != nil && !ip.Equal(addresses[n.Name]) {
			nodeIP(ip, true)
			addresses[n.Name] = ip
		}
		if n.Name == self {
			return
		}
		cidr, via := podCIDR(n), internalIP(n)
		if cidr == nil || via == nil {
			return
		}
		r := &netlink.Route{Dst: cidr, Gw: via}
		if err := netlink.RouteReplace(r); err != nil {
			logger.Error(err, "Route to a node's pods", "node", n.Name, "cidr", cidr, "via", via)
			return
		}
		installed[n.Name] = cidr
	}
	remove := func(name string) {
		if ip := addresses[name]; ip != nil {
			nodeIP(ip, false)
			delete(addresses, name)
		}
		if cidr := installed[name]; cidr != nil {
			if err := netlink.RouteDel(&netlink.Route{Dst: cidr}); err != nil {
				logger.Error(err, "Removing the route to a node's pods", "node", name)
			}
			delete(installed, name)
		}
	}
	// One goroutine handles the events, so installed needs no lock.
	if _, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { apply(obj.(*v1.Node)) },
		UpdateFunc: func(_, obj any) { apply(obj.(*v1.Node)) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if n, ok := obj.(*v1.Node); ok {
				remove(n.Name)
			}
		},
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

func podCIDR(n *v1.Node) *net.IPNet {
	for _, c := range append([]string{n.Spec.PodCIDR}, n.Spec.PodCIDRs...) {
		if _, ipnet, err := net.ParseCIDR(c); err == nil && ipnet.IP.To4() != nil {
			return ipnet
		}
	}
	return nil
}

func internalIP(n *v1.Node) net.IP {
	for _, a := range n.Status.Addresses {
		if a.Type == v1.NodeInternalIP {
			if ip := net.ParseIP(a.Address); ip != nil && ip.To4() != nil && !ip.IsLoopback() {
				return ip
			}
		}
	}
	return nil
}
