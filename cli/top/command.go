package top

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kplex/kplex/capacity"
	"github.com/kplex/kplex/cli"
)

// View is what one `kplex top` command shows: its rows of the capacity
// report.
type View[R any] struct {
	Use, Short string
	// Rows are the report's rows in the order asked for.
	Rows func(*capacity.Report, Sort) []R
	// Empty is said on ErrOut when there is no row.
	Empty string
	// SortHelp describes --sort-by.
	SortHelp string
}

type flagpole struct {
	Output string
	SortBy string
}

// NewCommand returns the command that shows v: a table on Out, or JSON or
// YAML for scripts; the report is read from the management plane.
func NewCommand[R any](g *cli.Global, streams cli.Streams, v View[R]) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   v.Use,
		Short: v.Short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			by, err := ParseSort(flags.SortBy)
			if err != nil {
				return err
			}
			if err := ValidOutput(flags.Output); err != nil {
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
			rows := v.Rows(report, by)
			if len(rows) == 0 && flags.Output == "" {
				fmt.Fprintln(g.Chatter(streams), v.Empty)
				return nil
			}
			return Write(streams.Out, flags.Output, rows)
		},
	}
	cmd.Flags().StringVarP(&flags.Output, "output", "o", "", "output format: json or yaml (default: a table)")
	cmd.Flags().StringVar(&flags.SortBy, "sort-by", "name", v.SortHelp)
	return cmd
}
