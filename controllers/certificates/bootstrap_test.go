package certificates_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/client-go/util/keyutil"

	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/controllers/certificates"
)

// The bootstrap token of the test: <token-id>.<token-secret>, stored in
// root's kube-system as Secret bootstrap-token-<token-id>.
const (
	tokenID     = "kplex0"
	tokenSecret = "0123456789abcdef"
	bootstrap   = tokenID + "." + tokenSecret
)

// kubelet client certificates of an ECDSA key, as the kubelet asks them.
var clientUsages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}

// TestNodeTLSBootstrap walks a node agent through kubelet-style TLS
// bootstrap against a real apiserver: a bootstrap token gets its CSR
// approved, signed by the client CA once a signer runs, and the
// certificate authenticates the node; the node renews with it; nothing
// else gets approved.
func TestNodeTLSBootstrap(t *testing.T) {
	e := servertest.Start(t, "", func(c *server.Config) {
		// TLS bootstrap authenticates node agents by bootstrap tokens.
		c.Kube.Authentication.BootstrapToken.Enable = true
	})
	files := server.PKIFiles(e.DataDir)
	admin := servertest.Client(t, e.Admin)
	ctx := context.Background()
	bootstrapPolicy(t, admin)
	createToken(t, admin, tokenID, tokenSecret, true)
	createToken(t, admin, "kplex1", tokenSecret, false) // not for authentication

	asBootstrap := servertest.Client(t, tokenConfig(e, bootstrap))
	nodeName, nodeKey := requestNodeCert(t, asBootstrap, "system:node:test-node", certificatesv1.KubeAPIServerClientKubeletSignerName)

	// Without a CA the controllers approve but do not sign.
	stop := runControllers(t, e.Admin, certificates.Options{})
	approval := waitApproved(t, admin, nodeName)
	if approval.Reason != "AutoApproved" || !strings.Contains(approval.Message, "Auto approving kubelet client certificate") {
		t.Errorf("bootstrap CSR approved as %s: %q, want the nodeclient approval", approval.Reason, approval.Message)
	}
	time.Sleep(3 * time.Second)
	if c := getCSR(t, admin, nodeName); len(c.Status.Certificate) != 0 {
		t.Error("CSR signed with no signing CA configured")
	}
	stop()

	// With the client CA they sign.
	stop = runControllers(t, e.Admin, certificates.Options{SigningCertFile: files.CACert(), SigningKeyFile: files.CAKey(), Duration: 24 * time.Hour})
	defer stop()
	certPEM := waitCertificate(t, asBootstrap, nodeName)
	cert := checkNodeCert(t, certPEM, files.CACert(), "system:node:test-node")
	if life := time.Until(cert.NotAfter); life > 24*time.Hour || life < 23*time.Hour {
		t.Errorf("certificate valid until %s, want Options.Duration (24h) from now", cert.NotAfter)
	}

	// The certificate authenticates the node.
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	asNode := servertest.Client(t, &rest.Config{Host: e.Admin.Host, QPS: -1,
		TLSClientConfig: rest.TLSClientConfig{CAFile: e.Admin.CAFile, CertData: certPEM, KeyData: keyPEM}})
	review, err := asNode.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self subject review with the node certificate: %v", err)
	}
	if u := review.Status.UserInfo; u.Username != "system:node:test-node" || !slices.Contains(u.Groups, "system:nodes") {
		t.Errorf("node certificate authenticates as %q %v, want system:node:test-node in system:nodes", u.Username, u.Groups)
	}

	// What must stay pending: another node's name asked by this node
	// (selfnodeclient covers its own name only, and nodes have no
	// nodeclient), and a signer other than kubelet client's, even asked
	// by a bootstrapper, who holds nodeclient.
	otherByNode, _ := requestNodeCert(t, asNode, "system:node:other", certificatesv1.KubeAPIServerClientKubeletSignerName)
	otherSignerByNode, _ := requestNodeCert(t, asNode, "system:node:test-node", certificatesv1.KubeAPIServerClientSignerName)
	otherSignerByToken, _ := requestNodeCert(t, asBootstrap, "system:node:test-node", certificatesv1.KubeAPIServerClientSignerName)
	// Nor is a tenant's CSR, which the tenant's admin may approve itself:
	// node identities are root's, and the controllers read root alone.
	asTenant := servertest.Client(t, e.CreateTenant(t, "t1"))
	inTenant, _ := requestNodeCert(t, asTenant, "system:node:test-node", certificatesv1.KubeAPIServerClientKubeletSignerName)
	// What is approved: the node renewing its own certificate
	// (selfnodeclient), and a bootstrapper asking for any node name
	// (nodeclient: upstream does not tie a bootstrap token to a name).
	renewal, renewalKey := requestNodeCert(t, asNode, "system:node:test-node", certificatesv1.KubeAPIServerClientKubeletSignerName)
	otherByToken, _ := requestNodeCert(t, asBootstrap, "system:node:other", certificatesv1.KubeAPIServerClientKubeletSignerName)

	renewed := checkNodeCert(t, waitCertificate(t, asNode, renewal), files.CACert(), "system:node:test-node")
	if !renewed.PublicKey.(*ecdsa.PublicKey).Equal(renewalKey.Public()) {
		t.Error("renewed certificate is not for the renewal's key")
	}
	if a := waitApproved(t, admin, renewal); !strings.Contains(a.Message, "self kubelet client certificate") {
		t.Errorf("renewal approved as %q, want the selfnodeclient approval", a.Message)
	}
	checkNodeCert(t, waitCertificate(t, asBootstrap, otherByToken), files.CACert(), "system:node:other")
	// The approver has seen every CSR by now; give it time to err.
	pending := map[string]kubernetes.Interface{otherByNode: admin, otherSignerByNode: admin, otherSignerByToken: admin, inTenant: asTenant}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for name, client := range pending {
			if c := getCSR(t, client, name); len(c.Status.Conditions) != 0 || len(c.Status.Certificate) != 0 {
				t.Fatalf("CSR %s (%s, by %s) is no longer pending: %+v", name, c.Spec.SignerName, c.Spec.Username, c.Status.Conditions)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if _, err := admin.CertificatesV1().CertificateSigningRequests().Get(ctx, inTenant, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("tenant t1's CSR %s read in root: %v, want NotFound", inTenant, err)
	}

	// Tokens that are not valid bootstrap tokens authenticate nobody.
	for _, token := range []string{tokenID + ".fedcba9876543210", "kplex1." + tokenSecret, "kplex2." + tokenSecret, "not-a-token"} {
		client := servertest.Client(t, tokenConfig(e, token))
		_, _, err := csr.RequestCertificate(client, makeCSR(t, newKey(t), "system:node:test-node"), "", certificatesv1.KubeAPIServerClientKubeletSignerName, nil, clientUsages, newKey(t))
		if !apierrors.IsUnauthorized(err) {
			t.Errorf("CSR with token %q: %v, want 401 Unauthorized", token, err)
		}
	}
}

// bootstrapPolicy binds, in root, what kubeadm binds for TLS bootstrap and
// certificate rotation, and lets nodes create CSRs to renew (upstream's
// Node authorizer allows that; kplex leaves it to root's RBAC). The names
// are the test's own, so that they stand beside whatever bindings the
// apiserver writes itself.
func bootstrapPolicy(t *testing.T, admin kubernetes.Interface) {
	t.Helper()
	for name, binding := range map[string]struct{ group, role string }{
		"certificates-test:node-bootstrapper":                     {"system:bootstrappers", "system:node-bootstrapper"},
		"certificates-test:node-autoapprove-bootstrap":            {"system:bootstrappers", "system:certificates.k8s.io:certificatesigningrequests:nodeclient"},
		"certificates-test:node-autoapprove-certificate-rotation": {"system:nodes", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"},
		"certificates-test:node-certificate-requests":             {"system:nodes", "system:node-bootstrapper"},
	} {
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: binding.role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: binding.group}},
		}
		if _, err := admin.RbacV1().ClusterRoleBindings().Create(context.Background(), crb, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating ClusterRoleBinding %s: %v", name, err)
		}
	}
}

