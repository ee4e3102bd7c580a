// Package routing moves the tenant out of the URL and into the request.
//
// A request for /clusters/<tenant>/<rest> is served as the ordinary
// Kubernetes request /<rest> with the tenant in its context, so everything
// behind this filter (authentication, authorization, admission, storage) is
// upstream code that never sees the prefix. A request without the prefix
// belongs to the management plane, root, unless its bearer token is a
// tenant's service account token: a pod's in-cluster client knows no
// prefix, and is served in the tenant its token was issued in, as if it had
// written the prefix (docs/notes/in-cluster-api.md). Unknown tenants are answered
// behind authorization, so that anonymous clients cannot probe for names.
package routing
