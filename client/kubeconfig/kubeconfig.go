package kubeconfig

import (
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kplex/kplex/tenant"
)

// ContextName is the kubeconfig context (and cluster and user) of a tenant;
// root's is "kplex-root".
func ContextName(tenantName string) string { return "kplex-" + tenantName }

// Entry is what one context needs.
type Entry struct {
	Tenant string
	// Server is the server's base URL; the tenant's path is added to it.
	Server string
	CAData []byte
	// Token, or client certificate and key, authenticate the user.
	Token             string
	CertData, KeyData []byte
}

// pathOptions resolves the file to write: explicit path, else $KUBECONFIG, else ~/.kube/config.
func pathOptions(path string) *clientcmd.PathOptions {
	opts := clientcmd.NewDefaultPathOptions()
	if path != "" {
		opts.LoadingRules.ExplicitPath = path
		opts.LoadingRules.Precedence = []string{path}
		opts.GlobalFile = path
		opts.EnvVar = ""
	}
	return opts
}

// Merge adds or replaces e's context in the kubeconfig at path and, if
// setCurrent, makes it the current context.
func Merge(path string, e Entry, setCurrent bool) error {
	opts := pathOptions(path)
	cfg, err := opts.GetStartingConfig()
	if err != nil {
		return fmt.Errorf("reading kubeconfig: %w", err)
	}
	name := ContextName(e.Tenant)
	cluster := clientcmdapi.NewCluster()
	cluster.Server = e.Server + tenant.Path(e.Tenant)
	cluster.CertificateAuthorityData = e.CAData
	user := clientcmdapi.NewAuthInfo()
	user.Token = e.Token
	user.ClientCertificateData = e.CertData
	user.ClientKeyData = e.KeyData
	ctx := clientcmdapi.NewContext()
	ctx.Cluster, ctx.AuthInfo = name, name
	cfg.Clusters[name] = cluster
	cfg.AuthInfos[name] = user
	cfg.Contexts[name] = ctx
	if setCurrent {
		cfg.CurrentContext = name
	}
	if err := clientcmd.ModifyConfig(opts, *cfg, false); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// Remove deletes tenant's context, cluster and user; a missing one is fine.
func Remove(path, tenantName string) error {
	opts := pathOptions(path)
	cfg, err := opts.GetStartingConfig()
	if err != nil {
		return fmt.Errorf("reading kubeconfig: %w", err)
	}
	name := ContextName(tenantName)
	if _, ok := cfg.Contexts[name]; !ok {
		return nil
	}
	delete(cfg.Contexts, name)
	delete(cfg.Clusters, name)
	delete(cfg.AuthInfos, name)
	if cfg.CurrentContext == name {
		cfg.CurrentContext = ""
	}
	if err := clientcmd.ModifyConfig(opts, *cfg, false); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// ErrNotRunning is returned when the kubeconfig has no kplex-root context.
var ErrNotRunning = fmt.Errorf("no %s context: is kplex running? start it with `kplex up`", ContextName(tenant.Root))

// RootConfig returns the client config of the kplex-root context.
func RootConfig(path string) (*rest.Config, error) {
	opts := pathOptions(path)
	cfg, err := opts.GetStartingConfig()
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig: %w", err)
	}
	name := ContextName(tenant.Root)
	if _, ok := cfg.Contexts[name]; !ok {
		return nil, ErrNotRunning
	}
	return clientcmd.NewNonInteractiveClientConfig(*cfg, name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
}

// ReadFile is os.ReadFile with the file named in the error.
func ReadFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

// WriteFile writes a kubeconfig at path whose one, current context is
// cfg's: its server, CA and credentials, as files or data. It is how a
// component that reads a --kubeconfig file (kube-scheduler) is handed a
// rest.Config.
func WriteFile(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kplex"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthority: cfg.CAFile, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["kplex"] = &clientcmdapi.AuthInfo{
		ClientCertificate: cfg.CertFile, ClientKey: cfg.KeyFile, ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData,
		Token: cfg.BearerToken,
	}
	kc.Contexts["kplex"] = &clientcmdapi.Context{Cluster: "kplex", AuthInfo: "kplex"}
	kc.CurrentContext = "kplex"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}
