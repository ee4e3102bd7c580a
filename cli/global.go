package cli

import (
	"errors"
	"io"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/cli/status"
	"github.com/kplex/kplex/client/kubeconfig"
	"github.com/kplex/kplex/client/tenants"
)

// Global holds the flags every command shares.
type Global struct {
	// Kubeconfig is the file contexts are read from and written to; empty
	// means $KUBECONFIG, else ~/.kube/config.
	Kubeconfig string
	// Quiet silences progress on ErrOut; data on Out is unaffected.
	Quiet bool
}

// AddFlags binds the shared flags.
func (g *Global) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&g.Kubeconfig, "kubeconfig", "", "kubeconfig file to read and write contexts in (default $KUBECONFIG, else ~/.kube/config)")
	fs.BoolVarP(&g.Quiet, "quiet", "q", false, "print no progress, only results")
}

// Chatter is where progress and hints go: ErrOut, unless --quiet.
func (g *Global) Chatter(s Streams) io.Writer {
	if g.Quiet {
		return io.Discard
	}
	return s.ErrOut
}

// Status returns a progress reporter on Chatter.
func (g *Global) Status(s Streams) *status.Status {
	return status.New(g.Chatter(s))
}

// RootConfig returns the client config of the kplex-root context (the
// management plane, admin credentials), read from --kubeconfig and, when
// that file has none, from the default kubeconfig: contexts may be
// written to a file of their own.
func (g *Global) RootConfig() (*rest.Config, error) {
	cfg, err := kubeconfig.RootConfig(g.Kubeconfig)
	if errors.Is(err, kubeconfig.ErrNotRunning) && g.Kubeconfig != "" {
		cfg, err = kubeconfig.RootConfig("")
	}
	return cfg, err
}

// Tenants returns a client of the kplex server of the kplex-root context
// (see RootConfig).
func (g *Global) Tenants() (*tenants.Client, error) {
	cfg, err := g.RootConfig()
	if err != nil {
		return nil, err
	}
	return tenants.New(cfg)
}
