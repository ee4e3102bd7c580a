package isolation

import (
	"fmt"
	"hash/fnv"
	"regexp"
)

// Table is the nftables table the Syncer owns, in the inet family so one
// table holds both the IPv4 and the IPv6 rules.
const Table = "kplex-isolation"

// Names of the objects every ruleset has. Per-tenant objects carry the tenant
// name itself (a DNS-1123 label is a valid nft identifier once it follows a
// letter), so `nft list table` reads without a lookup table and two tenants
// can never share an object.
const (
	forwardChain = "forward"
	// neighbourChain lets only IPv6 neighbour discovery through.
	neighbourChain = "neighbour-only"
	// podsSet holds every pod IP of every tenant: a destination in it is a pod,
	// anything else is a node or the outside world.
	podsSet = "pods"
	// tenantsMap sends a packet from a pod to its tenant's chain, or drops it
	// when the pod's tenant is unknown or contested.
	tenantsMap = "tenants"
	// ingressMap and egressMap send traffic to and from pods that some
	// NetworkPolicy isolates to their tenant's ingress or egress chain.
	ingressMap = "ingress"
	egressMap  = "egress"
)

// tenantNameRegexp is the DNS-1123 label rule the apiserver enforces on tenant
// names; a name outside it is never turned into an nft identifier.
var tenantNameRegexp = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func validTenant(name string) bool {
	return len(name) <= 63 && tenantNameRegexp.MatchString(name)
}

func tenantChain(t string) string { return "tenant-" + t }

func tenantPodsSet(t string, f family) string { return "tenant-" + t + "-pods" + f.suffix }

// policyChain is the chain of one tenant's rules for one direction.
func policyChain(d direction, t string) string { return string(d) + "-" + t }

// policyID names a NetworkPolicy inside its tenant by a hash of
// namespace/name, so adding or removing one policy does not rename the sets of
// the others (a sequence number would). taken resolves the rare collision
// deterministically: callers visit policies in sorted order.
func policyID(namespace, name string, taken map[string]bool) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(namespace + "/" + name))
	id := fmt.Sprintf("%012x", h.Sum64()&(1<<48-1))
	for i := 1; taken[id]; i++ {
		id = fmt.Sprintf("%012x-%d", h.Sum64()&(1<<48-1), i)
	}
	taken[id] = true
	return id
}

// policyPodsSet holds the pods a policy selects. Its name has a different
// suffix from every rule set, so the two can never collide.
func policyPodsSet(t, id string, f family) string {
	return "policy-" + t + "-" + id + "-pods" + f.suffix
}

// ruleSet names one set of one rule: what is "peers", "ports" or "named".
// The tenant comes first and the fixed-shape suffix last, so a name parses
// back uniquely from the right even though tenant names contain '-'.
func ruleSet(d direction, t, id string, rule int, what, suffix string) string {
	return fmt.Sprintf("%s-%s-%s-%d-%s%s", d, t, id, rule, what, suffix)
}
