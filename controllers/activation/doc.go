// Package activation runs upstream controllers per tenant, and only while a
// tenant has work for them: one slot per (controller, tenant).
//
// A slot is asleep (no instance, no goroutine) until an event in one of the
// shared cross-tenant caches that its Spec calls relevant arrives for the
// tenant, or until the start-up sweep finds work pending there. Then the
// activator builds the upstream controller over the tenant's
// tenantview.Factory and a client of the tenant's path, and runs it with
// one worker. The build replays the tenant's objects to the controller as
// initial adds, as upstream sees them after a restart, so the change that
// woke it is never lost. An instance that saw no relevant event and made no
// API call for the quiet period is stopped and its event handlers removed.
//
// Events arrive on the caches' reflector goroutines: the observers only
// enqueue, a few activator goroutines build.
package activation
