// Package getcredentials is `kplex get-credentials NAME`: it writes the
// kplex-NAME context for an existing cluster into the kubeconfig.
package getcredentials

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/cli"
	"github.com/kplex/kplex/client/kubeconfig"
	"github.com/kplex/kplex/client/tenants"
)

type flagpole struct {
	SetCurrent bool
}

// NewCommand returns the get-credentials command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "get-credentials NAME",
		Short: "Write the kplex-NAME context of a cluster into the kubeconfig",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := g.Tenants()
			if err != nil {
				return err
			}
			if err := Write(cmd.Context(), client, g.Kubeconfig, args[0], flags.SetCurrent); err != nil {
				return err
			}
			fmt.Fprintf(g.Chatter(streams), "Context %q written; try: kubectl --context %s get ns\n",
				kubeconfig.ContextName(args[0]), kubeconfig.ContextName(args[0]))
			return nil
		},
	}
	cmd.Flags().BoolVar(&flags.SetCurrent, "set-current", false, "also make the context the current one")
	return cmd
}

// Write fetches cluster name's credentials and merges its context into the
// kubeconfig at path.
func Write(ctx context.Context, client *tenants.Client, path, name string, setCurrent bool) error {
	creds, err := client.Credentials(ctx, name)
	if err != nil {
		return err
	}
	root := client.Config()
	ca, err := caData(root)
	if err != nil {
		return err
	}
	return kubeconfig.Merge(path, kubeconfig.Entry{
		Tenant: name, Server: root.Host, CAData: ca, Token: creds.Token,
	}, setCurrent)
}

func caData(cfg *rest.Config) ([]byte, error) {
	if len(cfg.CAData) > 0 {
		return cfg.CAData, nil
	}
	if cfg.CAFile != "" {
		return kubeconfig.ReadFile(cfg.CAFile)
	}
	return nil, nil
}
