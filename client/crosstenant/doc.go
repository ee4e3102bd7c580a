// Package crosstenant reads objects of every tenant in one pass, through the
// apiserver's /clusters/* endpoint, into caches keyed by tenant.
//
// Upstream caches key objects by namespace/name, where two tenants'
// default/web collide; these key them by tenant/namespace/name instead, and
// tell the reflector not to use watch-list, whose temporary store has the
// same collision.
package crosstenant
