// Package tenantauth scopes identities to tenants.
//
// A tenant's credential is a bearer token derived with HMAC from the tenant's
// name and UID: nothing is stored per tenant, and deleting a tenant (or
// recreating one of the same name) voids every token issued for it. A voided
// token still proves which tenant it was for, so its holder is told "tenant
// not found" on that tenant's path rather than an anonymous 401.
// Such a token authenticates as the tenant's admin, and the authorizer
// wrapper confines every identity that carries a tenant to that tenant's
// path: anywhere else, root and /clusters/* included, it is forbidden.
// Cross-tenant reads at /clusters/* are list and watch only, and only for
// privileged management-plane identities.
package tenantauth
