package server

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/features"
)

// KeepBackoffQueueOutOfFairShare turns off upstream's popping from the
// back-off queue whenever the active queue is empty: that queue is
// ordered by back-off expiry, so the tenant whose pods waited longest
// would go first, whatever the shares. Without it pods are served from
// the active queue, in fair-share order. Call it before flags are parsed,
// so that --feature-gates can turn it back on.
func KeepBackoffQueueOutOfFairShare() error {
	return utilfeature.DefaultMutableFeatureGate.SetFromMap(map[string]bool{string(features.SchedulerPopFromBackoffQ): false})
}

// RunInProcess runs the scheduler inside another component's process
// (`kplex up`) until ctx ends: kubeconfig addresses root as
// system:masters. It leaves logging to its host, serves no HTTPS and
// elects no leader, since upstream's elector exits the process when it
// loses the lease.
func RunInProcess(ctx context.Context, kubeconfig string) error {
	if err := KeepBackoffQueueOutOfFairShare(); err != nil {
		return err
	}
	opts := options.NewOptions()
	fs := pflag.NewFlagSet("kplex-scheduler", pflag.ContinueOnError)
	for _, name := range opts.Flags.Order {
		fs.AddFlagSet(opts.Flags.FlagSets[name])
	}
	if err := fs.Parse([]string{"--kubeconfig=" + kubeconfig, "--secure-port=0", "--leader-elect=false"}); err != nil {
		return fmt.Errorf("scheduler flags: %w", err)
	}
	cc, sched, err := Setup(ctx, opts)
	if err != nil {
		return err
	}
	err = schedulerapp.Run(ctx, cc, sched)
	if ctx.Err() != nil {
		return nil // upstream's Run returns an error whenever it stops
	}
	return err
}
