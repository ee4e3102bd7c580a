// Package namespacelifecycle is the NamespaceLifecycle admission plugin of
// a multi-tenant apiserver: nothing is created in a namespace that does not
// exist, or is terminating, in the tenant of the request; the namespaces
// every cluster needs may not be deleted.
//
// Upstream's plugin looks namespaces up through root's informer and a
// root client, so for a tenant it would judge by root's namespaces. This
// one reads one cross-tenant cache and, on a miss, the tenant's own path.
package namespacelifecycle
