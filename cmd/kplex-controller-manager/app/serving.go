package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	apiserverapi "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	authorizerpath "k8s.io/apiserver/pkg/authorization/path"
	"k8s.io/apiserver/pkg/authorization/union"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/pkg/server/healthz"
	apiserveroptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	cliflag "k8s.io/component-base/cli/flag"
	componentbaseconfig "k8s.io/component-base/config"
	genericcontrollermanager "k8s.io/controller-manager/app"
	controllerhealthz "k8s.io/controller-manager/pkg/healthz"
	"k8s.io/klog/v2"
	netutils "k8s.io/utils/net"
)

// authenticationConfigMap holds the management plane's client CA
// (client-ca-file), as kube-apiserver publishes it for delegated
// authentication.
const authenticationConfigMap = "extension-apiserver-authentication"

// ServingOptions are the secure port's, as kube-controller-manager's:
// /metrics and /healthz over HTTPS, with a self-signed certificate unless
// one is given; every request is authenticated and authorized by the
// management plane (TokenReview, its client CA, SubjectAccessReview), so
// that nothing on the host reads the fleet's metrics without credentials.
type ServingOptions struct {
	SecureServing  *apiserveroptions.SecureServingOptions
	Authentication *apiserveroptions.DelegatingAuthenticationOptions
	Authorization  *apiserveroptions.DelegatingAuthorizationOptions
}

// NewServingOptions returns the defaults: off (--secure-port 0); when on,
// an in-memory self-signed certificate, /healthz, /readyz and /livez open
// to all, system:masters allowed everything.
func NewServingOptions() *ServingOptions {
	s := apiserveroptions.NewSecureServingOptions()
	s.BindPort = 0
	s.ServerCert.CertDirectory = ""
	s.ServerCert.PairName = "kplex-controller-manager"
	return &ServingOptions{
		SecureServing:  s,
		Authentication: apiserveroptions.NewDelegatingAuthenticationOptions(),
		Authorization:  apiserveroptions.NewDelegatingAuthorizationOptions(),
	}
}

// AddFlags binds the secure port's flags: kube-controller-manager's
// secure serving flags, and those of its authentication and authorization
// flags that apply. There is no --authentication-kubeconfig or
// --authorization-kubeconfig: the management plane of --kubeconfig and
// --context judges, never a kubeconfig's current context (it may be a
// tenant's).
func (o *ServingOptions) AddFlags(fss *cliflag.NamedFlagSets) {
	o.SecureServing.AddFlags(fss.FlagSet("secure serving"))
	authn := fss.FlagSet("authentication")
	authn.StringVar(&o.Authentication.ClientCert.ClientCA, "client-ca-file", o.Authentication.ClientCert.ClientCA,
		"CA bundle: a client certificate it signed is the user of its common name (groups: its organizations); "+
			"empty uses the management plane's client CA (client-ca-file of ConfigMap kube-system/"+authenticationConfigMap+")")
	authn.DurationVar(&o.Authentication.CacheTTL, "authentication-token-webhook-cache-ttl", o.Authentication.CacheTTL,
		"how long the management plane's TokenReview answers are cached")
	authz := fss.FlagSet("authorization")
	authz.DurationVar(&o.Authorization.AllowCacheTTL, "authorization-webhook-cache-authorized-ttl", o.Authorization.AllowCacheTTL,
		"how long the management plane's SubjectAccessReview answers that allow are cached")
	authz.DurationVar(&o.Authorization.DenyCacheTTL, "authorization-webhook-cache-unauthorized-ttl", o.Authorization.DenyCacheTTL,
		"how long the management plane's SubjectAccessReview answers that deny are cached")
	authz.StringSliceVar(&o.Authorization.AlwaysAllowPaths, "authorization-always-allow-paths", o.Authorization.AlwaysAllowPaths,
		"HTTP paths served without authorization (to anyone, authenticated or not)")
}

// Validate checks the flags.
func (o *ServingOptions) Validate() error {
	var errs []error
	errs = append(errs, o.SecureServing.Validate()...)
	errs = append(errs, o.Authentication.Validate()...)
	errs = append(errs, o.Authorization.Validate()...)
	return utilerrors.NewAggregate(errs)
}

// enabled reports whether the secure port serves.
func (o *ServingOptions) enabled() bool {
	return o.SecureServing.BindPort != 0 || o.SecureServing.Listener != nil
}

// Serve listens on the secure port and serves /metrics (the process's
// legacyregistry: work queues, activation and the fleet's capacity) and
// /healthz until ctx ends; root, the management plane, authenticates and
// authorizes every request. Without --secure-port it does nothing. It
// returns once listening, so that a port in use fails the start.
func (o *ServingOptions) Serve(ctx context.Context, root *rest.Config) error {
	if !o.enabled() {
		return nil
	}
	if err := o.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{netutils.ParseIPSloppy("127.0.0.1")}); err != nil {
		return fmt.Errorf("making a self-signed serving certificate: %w", err)
	}
	var serving *genericapiserver.SecureServingInfo
	if err := o.SecureServing.ApplyTo(&serving); err != nil {
		return fmt.Errorf("--secure-port: %w", err)
	}
	handler, err := o.handler(root, serving)
	if err != nil {
		serving.Listener.Close()
		return err
	}
	if _, _, err := serving.Serve(handler, 0, ctx.Done()); err != nil {
		serving.Listener.Close()
		return fmt.Errorf("serving on --secure-port: %w", err)
	}
	klog.InfoS("Serving metrics and health over HTTPS", "address", serving.Listener.Addr().String())
	return nil
}

