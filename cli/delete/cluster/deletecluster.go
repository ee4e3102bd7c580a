// Package cluster is `kplex delete cluster NAME`: it deletes a tenant and
// all its data, waits until it is gone, and removes its context.
package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kplex/kplex/cli"
	"github.com/kplex/kplex/client/kubeconfig"
)

type flagpole struct {
	Wait time.Duration
}

// NewCommand returns the delete cluster command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "cluster NAME",
		Short: "Delete a cluster, every object in it, and its kplex-NAME context",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runE(cmd.Context(), g, streams, flags, args[0])
		},
	}
	cmd.Flags().DurationVar(&flags.Wait, "wait", time.Minute, "how long to wait until the cluster's data is gone; 0 does not wait")
	return cmd
}

func runE(ctx context.Context, g *cli.Global, streams cli.Streams, flags *flagpole, name string) error {
	client, err := g.Tenants()
	if err != nil {
		return err
	}
	st := g.Status(streams)
	defer st.End(false)
	st.Start(fmt.Sprintf("Deleting cluster %q", name))
	if err := client.Delete(ctx, name); err != nil {
		return err
	}
	if flags.Wait > 0 {
		st.Start(fmt.Sprintf("Waiting ≤ %s for cluster %q's data to be removed", flags.Wait, name))
		waitCtx, cancel := context.WithTimeout(ctx, flags.Wait)
		defer cancel()
		if err := client.WaitGone(waitCtx, name); err != nil {
			return fmt.Errorf("cluster %q still exists after %s: %w", name, flags.Wait, err)
		}
	}
	st.Start(fmt.Sprintf("Removing context %s", kubeconfig.ContextName(name)))
	if err := kubeconfig.Remove(g.Kubeconfig, name); err != nil {
		return err
	}
	st.End(true)
	fmt.Fprintf(streams.Out, "Cluster %q deleted\n", name)
	return nil
}
