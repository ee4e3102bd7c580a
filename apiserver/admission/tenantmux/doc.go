// Package tenantmux makes upstream admission plugins per tenant.
//
// Upstream builds each plugin once, over root's informers and client. For
// each plugin named in specs, the Hub's decorator wraps that root instance
// in a Mux, under the same name and in the same place of the chain. A Mux
// sends root's requests to the root instance, admits cross-tenant ("*")
// requests (they are read-only), and sends a tenant's requests to an
// instance of the same upstream plugin built for that tenant: over a
// tenantview of the cross-tenant caches, a client of the tenant's path and
// the tenant-aware authorizer. A tenant's instance is built on its first
// request that needs it (the tenant has objects the plugin acts on) and
// stopped, through its own drained-notification channel, once the tenant
// has none left. A tenant without such objects costs nothing.
//
// See docs/notes/per-tenant-admission.md.
package tenantmux
