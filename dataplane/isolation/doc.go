// Package isolation programs a node's nftables so that tenants' pods never
// reach each other, and enforces each tenant's NetworkPolicies among its own
// pods.
//
// # Model
//
// Every pod of every tenant shares the node's bridge and the nodes' routes,
// so the data plane, not the pod network, keeps tenants apart. The only
// inputs trusted for that are the pod IPs the nodes assigned (status.podIPs)
// and the tenant the server stamped on each pod (kplex.io/tenant): nothing a
// tenant writes in its own objects moves the line between tenants.
//
// One table, inet kplex-isolation, has one chain on the forward hook. With
// br_netfilter on, bridged pod-to-pod traffic on one node passes that hook as
// routed traffic between nodes does; kube-proxy has already rewritten a
// Service address to the backend pod's, so the hook sees pod IP to pod IP.
// The chain does, in order:
//
//  1. Floods and link-local: broadcast, multicast and IPv6 link-local traffic
//     is dropped, IPv6 neighbour discovery excepted. A bridge floods the first
//     two to every pod on it and the last carries no pod IP, so the tenant
//     check could not tell whose they are; routers never forward them, so
//     here they only ever go from one pod to another on the same bridge.
//  2. Tenant check, on every packet. A packet from a pod jumps to its tenant's
//     chain, which drops it if its destination is a pod of any other tenant.
//     It runs before the conntrack shortcut so that no established
//     connection, for instance one opened before the table existed or before
//     an IP moved to another tenant, outlives it.
//  3. ct state established,related accept: replies of allowed connections.
//  4. Egress policy: a pod that a policy isolates for egress jumps to its
//     tenant's egress chain, which returns when some rule allows the packet
//     and drops it otherwise.
//  5. Ingress policy: the same for the destination pod.
//
// NetworkPolicy only ever narrows: its chains come after the tenant check and
// can only return or drop, selectors are evaluated over the policy's own
// tenant (namespaceSelector sees only the tenant's namespaces), and an
// ipBlock that covers another tenant's pods matches traffic the tenant check
// has already dropped. InertRules reports such ipBlocks so the tenant learns
// why they do nothing. A drop in this table is final whatever other tables
// (kube-proxy's) accept.
//
// A pod IP whose tenant is unknown, or that pods of two tenants claim at once,
// is fenced: its traffic is dropped and it is unreachable from any pod and,
// through the ingress map, from outside.
//
// # Layout and scale
//
// Rules are static per tenant and per policy rule; what varies is in sets: a
// verdict map from every pod IP to its tenant's chain, a set of every pod IP
// and one per tenant, verdict maps from isolated pods to their tenant's
// ingress or egress chain, and per rule the selected pods, the peers (merged
// address ranges), the ports (protocol . port ranges) and the named ports
// (address . protocol . port, resolved on each destination pod). A packet
// costs a few hash lookups plus the rules of its own tenant, whatever the
// number of tenants.
//
// A Sync states the whole desired state; the Syncer writes it in one nft
// transaction, as a diff against what it last wrote (nothing when nothing
// changed), or whole on the first Sync and after a failure. Both the source
// and the destination node evaluate the complete rule set, so a Snapshot
// must hold every pod of the cluster, not only this node's; the checks are
// idempotent.
//
// # Out of scope
//
// Traffic to and from the node itself (input and output hooks), and
// hostNetwork pods, whose address is the node's. Source address spoofing is
// not checked here: at the forward hook a bridged packet's input device is
// the bridge, not the pod's port, so telling a pod's own address from one it
// forged needs the pod's host-side interface, which a Snapshot does not
// carry.
package isolation
