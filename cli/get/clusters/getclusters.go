// Package clusters is `kplex get clusters`: the tenants as a table on Out,
// or as JSON, YAML or names for scripts.
package clusters

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	tenancyv1alpha1 "github.com/kplex/kplex/apis/tenancy/v1alpha1"
	"github.com/kplex/kplex/cli"
	"github.com/kplex/kplex/podsecurity"
)

type flagpole struct {
	Output string
}

// NewCommand returns the get clusters command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "clusters",
		Short: "List clusters (tenants)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := g.Tenants()
			if err != nil {
				return err
			}
			list, err := client.List(cmd.Context())
			if err != nil {
				return err
			}
			if len(list) == 0 && flags.Output == "" {
				fmt.Fprintln(g.Chatter(streams), "No kplex clusters found.")
				return nil
			}
			return print(streams, flags.Output, list)
		},
	}
	cmd.Flags().StringVarP(&flags.Output, "output", "o", "", "output format: json, yaml or name (default: a table)")
	return cmd
}

func print(streams cli.Streams, format string, list []tenancyv1alpha1.Tenant) error {
	switch format {
	case "":
		w := tabwriter.NewWriter(streams.Out, 0, 4, 3, ' ', 0)
		fmt.Fprintln(w, "NAME\tPHASE\tPOD-SECURITY\tPATH\tAGE")
		for _, t := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Status.Phase, podsecurity.TenantLevel(t.Spec.PodSecurity), t.Status.Path,
				duration.HumanDuration(time.Since(t.CreationTimestamp.Time)))
		}
		return w.Flush()
	case "name":
		for _, t := range list {
			fmt.Fprintln(streams.Out, t.Name)
		}
		return nil
	case "json":
		enc := json.NewEncoder(streams.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	case "yaml":
		b, err := yaml.Marshal(list)
		if err != nil {
			return err
		}
		_, err = streams.Out.Write(b)
		return err
	}
	return fmt.Errorf("--output %q is not supported: use json, yaml or name", format)
}
