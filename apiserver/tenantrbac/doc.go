// Package tenantrbac evaluates RBAC per tenant: a request on a tenant's path
// is decided by that tenant's Roles, ClusterRoles and bindings only, plus
// the default policy root shares with every tenant (the ClusterRoles and
// bindings labelled kubernetes.io/bootstrapping=rbac-defaults).
//
// Upstream's RBAC authorizer does the evaluating; this package gives it rule
// sources that read the tenant from the request context, over one
// cross-tenant cache per RBAC resource.
package tenantrbac
