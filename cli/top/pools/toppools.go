// Package pools is `kplex top pools`: per node pool, its nodes and what
// of its GPUs, CPU and memory the pods bound there request, as a table on
// Out or as JSON or YAML (package top's Pool rows) for scripts.
package pools

import (
	"github.com/spf13/cobra"

	"github.com/kplex/kplex/cli"
	"github.com/kplex/kplex/cli/top"
)

// NewCommand returns the top pools command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	return top.NewCommand(g, streams, top.View[top.Pool]{
		Use:      "pools",
		Short:    "Show each node pool's nodes and its GPUs, CPU and memory: requested, allocatable, unhealthy",
		Rows:     top.Pools,
		Empty:    "No nodes or node pools found.",
		SortHelp: "order pools by gpu or cpu requested (most first), or by name",
	})
}
