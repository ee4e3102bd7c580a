// Package nodeipam gives every Node of the management plane its pod CIDR
// (spec.podCIDR(s)) with upstream's node IPAM range allocator: nodes are
// shared infrastructure, so one allocator serves every tenant's pods, and a
// pod IP names exactly one pod of one tenant across the fleet.
package nodeipam

import (
	"context"
	"fmt"
	"net"

	"github.com/spf13/pflag"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/kubernetes/pkg/controller/nodeipam"
	"k8s.io/kubernetes/pkg/controller/nodeipam/ipam"
)

// Defaults of Options.
const (
	DefaultClusterCIDR      = "10.244.0.0/16"
	DefaultNodeCIDRMaskSize = 24
	DefaultServiceCIDR      = "10.96.0.0/12"
)

// Options configure the allocator. Zero fields take the Default...
// constants.
type Options struct {
	// ClusterCIDR is the range pod CIDRs are cut from (--cluster-cidr).
	ClusterCIDR string
	// NodeCIDRMaskSize is the prefix length of each node's pod CIDR
	// (--node-cidr-mask-size): /24 gives a node 254 pod IPs.
	NodeCIDRMaskSize int
	// ServiceCIDR is kept out of pod CIDRs (--service-cluster-ip-range).
	ServiceCIDR string
}

// WithDefaults returns o with its zero fields defaulted.
func (o Options) WithDefaults() Options {
	if o.ClusterCIDR == "" {
		o.ClusterCIDR = DefaultClusterCIDR
	}
	if o.NodeCIDRMaskSize == 0 {
		o.NodeCIDRMaskSize = DefaultNodeCIDRMaskSize
	}
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = DefaultServiceCIDR
	}
	return o
}

// Validate names the flag that is wrong.
func (o Options) Validate() error {
	o = o.WithDefaults()
	_, cluster, err := net.ParseCIDR(o.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("--cluster-cidr %q: %w", o.ClusterCIDR, err)
	}
	if _, _, err := net.ParseCIDR(o.ServiceCIDR); err != nil {
		return fmt.Errorf("--service-cluster-ip-range %q: %w", o.ServiceCIDR, err)
	}
	ones, bits := cluster.Mask.Size()
	if o.NodeCIDRMaskSize < ones || o.NodeCIDRMaskSize > bits-2 {
		return fmt.Errorf("--node-cidr-mask-size %d: must lie between the cluster CIDR's /%d and /%d", o.NodeCIDRMaskSize, ones, bits-2)
	}
	return nil
}

// Run allocates pod CIDRs to root's nodes until ctx ends. loopback
// addresses the management plane.
func Run(ctx context.Context, loopback *rest.Config, o Options) error {
	if err := o.Validate(); err != nil {
		return fmt.Errorf("node IPAM: %w", err)
	}
	o = o.WithDefaults()
	_, cluster, _ := net.ParseCIDR(o.ClusterCIDR)
	_, services, _ := net.ParseCIDR(o.ServiceCIDR)
	client, err := kubernetes.NewForConfig(loopback)
	if err != nil {
		return fmt.Errorf("node IPAM: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes()
	c, err := nodeipam.NewNodeIpamController(ctx, nodes, nil, client, []*net.IPNet{cluster}, services, nil, []int{o.NodeCIDRMaskSize}, ipam.RangeAllocatorType)
	if ctx.Err() != nil {
		return nil // stopped while it read the nodes
	}
	if err != nil {
		return fmt.Errorf("node IPAM: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	c.Run(ctx)
	return nil
}

// AddFlags binds o to kube-controller-manager's flags of the same names.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ClusterCIDR, "cluster-cidr", o.ClusterCIDR, "CIDR range every node's pod CIDR is cut from (pods of every tenant share it; a pod IP names one pod)")
	fs.IntVar(&o.NodeCIDRMaskSize, "node-cidr-mask-size", o.NodeCIDRMaskSize, "prefix length of each node's pod CIDR")
	fs.StringVar(&o.ServiceCIDR, "service-cluster-ip-range", o.ServiceCIDR, "the apiserver's service CIDR, kept out of pod CIDRs")
}
