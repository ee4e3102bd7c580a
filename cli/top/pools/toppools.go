// Package pools is `kplex top pools`: per node pool, its nodes and what
// of its GPUs, CPU and memory the pods bound there request, as a table on
// Out or as JSON or YAML (package top's Pool rows) for scripts.
package pools

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

// NewCommand returns the top pools command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "pools",
		Short: "Show each node pool's nodes and its GPUs, CPU and memory: requested, allocatable, unhealthy",
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
			rows := top.Pools(report, by)
			if len(rows) == 0 && flags.Output == "" {
				fmt.Fprintln(g.Chatter(streams), "No nodes or node pools found.")
				return nil
			}
			return top.Write(streams.Out, flags.Output, rows)
		},
	}
	cmd.Flags().StringVarP(&flags.Output, "output", "o", "", "output format: json or yaml (default: a table)")
	cmd.Flags().StringVar(&flags.SortBy, "sort-by", "name", "order pools by gpu or cpu requested (most first), or by name")
	return cmd
}
