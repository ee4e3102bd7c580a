package server

import (
	"fmt"
	"net"
	"strings"

	"k8s.io/klog/v2"
	cpoptions "k8s.io/kubernetes/pkg/controlplane/apiserver/options"
	netutils "k8s.io/utils/net"
)

// servingHosts returns the addresses pods reach the apiserver at, which
// the serving certificate must name besides localhost and the kubernetes
// Service's DNS names: the Service's cluster IP (the first address of the
// primary --service-cluster-ip-range, as upstream picks it) and the
// advertise address its endpoints name. It settles the advertise address
// in cfg as upstream's Complete would, so that both name the same one.
func servingHosts(cfg *Config) ([]string, error) {
	var primary net.IPNet
	if first, _, _ := strings.Cut(cfg.Kube.ServiceClusterIPRanges, ","); first != "" {
		_, cidr, err := netutils.ParseCIDRSloppy(first)
		if err != nil {
			return nil, fmt.Errorf("--service-cluster-ip-range %q: %w", first, err)
		}
		primary = *cidr
	}
	_, serviceIP, err := cpoptions.ServiceIPRange(primary)
	if err != nil {
		return nil, fmt.Errorf("--service-cluster-ip-range: %w", err)
	}
	generic := cfg.Kube.GenericServerRunOptions
	if err := generic.DefaultAdvertiseAddress(cfg.Kube.SecureServing.SecureServingOptions); err != nil {
		return nil, fmt.Errorf("choosing the address pods reach the apiserver at: %w", err)
	}
	warnUnreachable(generic.AdvertiseAddress, listenAddress(cfg))
	return []string{serviceIP.String(), generic.AdvertiseAddress.String()}, nil
}

// listenAddress is the IP the server will listen on.
func listenAddress(cfg *Config) net.IP {
	if cfg.Listener != nil {
		if addr, ok := cfg.Listener.Addr().(*net.TCPAddr); ok {
			return addr.IP
		}
	}
	return cfg.Kube.SecureServing.BindAddress
}

// warnUnreachable says when pods cannot reach the apiserver through the
// kubernetes Service: its endpoints name the advertise address, which must
// not be loopback (where a pod finds itself) and must be one the server
// listens on.
func warnUnreachable(advertise, listen net.IP) {
	switch {
	case advertise.IsLoopback():
		klog.InfoS("Warning: pods cannot reach the apiserver: the kubernetes Service's endpoints name a loopback address; set --advertise-address to an address of this host that pods can reach",
			"advertiseAddress", advertise)
	case listen != nil && listen.IsLoopback():
		klog.InfoS("Warning: pods cannot reach the apiserver: the kubernetes Service's endpoints name the advertise address, but the server listens on loopback only; set --bind-address to 0.0.0.0 or to the advertise address",
			"advertiseAddress", advertise, "bindAddress", listen)
	}
}
