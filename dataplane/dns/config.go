package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Defaults of Config.
const (
	DefaultClusterDomain = "cluster.local"
	// DefaultTTL is CoreDNS's kubernetes plugin's: short, because records
	// follow Pods and EndpointSlices that change all the time.
	DefaultTTL uint32 = 5
)

// Config is what New needs. The zero value of each optional field means its
// default.
type Config struct {
	// Addresses are the host:port addresses to serve, each on UDP and TCP,
	// such as the cluster DNS address "10.96.0.10:53". Port 0 picks a free
	// port, the same one for UDP and TCP; Server.Addrs tells which.
	// At least one is required.
	Addresses []string
	// ClusterDomain is the zone the server is authoritative for. Default
	// "cluster.local".
	ClusterDomain string
	// Upstreams are the resolvers (host:port; a bare IP means port 53) that
	// answer names outside the cluster domain, tried in order. With none,
	// such names get SERVFAIL.
	Upstreams []string
	// Records is where the cluster's records come from. Required.
	Records Records
	// TTL of every cluster record, in seconds. Default 5.
	TTL uint32
}

// withDefaults returns c with its defaults filled and its names normalised,
// leaving the caller's slices alone.
func (c Config) withDefaults() Config {
	if c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	c.ClusterDomain = strings.ToLower(strings.TrimSuffix(c.ClusterDomain, "."))
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	ups := make([]string, len(c.Upstreams))
	for i, u := range c.Upstreams {
		// resolv.conf's nameservers are bare IPs: take them as they are.
		if ip, err := netip.ParseAddr(u); err == nil {
			u = net.JoinHostPort(ip.String(), "53")
		}
		ups[i] = u
	}
	c.Upstreams = ups
	c.Addresses = append([]string(nil), c.Addresses...)
	return c
}

// validate checks a defaulted Config; errors name the field and what is
// wrong with it.
func (c Config) validate() error {
	var errs []error
	if c.Records == nil {
		errs = append(errs, errors.New("Records is required"))
	}
	if len(c.Addresses) == 0 {
		errs = append(errs, errors.New("Addresses: at least one listen address is required"))
	}
	for i, a := range c.Addresses {
		if err := checkHostPort(a, true); err != nil {
			errs = append(errs, fmt.Errorf("Addresses[%d]: %w", i, err))
		}
	}
	for i, u := range c.Upstreams {
		if err := checkHostPort(u, false); err != nil {
			errs = append(errs, fmt.Errorf("Upstreams[%d]: %w", i, err))
		}
	}
	if _, ok := dns.IsDomainName(c.ClusterDomain); !ok || c.ClusterDomain == "" {
		errs = append(errs, fmt.Errorf("ClusterDomain: %q is not a domain name", c.ClusterDomain))
	}
	return errors.Join(errs...)
}

// checkHostPort checks a host:port address; port 0 only listens.
func checkHostPort(s string, zeroPort bool) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (p == 0 && !zeroPort) {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	return nil
}
