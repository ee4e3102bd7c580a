package tenantmux

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

// coreClient is a kubernetes.Interface of core/v1 only, all these plugins
// use, and discovery where a plugin needs it: a full clientset costs
// ~30 KB a tenant, this one ~0.5 KB. Other groups panic.
type coreClient struct {
	kubernetes.Interface // nil
	core                 corev1client.CoreV1Interface
	// discovery is set for plugins that read the tenant's OpenAPI
	// (MutatingAdmissionPolicy's apply configurations).
	discovery discovery.DiscoveryInterfaces
}

func (c coreClient) CoreV1() corev1client.CoreV1Interface { return c.core }

func (c coreClient) Discovery() discovery.DiscoveryInterfaces { return c.discovery }

func newCoreClient(cfg *rest.Config, client *http.Client) (coreClient, error) {
	core, err := corev1client.NewForConfigAndClient(cfg, client)
	if err != nil {
		return coreClient{}, err
	}
	return coreClient{core: core}, nil
}

// errAPIServerWebhook refuses webhooks addressed to the apiserver itself:
// upstream would call them with the loopback (root) credentials.
var errAPIServerWebhook = fmt.Errorf("webhooks of a tenant may not call the apiserver (kubernetes.default.svc)")

// tenantAuthentication is the authentication of tenant webhooks: none but
// the webhook's own caBundle. Upstream's would hand out the loopback
// credentials for kubernetes.default.svc and the admission kubeconfig's
// for the hosts it names, both root's.
func tenantAuthentication(webhook.AuthenticationInfoResolver) webhook.AuthenticationInfoResolver {
	return &webhook.AuthenticationInfoResolverDelegator{
		ClientConfigForFunc: func(hostPort string) (*rest.Config, error) {
			if host, _, err := net.SplitHostPort(hostPort); err == nil && isAPIServer(host) {
				return nil, errAPIServerWebhook
			}
			return &rest.Config{}, nil
		},
		ClientConfigForServiceFunc: func(name, namespace string, _ int) (*rest.Config, error) {
			if name == "kubernetes" && namespace == metav1.NamespaceDefault {
				return nil, errAPIServerWebhook
			}
			return &rest.Config{}, nil
		},
	}
}

func isAPIServer(host string) bool {
	switch host {
	case "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "kubernetes.default", "kubernetes":
		return true
	}
	return false
}

// serviceResolver resolves a tenant webhook's service among the tenant's
// Services: an ExternalName names its host, else the cluster IP.
type serviceResolver struct{ core corev1client.CoreV1Interface }

func (r serviceResolver) ResolveEndpoint(namespace, name string, port int32) (*url.URL, error) {
	if name == "kubernetes" && namespace == metav1.NamespaceDefault {
		return nil, errAPIServerWebhook
	}
	svc, err := r.core.Services(namespace).Get(context.TODO(), name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("resolving webhook service %s/%s: %w", namespace, name, err)
	}
	host := svc.Spec.ClusterIP
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		host = svc.Spec.ExternalName
	case host == "" || host == corev1.ClusterIPNone:
		return nil, fmt.Errorf("webhook service %s/%s has neither an external name nor a cluster IP", namespace, name)
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(int(port)))}, nil
}
