// Package tenants is `kplex top tenants`: per tenant and pool, the pods
// bound there, the GPUs, CPU and memory they request, the tenant's GPU
// quota and what it borrows, and its pods waiting and why, as a table on
// Out or as JSON or YAML (package top's Tenant rows) for scripts.
package tenants

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kplex/kplex/capacity"
	"github.com/kplex/kplex/cli"
	"github.com/kplex/kplex/cli/top"
)

type flagpole struct {
	Output string
	SortBy string
}

// NewCommand returns the top tenants command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "tenants",
		Short: "Show each tenant's use of each pool, its GPU quota and borrowing, and its pending pods by reason",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			by, err := top.ParseSort(flags.SortBy)
			if err != nil {
				return err
			}
			if err := top.ValidOutput(flags.Output); err != nil {
				return err
			}
			root, err := g.RootConfig()
			if err != nil {
				return err
			}
			report, err := capacity.Load(cmd.Context(), root)
			if err != nil {
				return err
			}
			rows := top.Tenants(report, by)
			if len(rows) == 0 && flags.Output == "" {
				fmt.Fprintln(g.Chatter(streams), "No tenant has pods or a quota.")
				return nil
			}
			return top.Write(streams.Out, flags.Output, rows)
		},
	}
	cmd.Flags().StringVarP(&flags.Output, "output", "o", "", "output format: json or yaml (default: a table)")
	cmd.Flags().StringVar(&flags.SortBy, "sort-by", "name", "order tenants by gpu or cpu used (most first), or by name")
	return cmd
}