// createToken stores bootstrap token id.secret in root's kube-system, for
// authentication or not. (The keys are k8s.io/cluster-bootstrap/token/api's.)
func createToken(t *testing.T, admin kubernetes.Interface, id, secret string, authentication bool) {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id, Namespace: metav1.NamespaceSystem},
		Type:       "bootstrap.kubernetes.io/token",
		StringData: map[string]string{
			"token-id":          id,
			"token-secret":      secret,
			"auth-extra-groups": "system:bootstrappers:kplex",
			"expiration":        time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		},
	}
	if authentication {
		s.StringData["usage-bootstrap-authentication"] = "true"
	}
	if _, err := admin.CoreV1().Secrets(metav1.NamespaceSystem).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating bootstrap token %s: %v", id, err)
	}
}

// tokenConfig is a root config authenticated by token alone.
func tokenConfig(e *servertest.Env, token string) *rest.Config {
	return &rest.Config{Host: e.Admin.Host, BearerToken: token, QPS: -1,
		TLSClientConfig: rest.TLSClientConfig{CAFile: e.Admin.CAFile}}
}

// runControllers runs certificates.Run until stop, which checks that it
// returns, without error, once its context ends.
func runControllers(t *testing.T, loopback *rest.Config, opts certificates.Options) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- certificates.Run(ctx, loopback, opts) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("certificates.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("certificates.Run did not return 30s after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// makeCSR returns a PEM certificate request of key for cn in system:nodes.
func makeCSR(t *testing.T, key crypto.Signer, cn string) []byte {
	t.Helper()
	pem, err := certutil.MakeCSR(key, &pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return pem
}

// requestNodeCert creates, as client, a CSR of a new key for cn in
// system:nodes with signerName and the kubelet's client usages.
func requestNodeCert(t *testing.T, client kubernetes.Interface, cn, signerName string) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	name, _, err := csr.RequestCertificate(client, makeCSR(t, key, cn), "", signerName, nil, clientUsages, key)
	if err != nil {
		t.Fatalf("requesting a certificate for %s from %s: %v", cn, signerName, err)
	}
	return name, key
}

func getCSR(t *testing.T, client kubernetes.Interface, name string) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	c, err := client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading CSR %s: %v", name, err)
	}
	return c
}

