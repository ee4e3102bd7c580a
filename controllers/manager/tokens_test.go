package manager_test

import (
	"context"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/controllers/manager"
	"github.com/kplex/kplex/controllers/serviceaccount"
)

func tokenSecret(sa string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: sa + "-token", Annotations: map[string]string{corev1.ServiceAccountNameKey: sa}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}
}

// whoami asks the server at host who token is; "" when it is refused.
func whoami(t *testing.T, host, caFile, token string) string {
	t.Helper()
	c, err := kubernetes.NewForConfig(&rest.Config{Host: host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: caFile}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if apierrors.IsUnauthorized(err) {
		return ""
	}
	if err != nil {
		t.Fatalf("self subject review at %s: %v", host, err)
	}
	return r.Status.UserInfo.Username
}

// TestIntegrationLegacyServiceAccountTokensPerTenant: a Secret of type
// service-account-token is filled with a token that authenticates as its
// ServiceAccount on its own tenant's path only; tenant B's same-named one
// gets its own; deleting the ServiceAccount deletes its Secret, in that
// tenant only.
func TestIntegrationLegacyServiceAccountTokensPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts an apiserver")
	}
	e := servertest.Start(t, "")
	key, err := server.PKIFiles(e.DataDir).ServiceAccountSigner()
	if err != nil {
		t.Fatal(err)
	}
	m := runManagerWith(t, e, manager.Options{ServiceAccountKey: key})
	aCfg, bCfg := e.CreateTenant(t, "tok-a"), e.CreateTenant(t, "tok-b")
	a, b := servertest.Client(t, aCfg), servertest.Client(t, bCfg)
	ctx := context.Background()
	tokens := map[string]string{}
	for name, c := range map[string]kubernetes.Interface{"tok-a": a, "tok-b": b} {
		if _, err := c.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "bot"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CoreV1().Secrets("default").Create(ctx, tokenSecret("bot"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, name+"'s token Secret filled", func(ctx context.Context) (bool, error) {
			s, err := c.CoreV1().Secrets("default").Get(ctx, "bot-token", metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			tokens[name] = string(s.Data[corev1.ServiceAccountTokenKey])
			return tokens[name] != "" && string(s.Data[corev1.ServiceAccountNamespaceKey]) == "default" && len(s.Data[corev1.ServiceAccountRootCAKey]) > 0, nil
		})
	}
	if tokens["tok-a"] == tokens["tok-b"] {
		t.Fatal("both tenants' bot-token Secrets hold the same token")
	}
	const bot = "system:serviceaccount:default:bot"
	if got := whoami(t, aCfg.Host, e.Admin.CAFile, tokens["tok-a"]); got != bot {
		t.Errorf("a's token on a's path is %q, want %s", got, bot)
	}
	if got := whoami(t, bCfg.Host, e.Admin.CAFile, tokens["tok-a"]); got != "" {
		t.Errorf("a's token on b's path authenticated as %q", got)
	}
	if got := whoami(t, e.Admin.Host+"/clusters/root", e.Admin.CAFile, tokens["tok-a"]); got != "" {
		t.Errorf("a's token on the management plane authenticated as %q", got)
	}
	// Without a prefix (a pod's in-cluster client) it is a's, never root's.
	if got := whoami(t, e.Admin.Host, e.Admin.CAFile, tokens["tok-a"]); got != bot {
		t.Errorf("a's token without a prefix is %q, want a's %s", got, bot)
	}
	if got := whoami(t, bCfg.Host, e.Admin.CAFile, tokens["tok-b"]); got != bot {
		t.Errorf("b's token on b's path is %q, want %s", got, bot)
	}

	// The ServiceAccount goes: its Secret goes, and the token with it.
	if err := a.CoreV1().ServiceAccounts("default").Delete(ctx, "bot", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a's bot-token deleted", func(ctx context.Context) (bool, error) {
		_, err := a.CoreV1().Secrets("default").Get(ctx, "bot-token", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	eventually(t, 30*time.Second, "a's token refused", func(context.Context) (bool, error) {
		return whoami(t, aCfg.Host, e.Admin.CAFile, tokens["tok-a"]) == "", nil
	})
	if _, err := b.CoreV1().Secrets("default").Get(ctx, "bot-token", metav1.GetOptions{}); err != nil {
		t.Errorf("b's bot-token after a's ServiceAccount was deleted: %v", err)
	}
	if got := whoami(t, bCfg.Host, e.Admin.CAFile, tokens["tok-b"]); got != bot {
		t.Errorf("b's token after a's ServiceAccount was deleted: %q", got)
	}
	// Idle again: no token controller awake in the other tenant.
	eventually(t, 30*time.Second, "token controllers asleep", func(context.Context) (bool, error) {
		return len(m.AwakeTenants(serviceaccount.TokensName)) == 0, nil
	})
}
