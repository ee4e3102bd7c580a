package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/apiserver/server/servertest"
	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

// nodeConfig returns root's config authenticated as node name: a client
// certificate of the server's client CA with the subject TLS bootstrap
// gives a node (system:node:<name>, O system:nodes).
func nodeConfig(t *testing.T, e *servertest.Env, name string) *rest.Config {
	t.Helper()
	files := server.PKIFiles(e.DataDir)
	caPEM, err := os.ReadFile(files.CACert())
	if err != nil {
		t.Fatal(err)
	}
	cas, err := certutil.ParseCertsPEM(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := keyutil.PrivateKeyFromFile(files.CAKey())
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}},
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, cas[0], &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(e.Admin)
	cfg.CertData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cfg.KeyData = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return cfg
}

func inTenant(cfg *rest.Config, name string) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Host += tenant.Path(name)
	return out
}

// TestIntegrationNodeIdentityReadsOnlyWhatItsPodsNeed: a node's own
// credential reads, in any tenant, only the pods bound to it and the
// Secrets they reference; it writes only its own Node and those pods'
// status; another tenant's or node's objects are 403, and a tenant's admin
// cannot grant it more.
func TestIntegrationNodeIdentityReadsOnlyWhatItsPodsNeed(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	root := servertest.Client(t, rootHost(e))
	// The nodes are in a pool of the two tenants', so that other tests on
	// the shared server do not see them.
	e.CreateScheduling(t, `{apiVersion: scheduling.kplex.io/v1alpha1, kind: NodePool, metadata: {name: ident}, spec: {mode: shared, tenants: [ident-a, ident-b]}}`)
	for _, n := range []string{"ident-1", "ident-2"} {
		if _, err := root.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{schedulingv1alpha1.PoolLabel: "ident"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = root.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{}) })
	}
	clients := map[string]kubernetes.Interface{
		"ident-a": servertest.Client(t, e.CreateTenant(t, "ident-a")),
		"ident-b": servertest.Client(t, e.CreateTenant(t, "ident-b")),
	}
	for tenantName, node := range map[string]string{"ident-a": "ident-1", "ident-b": "ident-2"} {
		c := clients[tenantName]
		if _, err := c.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unused"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := pod("web")
		p.Spec.NodeName = node
		p.Spec.AutomountServiceAccountToken = ptrTo(false)
		p.Spec.Volumes = []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}}}
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", Value: "hunter2-" + tenantName}}
		if _, err := c.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	nodeCfg := nodeConfig(t, e, "ident-1")
	asNode := servertest.Client(t, nodeCfg)
	inA, inB := servertest.Client(t, inTenant(nodeCfg, "ident-a")), servertest.Client(t, inTenant(nodeCfg, "ident-b"))

	eventually(t, "node ident-1 reads the Secret its pod in ident-a mounts", func() bool {
		_, err := inA.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
		return err == nil
	})
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("node ident-1 %s: %v, want 403 Forbidden", what, err)
		}
	}
	_, err := inB.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
	forbidden("reading the Secret of ident-b's pod on another node", err)
	_, err = inA.CoreV1().Secrets("default").Get(ctx, "unused", metav1.GetOptions{})
	forbidden("reading a Secret no pod of its uses", err)
	_, err = inA.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	forbidden("listing a tenant's Secrets", err)
	_, err = inB.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	forbidden("reading another node's pod", err)
	if _, err := inA.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Errorf("node ident-1 reading its own pod: %v", err)
	}
	status := []byte(`{"status":{"phase":"Running"}}`)
	if _, err := inA.CoreV1().Pods("default").Patch(ctx, "web", types.MergePatchType, status, metav1.PatchOptions{}, "status"); err != nil {
		t.Errorf("node ident-1 writing its pod's status: %v", err)
	}
	_, err = inB.CoreV1().Pods("default").Patch(ctx, "web", types.MergePatchType, status, metav1.PatchOptions{}, "status")
	forbidden("writing another node's pod's status", err)
	_, err = inA.CoreV1().Pods("default").Create(ctx, pod("planted"), metav1.CreateOptions{})
	forbidden("creating a pod", err)

	// Its own Node yes, another's no, and not its own pool.
	label := []byte(`{"metadata":{"labels":{"touched":"yes"}}}`)
	if _, err := asNode.CoreV1().Nodes().Patch(ctx, "ident-1", types.MergePatchType, label, metav1.PatchOptions{}); err != nil {
		t.Errorf("node ident-1 labelling its own Node: %v", err)
	}
	_, err = asNode.CoreV1().Nodes().Patch(ctx, "ident-2", types.MergePatchType, label, metav1.PatchOptions{})
	forbidden("patching another node", err)
	_, err = asNode.CoreV1().Nodes().Patch(ctx, "ident-2", types.MergePatchType, []byte(`{"status":{"capacity":{"pods":"0"}}}`), metav1.PatchOptions{}, "status")
	forbidden("patching another node's status", err)
	_, err = asNode.CoreV1().Nodes().Patch(ctx, "ident-1", types.MergePatchType, []byte(`{"metadata":{"labels":{"`+schedulingv1alpha1.PoolLabel+`":"tenant-ident-b"}}}`), metav1.PatchOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "its pool is the operator") {
		t.Errorf("node ident-1 moving itself to another pool: %v, want a refusal", err)
	}
	_, err = asNode.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	forbidden("listing root's Secrets", err)

	// Across tenants: the data plane's reads, nothing else.
	// Another node's pods are a projection (addresses, labels, ports; no
	// image, environment or volumes); its own are whole when it selects
	// them, as a kubelet does.
	cross := servertest.Client(t, crosstenant.Config(nodeCfg))
	all, err := cross.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("node ident-1 listing pods across tenants: %v", err)
	}
	seen := 0
	for _, p := range all.Items {
		if p.Name != "web" || !strings.HasPrefix(crosstenant.TenantOf(&p), "ident-") {
			continue
		}
		seen++
		if c := p.Spec.Containers[0]; c.Image != "" || len(c.Env) != 0 || len(p.Spec.Volumes) != 0 || c.Name == "" {
			t.Errorf("node ident-1 listing across tenants read %s's pod beyond its projection: %+v", crosstenant.TenantOf(&p), p.Spec)
		}
	}
	if seen != 2 {
		t.Errorf("node ident-1 listing across tenants saw %d of the two tenants' pods", seen)
	}
	own := metav1.ListOptions{FieldSelector: "spec.nodeName=ident-1"}
	mine, err := cross.CoreV1().Pods("").List(ctx, own)
	if err != nil || len(mine.Items) != 1 || crosstenant.TenantOf(&mine.Items[0]) != "ident-a" ||
		len(mine.Items[0].Spec.Containers[0].Env) != 1 || len(mine.Items[0].Spec.Volumes) != 1 {
		t.Errorf("node ident-1 listing its own pods whole: %v, %+v", err, mine)
	}
	w, err := cross.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{ResourceVersion: all.ResourceVersion, FieldSelector: "metadata.name=web"})
	if err != nil {
		t.Fatalf("node ident-1 watching pods across tenants: %v", err)
	}
	if _, err := clients["ident-b"].CoreV1().Pods("default").Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"labels":{"seen":"yes"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		p, ok := ev.Object.(*corev1.Pod)
		if !ok || p.Labels["seen"] != "yes" || p.Spec.Containers[0].Image != "" || len(p.Spec.Containers[0].Env) != 0 {
			t.Errorf("node ident-1 watching across tenants: %s %+v, want ident-b's relabelled pod, projected", ev.Type, ev.Object)
		}
	case <-time.After(wait.ForeverTestTimeout):
		t.Error("node ident-1's watch across tenants heard nothing of ident-b's relabelled pod")
	}
	w.Stop()
	_, err = inA.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	forbidden("listing a tenant's pods whole without selecting its own", err)
	if _, err := inA.CoreV1().Pods("").List(ctx, own); err != nil {
		t.Errorf("node ident-1 listing its own pods in ident-a: %v", err)
	}
	_, err = cross.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	forbidden("listing Secrets across tenants", err)

	// A tenant's admin binding the node to cluster-admin changes nothing.
	if _, err := clients["ident-b"].RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "node-is-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "system:node:ident-1"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	_, err = inB.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
	forbidden("reading ident-b's Secret after ident-b's admin bound it to cluster-admin", err)
}
