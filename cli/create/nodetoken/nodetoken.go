// Package nodetoken is `kplex create node-token`: a bootstrap token with
// which node agents join the management plane, written as the bootstrap
// kubeconfig kplex-nodeagent --bootstrap-kubeconfig reads.
package nodetoken

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/kplex/kplex/cli"
	"github.com/kplex/kplex/client/nodetokens"
)

type flagpole struct {
	TTL         time.Duration
	Output      string
	Description string
}

// NewCommand returns the create node-token command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "node-token",
		Short: "Create a bootstrap token for node agents to join with, and write their bootstrap kubeconfig",
		Long: `Creates a bootstrap token in the management plane. A node agent started with
--bootstrap-kubeconfig pointing at the written file asks, with it, for a client
certificate of its own (system:node:<name>), which the controller manager
approves and signs; the token can do nothing else.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runE(cmd.Context(), g, streams, flags)
		},
	}
	cmd.Flags().DurationVar(&flags.TTL, "ttl", nodetokens.DefaultTTL, "how long the token joins nodes; 0 never expires")
	cmd.Flags().StringVarP(&flags.Output, "output", "o", "bootstrap.kubeconfig", "where to write the bootstrap kubeconfig")
	cmd.Flags().StringVar(&flags.Description, "description", "kplex node agents", "what the token is for, kept with it")
	return cmd
}

func runE(ctx context.Context, g *cli.Global, streams cli.Streams, flags *flagpole) error {
	root, err := g.RootConfig()
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(root)
	if err != nil {
		return err
	}
	token, err := nodetokens.Create(ctx, client, flags.TTL, flags.Description)
	if err != nil {
		return err
	}
	if err := nodetokens.WriteKubeconfig(flags.Output, root, token); err != nil {
		return err
	}
	fmt.Fprintf(streams.Out, "Wrote %s; start node agents with: kplex-nodeagent --bootstrap-kubeconfig=%s --kubeconfig=/var/lib/kplex-nodeagent/kubeconfig\n", flags.Output, flags.Output)
	return nil
}
