// Package lifecycle manages tenants from the management plane: it installs
// the Tenant API (a CRD in root), keeps the in-memory registry of serving
// tenants that request routing and authentication consult, bootstraps a new
// tenant (its system namespaces; default/kubernetes and the default RBAC
// policy are shared from root) and, when a
// Tenant is deleted, removes every etcd key of its partition before letting
// the object go.
package lifecycle
