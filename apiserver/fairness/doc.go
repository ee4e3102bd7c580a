// Package fairness makes API Priority and Fairness tell tenants apart.
//
// Upstream classifies a request by its user: two tenants' service accounts
// named default/default would be one flow, and a tenant could claim the
// priority of system users by naming its own accounts after them. Here a
// request on a tenant's path, by anyone but system:masters, is classified
// as the tenant itself: one flow per tenant, in a priority level of its
// own, so a flooding tenant queues behind its own requests while the
// others' are served.
package fairness