// waitApproved waits up to 30s for CSR name's approval.
func waitApproved(t *testing.T, client kubernetes.Interface, name string) certificatesv1.CertificateSigningRequestCondition {
	t.Helper()
	var approved certificatesv1.CertificateSigningRequestCondition
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, c := range getCSR(t, client, name).Status.Conditions {
			switch c.Type {
			case certificatesv1.CertificateApproved:
				approved = c
				return true, nil
			case certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
				return false, errors.New(string(c.Type) + ": " + c.Message)
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CSR %s not approved: %v", name, err)
	}
	return approved
}

// waitCertificate waits up to 30s, as the requester, for CSR name's certificate.
func waitCertificate(t *testing.T, client kubernetes.Interface, name string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := getCSR(t, client, name)
	pem, err := csr.WaitForCertificate(ctx, client, name, types.UID(c.UID))
	if err != nil {
		t.Fatalf("certificate of CSR %s: %v", name, err)
	}
	return pem
}

// checkNodeCert checks that certPEM is a client certificate of the CA in
// caFile for node cn in system:nodes, and returns it.
func checkNodeCert(t *testing.T, certPEM []byte, caFile, cn string) *x509.Certificate {
	t.Helper()
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		t.Fatalf("parsing the certificate: %v", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in", caFile)
	}
	cert := certs[0]
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate of %s does not verify as a client certificate of the client CA: %v", cn, err)
	}
	if cert.Subject.CommonName != cn || !slices.Equal(cert.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("certificate subject %q %v, want %q [system:nodes]", cert.Subject.CommonName, cert.Subject.Organization, cn)
	}
	return cert
}