// handler is kube-controller-manager's: its /metrics and /healthz behind
// authentication and authorization.
func (o *ServingOptions) handler(root *rest.Config, serving *genericapiserver.SecureServingInfo) (http.Handler, error) {
	client, err := delegationClient(root, o.Authorization.ClientTimeout)
	if err != nil {
		return nil, err
	}
	authn, err := o.authentication(client, serving)
	if err != nil {
		return nil, err
	}
	authz, err := o.authorizer(client)
	if err != nil {
		return nil, err
	}
	mux := genericcontrollermanager.NewBaseHandler(&componentbaseconfig.DebuggingConfiguration{}, controllerhealthz.NewMutableHealthzHandler(healthz.PingHealthz))
	return genericcontrollermanager.BuildHandlerChain(mux, &genericapiserver.AuthorizationInfo{Authorizer: authz}, authn), nil
}

// delegationClient is the management plane's client for TokenReviews and
// SubjectAccessReviews, with upstream's delegation limits: every scrape
// may need one of each.
func delegationClient(root *rest.Config, timeout time.Duration) (kubernetes.Interface, error) {
	cfg := rest.CopyConfig(root)
	cfg.QPS, cfg.Burst, cfg.Timeout = 200, 400, timeout
	cfg = rest.AddUserAgent(cfg, "kplex-controller-manager/delegated-auth")
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the delegated authentication client: %w", err)
	}
	return client, nil
}

// authentication is DelegatingAuthenticationOptions.ApplyTo over client
// (upstream's reads a kubeconfig file): bearer tokens by TokenReview,
// client certificates by the client CA, and no credentials as
// system:anonymous, whom authorization lets through to the always-allowed
// paths only. No front-proxy headers: no aggregator fronts this port.
func (o *ServingOptions) authentication(client kubernetes.Interface, serving *genericapiserver.SecureServingInfo) (*genericapiserver.AuthenticationInfo, error) {
	a := o.Authentication
	ca, err := o.clientCA(client)
	if err != nil {
		return nil, err
	}
	info := &genericapiserver.AuthenticationInfo{}
	if err := info.ApplyClientCert(ca, serving); err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	cfg := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                          &apiserverapi.AnonymousAuthConfig{Enabled: true},
		CacheTTL:                           a.CacheTTL,
		TokenAccessReviewClient:            client.AuthenticationV1(),
		TokenAccessReviewTimeout:           a.TokenRequestTimeout,
		WebhookRetryBackoff:                a.WebhookRetryBackoff,
		ClientCertificateCAContentProvider: ca,
	}
	if info.Authenticator, _, err = cfg.New(); err != nil {
		return nil, fmt.Errorf("delegated authentication: %w", err)
	}
	return info, nil
}

// clientCA is --client-ca-file, else the management plane's published
// client CA, followed as it changes. Should the ConfigMap be missing,
// client certificates are refused (tokens still work).
func (o *ServingOptions) clientCA(client kubernetes.Interface) (dynamiccertificates.CAContentProvider, error) {
	if o.Authentication.ClientCert.ClientCA != "" {
		ca, err := o.Authentication.ClientCert.GetClientCAContentProvider()
		if err != nil {
			return nil, fmt.Errorf("--client-ca-file: %w", err)
		}
		return ca, nil
	}
	ca, err := dynamiccertificates.NewDynamicCAFromConfigMapController("client-ca", metav1.NamespaceSystem, authenticationConfigMap, "client-ca-file", client)
	if err != nil {
		return nil, fmt.Errorf("the management plane's client CA: %w", err)
	}
	return ca, nil
}

// authorizer is DelegatingAuthorizationOptions' over client: its always
// allowed groups (system:masters) and paths (/healthz, /readyz, /livez),
// then a SubjectAccessReview (e.g. get on the non-resource URL /metrics).
func (o *ServingOptions) authorizer(client kubernetes.Interface) (authorizer.Authorizer, error) {
	z := o.Authorization
	paths, err := authorizerpath.NewAuthorizer(z.AlwaysAllowPaths)
	if err != nil {
		return nil, fmt.Errorf("--authorization-always-allow-paths: %w", err)
	}
	review, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: client.AuthorizationV1(),
		AllowCacheTTL:             z.AllowCacheTTL,
		DenyCacheTTL:              z.DenyCacheTTL,
		WebhookRetryBackoff:       z.WebhookRetryBackoff,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("delegated authorization: %w", err)
	}
	authz, err := union.New(
		union.NamedAuthorizer{AuthorizerName: "kubernetes.io/always-allow-groups", Authorizer: authorizerfactory.NewPrivilegedGroups(z.AlwaysAllowGroups...)},
		union.NamedAuthorizer{AuthorizerName: "kubernetes.io/always-allow-paths", Authorizer: paths},
		union.NamedAuthorizer{AuthorizerName: "kubernetes.io/webhook", Authorizer: review},
	)
	if err != nil {
		return nil, fmt.Errorf("delegated authorization: %w", err)
	}
	return authz, nil
}
