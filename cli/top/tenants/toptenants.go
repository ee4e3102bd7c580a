// Package tenants is `kplex top tenants`: per tenant and pool, the pods
// bound there, the GPUs, CPU and memory they request, the tenant's GPU
// quota and what it borrows, and its pods waiting and why, as a table on
// Out or as JSON or YAML (package top's Tenant rows) for scripts.
package tenants

import (
	"github.com/spf13/cobra"

	"github.com/kplex/kplex/cli"
	"github.com/kplex/kplex/cli/top"
)

// NewCommand returns the top tenants command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	return top.NewCommand(g, streams, top.View[top.Tenant]{
		Use:      "tenants",
		Short:    "Show each tenant's use of each pool, its GPU quota and borrowing, and its pending pods by reason",
		Rows:     top.Tenants,
		Empty:    "No tenant has pods or a quota.",
		SortHelp: "order tenants by gpu or cpu used (most first), or by name",
	})
}
