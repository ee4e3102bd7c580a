// Package partition splits the apiserver's storage by tenant while keeping
// one storage, one watch cache and one etcd watch per resource for all of
// them.
//
// The tenant is a key segment right after the resource prefix:
//
//	/registry/configmaps/<tenant>/<namespace>/<name>
//
// Upstream registries compute keys without a tenant; the wrapped
// storage.Interface inserts the request's tenant into every key it is given,
// and the watch cache's key function inserts the tenant named by the object's
// server-owned identity annotation. The identity is stamped on every Create
// and GuaranteedUpdate from the request's tenant, so a client can neither set
// nor forge it, and an existing object whose identity disagrees with its key
// is refused rather than moved.
package partition
