package app

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	cliflag "k8s.io/component-base/cli/flag"

	"github.com/kplex/kplex/apiserver/server/servertest"
)

func TestNoFlagsMeansNewOptions(t *testing.T) {
	t.Parallel()
	o := NewOptions()
	var fss cliflag.NamedFlagSets
	o.AddFlags(&fss)
	for _, fs := range fss.FlagSets {
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
	}
	if want := NewOptions(); !reflect.DeepEqual(o.LeaderElection, want.LeaderElection) || o.QuietPeriod != want.QuietPeriod {
		t.Errorf("parsing no flags gave %+v, want %+v", o, want)
	}
	if !o.LeaderElection.LeaderElect {
		t.Error("leader election is off by default")
	}
	if o.Serving.SecureServing.BindPort != 0 {
		t.Errorf("--secure-port defaults to %d, want 0 (off)", o.Serving.SecureServing.BindPort)
	}
}

// The plain-HTTP --metrics-bind-address is gone: given, it fails the
// start saying what replaces it, rather than an unknown flag.
func TestMetricsBindAddressRemoved(t *testing.T) {
	t.Parallel()
	o := NewOptions()
	var fss cliflag.NamedFlagSets
	o.AddFlags(&fss)
	if err := fss.FlagSet("generic").Parse([]string{"--metrics-bind-address=127.0.0.1:8080"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--metrics-bind-address was removed") || !strings.Contains(err.Error(), "--secure-port") {
		t.Errorf("--metrics-bind-address: %v, want an error naming --secure-port", err)
	}
}

func TestIntegrationBinaryLeadsAndServesTenants(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	tenantClient := servertest.Client(t, e.CreateTenant(t, "cm-bin"))
	run(t, "--kubeconfig", writeKubeconfig(t, e), "--quiet-period=2s")

	root := servertest.Client(t, e.Admin)
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		lease, err := root.CoordinationV1().Leases("kube-system").Get(ctx, "kplex-controller-manager", metav1.GetOptions{})
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "", nil
	}); err != nil {
		t.Fatal("no leader on the Lease kube-system/kplex-controller-manager of root")
	}
	if _, err := tenantClient.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "work"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := tenantClient.CoreV1().ServiceAccounts("work").Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		_, err = tenantClient.CoreV1().ConfigMaps("work").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal("the leader did not give namespace work its default ServiceAccount and kube-root-ca.crt")
	}
}

// writeKubeconfig writes a kubeconfig of e's management plane, as its
// admin, and returns its path.
func writeKubeconfig(t *testing.T, e *servertest.Env) string {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["root"] = &clientcmdapi.Cluster{Server: e.Admin.Host, CertificateAuthority: e.Admin.CAFile}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: e.Admin.CertFile, ClientKey: e.Admin.KeyFile}
	cfg.Contexts["kplex-root"] = &clientcmdapi.Context{Cluster: "root", AuthInfo: "admin"}
	cfg.CurrentContext = "kplex-root"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

// run runs kplex-controller-manager with args until the test ends, when
// it must stop without error.
func run(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, args) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("kplex-controller-manager: %v", err)
		}
	})
}
