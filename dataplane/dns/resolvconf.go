package dns

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The kubelet's (and the apiserver's) limits on a pod's resolver.
const (
	MaxNameservers    = 3
	MaxSearchPaths    = 32
	MaxSearchLineLen  = 2048
	maxSearchPathLen  = validation.DNS1123SubdomainMaxLength // glibc aborts on longer ones
	clusterFirstNdots = "ndots:5"
)

// resolver is the content of a resolv.conf.
type resolver struct {
	nameservers, searches, options []string
}

// ResolvConf returns the resolv.conf of a pod in namespace, following the
// kubelet's rules:
//
//   - ClusterFirst (the default), or ClusterFirstWithHostNet: nameserver is
//     the only server, the search path is <ns>.svc.<domain>, svc.<domain>,
//     <domain> then the host's, with ndots:5. A hostNetwork pod with plain
//     ClusterFirst, and any pod when nameserver is empty, fall back to
//     Default.
//   - Default: the host's resolv.conf (hostResolvConf; nil is an empty one).
//   - None: nothing but dnsConfig.
//
// dnsConfig is then merged in: its nameservers and searches appended, its
// options replacing the host's of the same name. Values the apiserver would
// reject are an error naming the field (spec.dnsConfig.nameservers[0]);
// a result beyond the kubelet's limits (MaxNameservers, MaxSearchPaths,
// MaxSearchLineLen) is cut to them, as the kubelet does.
func ResolvConf(policy corev1.DNSPolicy, dnsConfig *corev1.PodDNSConfig, hostNetwork bool, namespace, clusterDomain, nameserver string, hostResolvConf []byte) ([]byte, error) {
	r, err := podResolver(policy, dnsConfig, hostNetwork, namespace, clusterDomain, nameserver, hostResolvConf)
	if err != nil {
		return nil, err
	}
	return r.bytes(), nil
}

// Resolver is what a pod's resolv.conf says, as CRI's DNSConfig has it.
type Resolver struct {
	Nameservers, Searches, Options []string
}

// PodResolver is ResolvConf as parts, for a container runtime that writes
// the file itself (CRI's PodSandboxConfig.DnsConfig).
func PodResolver(policy corev1.DNSPolicy, dnsConfig *corev1.PodDNSConfig, hostNetwork bool, namespace, clusterDomain, nameserver string, hostResolvConf []byte) (Resolver, error) {
	r, err := podResolver(policy, dnsConfig, hostNetwork, namespace, clusterDomain, nameserver, hostResolvConf)
	return Resolver{Nameservers: r.nameservers, Searches: r.searches, Options: r.options}, err
}

func podResolver(policy corev1.DNSPolicy, dnsConfig *corev1.PodDNSConfig, hostNetwork bool, namespace, clusterDomain, nameserver string, hostResolvConf []byte) (resolver, error) {
	if err := validatePodDNS(policy, dnsConfig).ToAggregate(); err != nil {
		return resolver{}, err
	}
	if nameserver != "" {
		if _, err := netip.ParseAddr(nameserver); err != nil {
			return resolver{}, fmt.Errorf("cluster DNS nameserver %q is not an IP address: %w", nameserver, err)
		}
	}
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	if (policy == corev1.DNSClusterFirst && hostNetwork) || (nameserver == "" && policy != corev1.DNSNone) {
		policy = corev1.DNSDefault
	}

	var r resolver
	switch policy {
	case corev1.DNSDefault:
		r = parseResolvConf(hostResolvConf)
	case corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet:
		host := parseResolvConf(hostResolvConf)
		r.nameservers = []string{nameserver}
		if clusterDomain = strings.TrimSuffix(clusterDomain, "."); clusterDomain != "" {
			r.searches = []string{namespace + ".svc." + clusterDomain, "svc." + clusterDomain, clusterDomain}
		}
		r.searches = uniq(append(r.searches, host.searches...))
		r.options = []string{clusterFirstNdots}
	}
	if dnsConfig != nil {
		r.nameservers = uniq(append(r.nameservers, dnsConfig.Nameservers...))
		r.searches = uniq(append(r.searches, dnsConfig.Searches...))
		for _, o := range dnsConfig.Options {
			opt := o.Name
			if o.Value != nil && *o.Value != "" {
				opt += ":" + *o.Value
			}
			r.options = setOption(r.options, opt)
		}
	}
	r.fitLimits()
	return r, nil
}

