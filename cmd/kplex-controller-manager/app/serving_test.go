package app

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/apiserver/server/servertest"
)

// The secure port serves HTTPS only; /healthz to anyone; /metrics only to
// whom the management plane authenticates and authorizes: anonymous is
// 403, a bad token 401, a tenant's admin token is no root identity, a
// root service account needs get on /metrics, and the admin (client
// certificate, system:masters) reads the controller manager's kplex_
// series.
func TestIntegrationSecurePortAuthenticatesAndAuthorizes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	tenantConfig := e.CreateTenant(t, "cm-metrics")
	tenantToken := tenantConfig.BearerToken
	root := servertest.Client(t, e.Admin)
	if _, err := root.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "metrics-node"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	scraper, nobody := serviceAccountToken(t, root, "scraper"), serviceAccountToken(t, root, "nobody")
	allowMetrics(t, root, "scraper")

	port := freePort(t)
	run(t, "--kubeconfig", writeKubeconfig(t, e), "--leader-elect=false", "--secure-port", strconv.Itoa(port), "--bind-address", "127.0.0.1")
	base := "https://127.0.0.1:" + strconv.Itoa(port)
	anonymous := httpsClient(t, nil)
	waitFor(t, "/healthz answering anonymously", func() bool {
		code, body := get(t, anonymous, base+"/healthz", "")
		return code == http.StatusOK && body == "ok"
	})

	resp, err := anonymous.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := resp.TLS.PeerCertificates[0].VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("the self-signed serving certificate: %v", err)
	}
	if code, _ := get(t, &http.Client{Timeout: 10 * time.Second}, "http://127.0.0.1:"+strconv.Itoa(port)+"/metrics", ""); code != http.StatusBadRequest {
		t.Errorf("/metrics over plain HTTP: %d, want 400 (an HTTPS port)", code)
	}
	for _, tc := range []struct {
		who, token string
		want       []int
	}{
		{"anonymous", "", []int{http.StatusForbidden}},
		{"a made-up token", "not-a-token", []int{http.StatusUnauthorized}},
		// Root's TokenReview does not take a tenant's token as root's.
		{"a tenant's admin token", tenantToken, []int{http.StatusUnauthorized, http.StatusForbidden}},
		{"a root service account without the right", nobody, []int{http.StatusForbidden}},
	} {
		if code, body := get(t, anonymous, base+"/metrics", tc.token); !slices.Contains(tc.want, code) {
			t.Errorf("/metrics as %s: %d, want %v\n%.300s", tc.who, code, tc.want, body)
		}
	}
	if code, body := get(t, anonymous, base+"/metrics", scraper); code != http.StatusOK || !strings.Contains(body, "kplex_") {
		t.Errorf("/metrics as a root service account allowed get on /metrics: %d, want 200 with kplex_ series\n%.300s", code, body)
	}
	admin := httpsClient(t, e.Admin)
	const series = `kplex_nodepool_nodes{pool="none"} 1`
	waitFor(t, "the admin (client certificate) reading "+series, func() bool {
		code, body := get(t, admin, base+"/metrics", "")
		return code == http.StatusOK && strings.Contains(body, series)
	})
	// Serving does not hold the controllers up: the tenant's default
	// ServiceAccount comes (and the manager is past its start when the
	// test stops it).
	tenant := servertest.Client(t, tenantConfig)
	waitFor(t, "default ServiceAccount in tenant cm-metrics", func() bool {
		_, err := tenant.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil
	})
}

// freePort returns a loopback port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// httpsClient trusts any serving certificate (the port's is self-signed)
// and presents the client certificate of admin, if given.
func httpsClient(t *testing.T, admin *rest.Config) *http.Client {
	t.Helper()
	tlsConfig := &tls.Config{InsecureSkipVerify: true}
	if admin != nil {
		cert, err := tls.LoadX509KeyPair(admin.CertFile, admin.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		tlsConfig.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
}

// get returns the status and body of GET url, with token as a bearer
// token if not empty; 0 if the request failed.
func get(t *testing.T, c *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return ok(), nil
	}); err != nil {
		t.Fatalf("no %s within a minute", what)
	}
}

// serviceAccountToken makes service account name in the management
// plane's namespace metrics-test and returns a token of it.
func serviceAccountToken(t *testing.T, root kubernetes.Interface, name string) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "metrics-test"}}
	if _, err := root.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := root.CoreV1().ServiceAccounts(ns.Name).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := root.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a token of %s: %v", name, err)
	}
	return tr.Status.Token
}

// allowMetrics lets service account name get /metrics, as Prometheus is
// allowed to.
func allowMetrics(t *testing.T, root kubernetes.Interface, name string) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-test-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}
	if _, err := root.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-test-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "metrics-test", Name: name}},
	}
	if _, err := root.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
