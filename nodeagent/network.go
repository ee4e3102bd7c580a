package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/dataplane/cni"
)

// podNetwork is the node's pod network: the CNI configuration the agent
// writes for its pod CIDR, and whether pods can be given a network now.
// A pod that needs one waits while it cannot, rather than run on the
// host's network: that would share ports and addresses between tenants.
type podNetwork struct {
	// cni is a real node's network, written for the runtime's CNI plugins;
	// pods wait for it. A simulated node's runtime hands out IPs of the
	// node's CIDR, with nothing behind them, and no pod waits.
	cni bool

	mu      sync.Mutex
	err     error // why pods cannot get a network; nil when they can
	podCIDR string
}

func newPodNetwork(cni bool) *podNetwork {
	return &podNetwork{cni: cni, err: errors.New("the node has no pod network yet")}
}

// notReady reports why pods cannot get a network, or nil.
func (n *podNetwork) notReady() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

func (n *podNetwork) set(podCIDR string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.podCIDR, n.err = podCIDR, err
}

// keepNetwork waits for the node's pod CIDR, writes the CNI configuration
// for it, tells the runtime, and checks the runtime's network until ctx
// ends. A simulated node only tells its runtime the CIDR, once.
func (a *Agent) keepNetwork(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("network")
	last := ""
	wait := time.Second
	for {
		err := a.syncNetwork(ctx)
		a.net.set(a.net.podCIDRNow(), err)
		if msg := fmt.Sprint(err); msg != last {
			if err != nil {
				logger.Info("Pod network not ready", "reason", err.Error())
			} else {
				logger.Info("Pod network ready", "podCIDR", a.net.podCIDRNow())
			}
			last = msg
		}
		if err == nil && !a.net.cni {
			return
		}
		// Status changes show in the node's Ready condition.
		a.node.poke()
		switch {
		case err == nil:
			wait = 10 * time.Second
		case !a.net.cni:
			// Thousands of simulated nodes may wait for CIDRs the cluster
			// range cannot give: back off to a minute.
			wait = min(2*wait, time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (n *podNetwork) podCIDRNow() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.podCIDR
}

func (a *Agent) syncNetwork(ctx context.Context) error {
	cidr := a.net.podCIDRNow()
	if cidr == "" {
		// A node's pod CIDR never changes once given: read it until then.
		node, err := a.root.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading the node: %w", err)
		}
		if cidr = node.Spec.PodCIDR; cidr == "" {
			return errors.New("no pod CIDR assigned to the node yet (the controller manager's node IPAM gives one)")
		}
		a.net.mu.Lock()
		a.net.podCIDR = cidr
		a.net.mu.Unlock()
	}
	if !a.net.cni {
		return a.runtime.Service.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidr}})
	}
	if err := cni.Missing(a.cfg.CNIBinDir); err != nil {
		return err
	}
	if _, err := cni.Write(cni.Config{ConfDir: a.cfg.CNIConfDir, PodCIDR: cidr, DataDir: filepath.Join(a.cfg.RootDir, "cni", "networks")}); err != nil {
		return err
	}
	if err := a.runtime.Service.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidr}}); err != nil {
		return fmt.Errorf("telling the runtime the pod CIDR: %w", err)
	}
	st, err := a.runtime.Service.Status(ctx, false)
	if err != nil {
		return fmt.Errorf("runtime status: %w", err)
	}
	for _, c := range st.GetStatus().GetConditions() {
		if c.Type == runtimeapi.NetworkReady && !c.Status {
			return fmt.Errorf("the runtime's network is not ready: %s: %s", c.Reason, c.Message)
		}
	}
	return nil
}
