package tenant

import (
	"context"
	"fmt"
	"regexp"
	"strings"
)

const (
	// Root is the management plane: Tenants, Nodes, NodePools and quotas live
	// here. Requests without a /clusters/<tenant> prefix are served from it.
	Root = "root"
	// Wildcard addresses every tenant at once, for cross-tenant list and watch.
	Wildcard = "*"
	// PathPrefix starts every tenant-addressed URL path.
	PathPrefix = "/clusters/"
	// Annotation carries the server-owned tenant identity of a stored object.
	// The server stamps it on every write; clients can neither set nor change it.
	Annotation = "kplex.io/tenant"
	// MaxNameLength is the longest tenant name: a DNS-1123 label.
	MaxNameLength = 63
)

var labelRegexp = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateName returns nil when name can name a tenant: a DNS-1123 label that
// is not a reserved name. The error says what is wrong in words a user can act on.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("tenant name must not be empty")
	case len(name) > MaxNameLength:
		return fmt.Errorf("tenant name %q must be no more than %d characters", name, MaxNameLength)
	case !labelRegexp.MatchString(name):
		return fmt.Errorf("tenant name %q must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit", name)
	case name == Root:
		return fmt.Errorf("tenant name %q is reserved for the management plane", name)
	}
	return nil
}

// Path returns the URL path prefix under which tenant name is served, with no
// trailing slash: Path("acme") is "/clusters/acme". Root has no prefix.
func Path(name string) string {
	if name == Root {
		return ""
	}
	return strings.TrimSuffix(PathPrefix, "/") + "/" + name
}

type contextKey struct{}

// WithTenant returns a copy of ctx that carries the request's tenant.
func WithTenant(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, contextKey{}, name)
}

// FromContext returns the tenant a request addresses. A context that carries
// none is the management plane's: the apiserver's own loopback requests and
// storage calls made outside any request belong to root.
func FromContext(ctx context.Context) string {
	if name, ok := ctx.Value(contextKey{}).(string); ok && name != "" {
		return name
	}
	return Root
}
