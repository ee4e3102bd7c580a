package kubeconfig

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestMergeKeepsOtherContextsAndRemoveDropsOnlyItsOwn(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config")
	existing := clientcmdapi.NewConfig()
	existing.Clusters["prod"] = &clientcmdapi.Cluster{Server: "https://prod:6443"}
	existing.AuthInfos["prod"] = &clientcmdapi.AuthInfo{Token: "prod-token"}
	existing.Contexts["prod"] = &clientcmdapi.Context{Cluster: "prod", AuthInfo: "prod"}
	existing.CurrentContext = "prod"
	if err := clientcmd.WriteToFile(*existing, path); err != nil {
		t.Fatal(err)
	}

	if err := Merge(path, Entry{Tenant: "demo", Server: "https://127.0.0.1:6443", CAData: []byte("ca"), Token: "t1"}, false); err != nil {
		t.Fatal(err)
	}
	if err := Merge(path, Entry{Tenant: "root", Server: "https://127.0.0.1:6443", CertData: []byte("c"), KeyData: []byte("k")}, false); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "prod" || cfg.Contexts["prod"] == nil {
		t.Errorf("merge disturbed the user's context: current %q", cfg.CurrentContext)
	}
	if got := cfg.Clusters["kplex-demo"].Server; got != "https://127.0.0.1:6443/clusters/demo" {
		t.Errorf("tenant server = %q", got)
	}
	if got := cfg.Clusters["kplex-root"].Server; got != "https://127.0.0.1:6443" {
		t.Errorf("root server = %q", got)
	}
	if cfg.AuthInfos["kplex-demo"].Token != "t1" {
		t.Errorf("tenant token not written")
	}

	// Re-merging replaces, and --set-current switches.
	if err := Merge(path, Entry{Tenant: "demo", Server: "https://127.0.0.1:7443", Token: "t2"}, true); err != nil {
		t.Fatal(err)
	}
	cfg, _ = clientcmd.LoadFromFile(path)
	if cfg.CurrentContext != "kplex-demo" || cfg.AuthInfos["kplex-demo"].Token != "t2" {
		t.Errorf("after re-merge: current %q token %q", cfg.CurrentContext, cfg.AuthInfos["kplex-demo"].Token)
	}

	if err := Remove(path, "demo"); err != nil {
		t.Fatal(err)
	}
	cfg, _ = clientcmd.LoadFromFile(path)
	if cfg.Contexts["kplex-demo"] != nil || cfg.Clusters["kplex-demo"] != nil || cfg.AuthInfos["kplex-demo"] != nil {
		t.Error("remove left parts of kplex-demo")
	}
	if cfg.Contexts["prod"] == nil || cfg.Contexts["kplex-root"] == nil {
		t.Error("remove took other contexts")
	}
	if err := Remove(path, "never-there"); err != nil {
		t.Errorf("removing a missing context: %v", err)
	}
}

func TestRootConfigWithoutKplexIsErrNotRunning(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RootConfig(path); err != ErrNotRunning {
		t.Errorf("RootConfig = %v, want ErrNotRunning", err)
	}
}
