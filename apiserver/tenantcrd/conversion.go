package tenantcrd

import (
	"fmt"
	"net/url"

	"k8s.io/apiserver/pkg/util/webhook"
)

// refuseServices resolves no Service for a tenant's conversion webhook:
// upstream's resolver looks Services up in root, which would send a
// tenant's objects to root's endpoints.
type refuseServices struct{}

func (refuseServices) ResolveEndpoint(namespace, name string, _ int32) (*url.URL, error) {
	return nil, fmt.Errorf("a tenant's conversion webhook must name its clientConfig.url: Service %s/%s is not resolved", namespace, name)
}

// noCredentials keeps a tenant's conversion webhook calls free of the
// apiserver's own credentials, which upstream attaches for in-cluster hosts.
var noCredentials webhook.AuthenticationInfoResolverWrapper = func(r webhook.AuthenticationInfoResolver) webhook.AuthenticationInfoResolver {
	return r
}