// validatePodDNS checks what the apiserver checks of a pod's DNS settings,
// plus what could break a resolv.conf line (its values are space-separated).
func validatePodDNS(policy corev1.DNSPolicy, c *corev1.PodDNSConfig) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	switch policy {
	case "", corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault:
	case corev1.DNSNone:
		if c == nil || len(c.Nameservers) == 0 {
			errs = append(errs, field.Required(spec.Child("dnsConfig", "nameservers"), "at least one nameserver is required when dnsPolicy is None"))
		}
	default:
		errs = append(errs, field.NotSupported(spec.Child("dnsPolicy"), policy, []corev1.DNSPolicy{
			corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault, corev1.DNSNone}))
	}
	if c == nil {
		return errs
	}
	path := spec.Child("dnsConfig")
	if len(c.Nameservers) > MaxNameservers {
		errs = append(errs, field.TooMany(path.Child("nameservers"), len(c.Nameservers), MaxNameservers))
	}
	for i, ns := range c.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			errs = append(errs, field.Invalid(path.Child("nameservers").Index(i), ns, "must be a valid IP address"))
		}
	}
	if len(c.Searches) > MaxSearchPaths {
		errs = append(errs, field.TooMany(path.Child("searches"), len(c.Searches), MaxSearchPaths))
	}
	if len(strings.Join(c.Searches, " ")) > MaxSearchLineLen {
		errs = append(errs, field.Invalid(path.Child("searches"), c.Searches, fmt.Sprintf("must not have more than %d characters (including spaces) in the search list", MaxSearchLineLen)))
	}
	for i, s := range c.Searches {
		if s == "." {
			continue
		}
		for _, msg := range validation.IsDNS1123SubdomainWithUnderscore(strings.TrimSuffix(s, ".")) {
			errs = append(errs, field.Invalid(path.Child("searches").Index(i), s, msg))
		}
	}
	for i, o := range c.Options {
		p := path.Child("options").Index(i)
		// The apiserver lets white space through; on the options line it
		// would add options, and a newline whole lines (a nameserver).
		switch {
		case o.Name == "":
			errs = append(errs, field.Required(p.Child("name"), "must not be empty"))
		case strings.ContainsFunc(o.Name, unicode.IsSpace):
			errs = append(errs, field.Invalid(p.Child("name"), o.Name, "must not contain white space"))
		}
		if o.Value != nil && strings.ContainsFunc(*o.Value, unicode.IsSpace) {
			errs = append(errs, field.Invalid(p.Child("value"), *o.Value, "must not contain white space"))
		}
	}
	return errs
}

// parseResolvConf reads the nameservers, search path and options of a
// resolv.conf as the kubelet does: nameservers add up, the last search line
// wins, options override earlier ones of the same name, the rest (domain,
// sortlist) is left out.
func parseResolvConf(data []byte) resolver {
	var r resolver
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) > 1 {
				r.nameservers = append(r.nameservers, fields[1])
			}
		case "search":
			r.searches = nil
			for _, s := range fields[1:] {
				if s != "." {
					r.searches = append(r.searches, strings.TrimSuffix(s, "."))
				}
			}
		case "options":
			for _, o := range fields[1:] {
				r.options = setOption(r.options, o)
			}
		}
	}
	return r
}

// setOption sets option opt ("name" or "name:value") in options, in place
// of one with the same name.
func setOption(options []string, opt string) []string {
	name, _, _ := strings.Cut(opt, ":")
	i := slices.IndexFunc(options, func(o string) bool {
		n, _, _ := strings.Cut(o, ":")
		return n == name
	})
	if i < 0 {
		return append(options, opt)
	}
	options = slices.Clone(options)
	options[i] = opt
	return options
}

// fitLimits cuts r to the kubelet's limits, as the kubelet does: extra
// nameservers and search paths dropped from the end, over-long search
// paths dropped.
func (r *resolver) fitLimits() {
	if len(r.nameservers) > MaxNameservers {
		r.nameservers = r.nameservers[:MaxNameservers]
	}
	r.searches = slices.DeleteFunc(r.searches, func(s string) bool { return len(s) > maxSearchPathLen })
	if len(r.searches) > MaxSearchPaths {
		r.searches = r.searches[:MaxSearchPaths]
	}
	for len(r.searches) > 0 && len(strings.Join(r.searches, " ")) > MaxSearchLineLen {
		r.searches = r.searches[:len(r.searches)-1]
	}
}

// bytes writes r as the container runtime (containerd's CRI) writes a
// pod's resolv.conf.
func (r resolver) bytes() []byte {
	var b bytes.Buffer
	if len(r.searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(r.searches, " "))
	}
	for _, ns := range r.nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(r.options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(r.options, " "))
	}
	return b.Bytes()
}

// uniq drops repeated entries, keeping the first.
func uniq(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
