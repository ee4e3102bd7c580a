// Package nodeauth authorizes node agents, which authenticate as
// system:node:<name> in group system:nodes (their TLS-bootstrapped client
// certificates), across every tenant: upstream's Node authorizer and
// NodeRestriction, for a fleet whose pods belong to many tenants.
//
// A node may:
//   - read Nodes, NodePools and RuntimeClasses, and write its own Node,
//     its own Node's status and its own Lease in kube-node-lease;
//   - list and watch, across tenants (read-only), the namespaces,
//     Services, EndpointSlices and NetworkPolicies its data plane needs,
//     and the pods as a projection (WithPodProjection: identity, labels,
//     node, host network, container ports, phase, addresses; no images,
//     commands, environment, volumes or annotations): the data plane
//     enforces every tenant's isolation and policies by pod IP and
//     labels, as every NetworkPolicy agent does;
//   - list and watch whole, in any tenant or across them, only the pods
//     it selects by fieldSelector spec.nodeName=<itself>;
//   - in a tenant: get, delete and write the status of the pods bound to
//     it; get the Secrets, ConfigMaps, PersistentVolumeClaims and
//     ServiceAccounts those pods reference, and ask tokens for those
//     ServiceAccounts; read the tenant's Services (the pods' environment)
//     and RuntimeClasses; create events.
//
// Everything else is denied, whatever a tenant's RBAC says: a tenant's
// admin cannot grant a node more of its tenant, and one node cannot read
// another node's pods' Secrets. On the management plane, what these rules
// do not allow is left to root's RBAC, where the operator binds the node
// bootstrap and certificate-signing roles.
//
// Which pods are bound to which node comes from a cross-tenant pod cache
// the apiserver keeps over its own loopback connection.
package nodeauth
