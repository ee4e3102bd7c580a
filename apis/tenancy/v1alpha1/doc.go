// Package v1alpha1 is the kplex.io/v1alpha1 API of the management plane:
// Tenant, one isolated control plane served at /clusters/<name>.
package v1alpha1
