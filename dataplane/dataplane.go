// Package dataplane is a node's share of the pod network, for every tenant
// whose pods run there: routes to the other nodes' pods and masquerading
// (nodenet), Services (services: upstream kube-proxy's nftables proxier
// over every tenant's Services), tenant isolation and NetworkPolicy
// (isolation), and cluster DNS (dns), each pod answered from its own
// tenant, told by its IP. The node agent starts it; the pods' network
// namespaces come from the container runtime through CNI (package cni).
package dataplane

import (
	"context"
	"fmt"
	"net"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/dataplane/nodenet"
	"github.com/kplex/kplex/dataplane/services"
)

// Options configure a node's data plane.
type Options struct {
	NodeName string
	NodeIP   net.IP
	// ClusterCIDR is every pod's range, ServiceCIDR every cluster IP's.
	ClusterCIDR, ServiceCIDR string
	// ClusterDNS is the address the node's DNS server answers on, the
	// cluster IP of kube-system/kube-dns; ClusterDomain its domain.
	ClusterDNS    net.IP
	ClusterDomain string
	// DNSUpstreams answer names outside the cluster domain (host:port).
	DNSUpstreams []string
}

// Start sets the node's network up and keeps it until ctx ends. root
// addresses the management plane with rights to read every tenant.
func Start(ctx context.Context, rootConfig *rest.Config, o Options) error {
	logger := klog.FromContext(ctx).WithName("dataplane")
	ctx = klog.NewContext(ctx, logger)
	root, err := kubernetes.NewForConfig(rootConfig)
	if err != nil {
		return fmt.Errorf("data plane client: %w", err)
	}
	cross, err := kubernetes.NewForConfig(crosstenant.Config(rootConfig))
	if err != nil {
		return fmt.Errorf("data plane cross-tenant client: %w", err)
	}
	if err := nodenet.Prepare(ctx, nodenet.Options{NodeName: o.NodeName, ClusterCIDR: o.ClusterCIDR, ClusterDNS: o.ClusterDNS}); err != nil {
		return fmt.Errorf("node network: %w", err)
	}
	go func() {
		if err := nodenet.Routes(ctx, root, o.NodeName); err != nil {
			logger.Error(err, "Routes to other nodes' pods stopped")
		}
	}()
	if _, err := services.Start(ctx, root, cross, services.Options{
		NodeName: o.NodeName, NodeIP: o.NodeIP, ClusterCIDR: o.ClusterCIDR, ServiceCIDRs: []string{o.ServiceCIDR},
		SkipServices: []string{"kube-system/kube-dns"},
	}); err != nil {
		return err
	}
	tenants, err := startCaches(ctx, cross)
	if err != nil {
		return err
	}
	if err := startIsolation(ctx, tenants); err != nil {
		return err
	}
	if err := startDNS(ctx, tenants, o); err != nil {
		return err
	}
	logger.Info("Data plane running", "node", o.NodeName, "clusterCIDR", o.ClusterCIDR, "clusterDNS", o.ClusterDNS)
	return nil
}
