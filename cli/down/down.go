// Package down is `kplex down`: it stops the kplex started by `kplex up`
// from a data directory. Data stays unless --delete-data is given.
package down

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kplex/kplex/apiserver/server"
	"github.com/kplex/kplex/cli"
	"github.com/kplex/kplex/cli/daemon"
	"github.com/kplex/kplex/cli/status"
	"github.com/kplex/kplex/client/kubeconfig"
	"github.com/kplex/kplex/nodeagent"
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
		if err := removeLocalPods(ctx, st, g.Chatter(streams), flags.DataDir); err != nil {
			return err
		}
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

// removeLocalPods stops and removes the local node's pods in its container
// runtime: with the data gone, no agent would ever adopt them. A plain
// down keeps them for the next up.
func removeLocalPods(ctx context.Context, st *status.Status, out io.Writer, dataDir string) error {
	node, err := daemon.ReadLocalNode(dataDir)
	if err != nil || node == nil {
		return err
	}
	st.Start(fmt.Sprintf("Removing local node %s's pods from %s", node.Name, node.RuntimeEndpoint))
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := nodeagent.RemovePods(ctx, node.RuntimeEndpoint, node.Name)
	if err != nil {
		return fmt.Errorf("removing the local node's pods (the data directory is kept; try again once the runtime answers): %w", err)
	}
	st.End(true)
	fmt.Fprintf(out, "Removed %d pod(s) of local node %s from its container runtime\n", n, node.Name)
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
