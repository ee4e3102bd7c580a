// Package tenantpodsecurity enforces the management plane's Pod Security
// floor on every tenant's pods: the level its Tenant's spec.podSecurity
// names (default baseline), judged by upstream's pod-security-admission
// checks on each pod create, each update that changes an image or adds a
// container, and each ephemeral container.
//
// Why a plugin of its own: upstream's PodSecurity plugin, which kplex runs
// per tenant, reads the level from namespace labels, and a tenant's admin
// writes those. This floor comes from the Tenant object, which only the
// management plane writes; a tenant's labels may tighten it (its own
// PodSecurity instance still runs) but never loosen it.
//
// Root, the management plane's operators, is exempt. Existing pods are
// not judged again when a level rises: only requests that would start new
// code are.
package tenantpodsecurity
