// Package tenant holds what every kplex component agrees on about tenants:
// the rules for their names, how a tenant is addressed in a URL
// (/clusters/<tenant>/...), the annotation that carries a stored object's
// tenant identity, and how a request's tenant travels in a context.
//
// The management plane is the reserved tenant "root"; "*" addresses all
// tenants at once and is only ever used for cross-tenant reads.
package tenant
