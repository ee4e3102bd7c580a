// Package tenantview shows one tenant's part of the cross-tenant caches as
// the client-go informers and listers upstream admission plugins and CRD
// controllers read, so that upstream code built over a view acts on that
// tenant's objects only.
//
// A view holds no objects: reads go to the shared crosstenant.Cache, and
// event handlers are registered there, per tenant. What a view does not
// offer panics (a nil embedded interface) rather than read root's objects.
package tenantview
