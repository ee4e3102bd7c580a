// Package down is `kplex down`: it stops the kplex started by `kplex up`
// from a data directory. Data stays unless --delete-data is given.
package down

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/cli"
	"github.com/kplex/kplex/cli/daemon"
	"github.com/kplex/kplex/client/kubeconfig"
	"github.com/kplex/kplex/tenant"
)

type flagpole struct {
	DataDir    string
	DeleteData bool
	Wait       time.Duration
}

// NewCommand returns the down command.
func NewCommand(g *cli.Global, streams cli.Streams) *cobra.Command {
	flags := &flagpole{}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop kplex on this machine; its data stays unless --delete-data",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runE(cmd.Context(), g, streams, flags)
		},
	}
	cmd.Flags().StringVar(&flags.DataDir, "data-dir", server.DefaultDataDir(), "data directory of the kplex to stop")
	cmd.Flags().BoolVar(&flags.DeleteData, "delete-data", false, "also delete the data directory (every cluster) and the kplex-root context")
	cmd.Flags().DurationVar(&flags.Wait, "wait", time.Minute, "how long to wait for a clean stop before killing")
	return cmd
}

func runE(ctx context.Context, g *cli.Global, streams cli.Streams, flags *flagpole) error {
	pid, err := daemon.Running(flags.DataDir)
	if err != nil {
		return err
	}
	st := g.Status(streams)
	defer st.End(false)
	if pid == 0 {
		fmt.Fprintf(g.Chatter(streams), "kplex is not running from %s\n", flags.DataDir)
	} else {
		st.Start(fmt.Sprintf("Stopping kplex (pid %d)", pid))
		if err := stop(ctx, pid, flags.Wait); err != nil {
			return err
		}
	}
	if flags.DeleteData {
		st.Start(fmt.Sprintf("Deleting %s", flags.DataDir))
		if err := os.RemoveAll(flags.DataDir); err != nil {
			return fmt.Errorf("deleting data directory: %w", err)
		}
		if err := kubeconfig.Remove(g.Kubeconfig, tenant.Root); err != nil {
			return err
		}
	}
	st.End(true)
	return nil
}

func stop(ctx context.Context, pid int, wait time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signalling kplex (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(wait)
	for daemon.Alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return fmt.Errorf("kplex (pid %d) did not stop within %s and was killed", pid, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
