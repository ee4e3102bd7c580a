// Package dashboard is `kplex dashboard`: a web page, built into the
// binary, of the fleet's capacity for people without Grafana: per pool its
// GPUs allocatable and requested, per tenant and pool what it uses against
// its quota, and its pods waiting, refreshed every few seconds.
//
// It reads the management plane with the admin credentials of the
// kubeconfig's kplex-root context, so it shows every tenant: it listens on
// loopback only (127.0.0.1:8765 by default) and answers only to a loopback
// Host. --allow-remote lets it listen elsewhere. Every request needs a
// token (KPLEX_DASHBOARD_TOKEN, else a random one), loopback too: any
// process of the host reaches loopback, a tenant's hostNetwork pod among
// them. The URL it prints carries the token; the browser trades it for an
// HttpOnly, SameSite=Strict cookie, scripts send it as a bearer token.
//
// The page fetches /api/report (Report: package top's rows) and renders
// every number in an element with data-field (and data-pool and/or
// data-tenant naming the row) that holds the value as its only text; CPU
// and memory show units, with the exact number in data-value.
package dashboard

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/capacity"
	"github.com/kplex/kplex/cli"
)

// TokenEnv names the variable that sets the token (else a random one).
const TokenEnv = "KPLEX_DASHBOARD_TOKEN"

type flagpole struct {
	Address     string
	Refresh     time.Duration
	AllowRemote bool
}

// NewCommand returns the dashboard command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a web page of pools' and tenants' GPUs, quotas and pending pods (admin view; Ctrl-C stops it)",
		Long: `Serve a web page of the fleet's capacity: per pool its GPUs allocatable and requested,
per tenant and pool what it uses against its quota, and its pods waiting, refreshed every
--refresh. It reads with the admin credentials of the kplex-root context and so listens on
loopback only; --allow-remote serves other addresses. Every request needs a token
($` + TokenEnv + `, else a random one), on loopback too: other processes of this host reach it.

The URL printed on stdout carries the token: open it, and the browser keeps the token in a
cookie. /api/report serves the same figures as JSON to "Authorization: Bearer <token>".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := Options{Address: flags.Address, Refresh: flags.Refresh, AllowRemote: flags.AllowRemote}
			var err error
			if opts.Token, err = tokenFromEnv(); err != nil {
				return err
			}
			var root *rest.Config
			opts.Load = func(ctx context.Context) (*capacity.Report, error) { return capacity.Load(ctx, root) }
			if err := opts.Validate(); err != nil {
				return err
			}
			if root, err = g.RootConfig(); err != nil {
				return err
			}
			return Run(cmd.Context(), opts, streams, g)
		},
	}
	cmd.Flags().StringVar(&flags.Address, "address", DefaultAddress, "host:port to serve on; port 0 picks a free one (a loopback host unless --allow-remote)")
	cmd.Flags().DurationVar(&flags.Refresh, "refresh", DefaultRefresh, "how often the page reloads the figures")
	cmd.Flags().BoolVar(&flags.AllowRemote, "allow-remote", false, "serve on a non-loopback address (plain HTTP: prefer an ssh tunnel); the token ($"+TokenEnv+", else random) is required there as on loopback")
	return cmd
}

// tokenFromEnv returns $KPLEX_DASHBOARD_TOKEN, else a new random token.
// Not a flag: a command line is visible to every process of the host.
func tokenFromEnv() (string, error) {
	if token := os.Getenv(TokenEnv); token != "" {
		return token, nil
	}
	return NewToken()
}

// Run serves the dashboard until ctx ends: it checks that the management
// plane can be read, prints the URL (with the token) on Out and a hint on
// Chatter.
func Run(ctx context.Context, opts Options, streams cli.Streams, g *cli.Global) error {
	s, err := New(opts)
	if err != nil {
		return err
	}
	if err := s.Prime(ctx); err != nil {
		s.Close()
		return fmt.Errorf("reading the management plane: %w", err)
	}
	fmt.Fprintln(streams.Out, s.URL())
	fmt.Fprintln(g.Chatter(streams), "Serving the kplex dashboard (every tenant, read as admin); open the URL above, which carries its token (keep it private). Ctrl-C stops it.")
	return s.Serve(ctx)
}
