// Package nodetokens makes bootstrap tokens with which node agents join
// the management plane, as kubeadm's do for kubelets: a Secret of type
// bootstrap.kubernetes.io/token in root's kube-system, whose user
// (system:bootstrap:<id>, group system:bootstrappers) may only ask for a
// node client certificate. A token is a credential to join nodes, not to
// act as one: each node gets a certificate of its own.
package nodetokens

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kplex/kplex/client/kubeconfig"
)

// Group is the extra group of kplex's node tokens, beside
// system:bootstrappers.
const Group = "system:bootstrappers:kplex:nodes"

// DefaultTTL is how long a token joins nodes: kubeadm's default.
const DefaultTTL = 24 * time.Hour

// Create makes a bootstrap token valid for ttl (0: forever) and returns it
// as <id>.<secret>.
func Create(ctx context.Context, root kubernetes.Interface, ttl time.Duration, description string) (string, error) {
	token, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return "", fmt.Errorf("generating a bootstrap token: %w", err)
	}
	id, secret := token[:6], token[7:]
	data := map[string]string{
		bootstrapapi.BootstrapTokenIDKey:               id,
		bootstrapapi.BootstrapTokenSecretKey:           secret,
		bootstrapapi.BootstrapTokenUsageAuthentication: "true",
		bootstrapapi.BootstrapTokenExtraGroupsKey:      Group,
		bootstrapapi.BootstrapTokenDescriptionKey:      description,
	}
	if ttl > 0 {
		data[bootstrapapi.BootstrapTokenExpirationKey] = time.Now().Add(ttl).UTC().Format(time.RFC3339)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(id), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: data,
	}
	if _, err := root.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("storing bootstrap token %s: %w", id, err)
	}
	return token, nil
}

// WriteKubeconfig writes a bootstrap kubeconfig for a node agent: the
// management plane's server and CA from root, authenticated by token.
func WriteKubeconfig(path string, root *rest.Config, token string) error {
	cfg := rest.AnonymousClientConfig(root)
	cfg.BearerToken = token
	return kubeconfig.WriteFile(path, cfg)
}
