// Package cluster is `kplex create cluster NAME`: it creates a tenant, waits
// until it serves, and writes its kplex-NAME context.
package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	tenancyv1alpha1 "github.com/kplex/kplex/apis/tenancy/v1alpha1"
	"github.com/kplex/kplex/cli"
	"github.com/kplex/kplex/cli/getcredentials"
	"github.com/kplex/kplex/client/kubeconfig"
	"github.com/kplex/kplex/podsecurity"
)

type flagpole struct {
	Wait        time.Duration
	SetCurrent  bool
	PodSecurity string
}

// NewCommand returns the create cluster command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "cluster NAME",
		Short: "Create an isolated Kubernetes control plane (a tenant) and write its kplex-NAME context",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runE(cmd.Context(), g, streams, flags, args[0])
		},
	}
	cmd.Flags().DurationVar(&flags.Wait, "wait", time.Minute, "how long to wait for the cluster to serve; 0 returns as soon as it is created")
	cmd.Flags().BoolVar(&flags.SetCurrent, "set-current", false, "make kplex-NAME the current context")
	cmd.Flags().StringVar(&flags.PodSecurity, "pod-security", podsecurity.DefaultTenantLevel,
		"the Pod Security Standard every pod of the cluster must meet (restricted, baseline or privileged), whatever its namespaces' labels say; only the management plane can change it")
	return cmd
}

func runE(ctx context.Context, g *cli.Global, streams cli.Streams, flags *flagpole, name string) error {
	client, err := g.Tenants()
	if err != nil {
		return err
	}
	st := g.Status(streams)
	defer st.End(false)
	start := time.Now()
	st.Start(fmt.Sprintf("Creating cluster %q", name))
	if _, err := client.CreateWithSpec(ctx, name, tenancyv1alpha1.TenantSpec{PodSecurity: flags.PodSecurity}); err != nil {
		return err
	}
	if flags.Wait > 0 {
		st.Start(fmt.Sprintf("Waiting ≤ %s for cluster %q to serve", flags.Wait, name))
		waitCtx, cancel := context.WithTimeout(ctx, flags.Wait)
		defer cancel()
		if err := client.WaitServing(waitCtx, name); err != nil {
			return fmt.Errorf("cluster %q did not serve within %s: %w", name, flags.Wait, err)
		}
	}
	took := time.Since(start)
	st.Start(fmt.Sprintf("Writing context %s", kubeconfig.ContextName(name)))
	if err := getcredentials.Write(ctx, client, g.Kubeconfig, name, flags.SetCurrent); err != nil {
		return err
	}
	st.End(true)
	fmt.Fprintf(streams.Out, "Cluster %q created in %s; use it with: kubectl --context %s get ns\n",
		name, took.Round(100*time.Microsecond), kubeconfig.ContextName(name))
	return nil
}
