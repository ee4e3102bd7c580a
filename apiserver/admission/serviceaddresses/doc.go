// Package serviceaddresses refuses a tenant's Service that claims an
// address kplex owns: a spec.externalIPs entry, spec.loadBalancerIP or a
// status.loadBalancer.ingress IP inside the cluster's pod network (the
// cluster CIDR), inside a service CIDR, or equal to a node's InternalIP or
// ExternalIP.
//
// Why: every tenant's pods share the nodes and one pod network, and one
// data plane per node programs every tenant's Services, external and load
// balancer IPs included. A tenant naming another tenant's pod IP or cluster
// IP, or a node's IP, there would capture that traffic on every node. The
// data plane strips such addresses as a second line of defence; this plugin
// refuses them when they are written, with the field named (422), so that
// nothing is stored and the tenant learns why.
//
// Root is exempt: the management plane's operators may do what they want.
// Spec fields are judged on writes of the Service itself, the ingress IPs
// on writes of its status subresource (upstream's strategy keeps the other
// half from the stored object). Node addresses come from root's Node
// informer; the ranges from the server's flags (--cluster-cidr,
// --service-cluster-ip-range), set with SetNetworks before the server
// builds its admission chain.
package serviceaddresses
