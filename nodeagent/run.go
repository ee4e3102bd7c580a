package nodeagent

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	remote "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/pools"
	"github.com/kplex/kplex/dataplane"
	"github.com/kplex/kplex/nodeagent/runtime/simulated"
)

// Run runs the node agent, or SimulateNodes simulated agents, against the
// kplex apiserver kubeconfig addresses (its management plane) until ctx
// ends.
func Run(ctx context.Context, cfg *Config, kubeconfig *rest.Config) error {
	return run(ctx, cfg, kubeconfig, nil)
}

// run is Run with the simulated runtime of each node given by simulatedRuntime
// (when not nil), so tests can restart an agent over the same runtime.
func run(ctx context.Context, cfg *Config, kubeconfig *rest.Config, simulatedRuntime func(node string) Runtime) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.NodeIP == "" {
		cfg.NodeIP = outboundIP(kubeconfig.Host)
	}
	kubeconfig = rest.CopyConfig(kubeconfig)
	nodes := max(cfg.SimulateNodes, 1)
	if cfg.SimulateNodes > 0 {
		// The host's label files describe the host, not simulated nodes.
		cfg.NodeLabelsDir = ""
	}
	// A kubelet's 50 requests per second, for each node the process runs.
	kubeconfig.QPS, kubeconfig.Burst = float32(50*nodes), 100*nodes
	root, err := kubernetes.NewForConfig(kubeconfig)
	if err != nil {
		return fmt.Errorf("building the client: %w", err)
	}
	cross, err := kubernetes.NewForConfig(crosstenant.Config(kubeconfig))
	if err != nil {
		return fmt.Errorf("building the cross-tenant client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(kubeconfig)
	if err != nil {
		return fmt.Errorf("building the dynamic client: %w", err)
	}
	poolCache := pools.NewPoolsOnly(dyn)
	poolCache.Run(ctx)
	if cfg.Tenant != "" {
		if err := retry(ctx, func() error { return ensureTenantPool(ctx, dyn, cfg.Tenant) }); err != nil {
			return err
		}
	}
	tenants := root.CoreV1().RESTClient()

	var agents []*Agent
	var selector string
	if cfg.Simulated() {
		capacity := v1.ResourceList{
			v1.ResourceCPU:              resource.MustParse(cfg.SimulatedCPU),
			v1.ResourceMemory:           resource.MustParse(cfg.SimulatedMemory),
			v1.ResourcePods:             *resource.NewQuantity(int64(cfg.MaxPods), resource.DecimalSI),
			v1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
		}
		for i := range nodes {
			name := cfg.NodeName
			if cfg.SimulateNodes > 0 {
				name = fmt.Sprintf("%s-%d", cfg.NodeName, i)
			}
			var devices Devices
			switch {
			case cfg.SimulatedGPUs > 0:
				devices = newSimulatedGPUs(name, cfg.SimulatedGPUs)
			case cfg.SimulateNodes == 0:
				// One simulated node still hosts device plugins, such as
				// kplex-deviceplugin's simulated GPUs.
				var err error
				if devices, err = startDevices(ctx, cfg); err != nil {
					return err
				}
			}
			rt := Runtime{Service: simulated.New(), Images: simulated.Images{}, HostNetworkOnly: cfg.Network == NetworkHost, Scheme: simulated.RuntimeName}
			if simulatedRuntime != nil {
				rt = simulatedRuntime(name)
			}
			agents = append(agents, newAgent(cfg, name, root, tenants, rt, devices, capacity))
		}
		selector = "spec.nodeName!="
		if cfg.SimulateNodes == 0 {
			selector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
		}
	} else {
		rt, err := criRuntime(ctx, cfg.RuntimeEndpoint)
		if err != nil {
			return err
		}
		rt.HostNetworkOnly = cfg.Network == NetworkHost
		if !rt.HostNetworkOnly {
			if err := dataplane.Start(ctx, kubeconfig, dataplane.Options{
				NodeName: cfg.NodeName, NodeIP: net.ParseIP(cfg.NodeIP),
				ClusterCIDR: cfg.ClusterCIDR, ServiceCIDR: cfg.ServiceCIDR,
				ClusterDNS: net.ParseIP(cfg.ClusterDNS), ClusterDomain: cfg.ClusterDomain,
				DNSUpstreams: hostNameservers(),
			}); err != nil {
				return fmt.Errorf("the node's data plane: %w", err)
			}
		}
		devices, err := startDevices(ctx, cfg)
		if err != nil {
			return err
		}
		agents = append(agents, newAgent(cfg, cfg.NodeName, root, tenants, rt, devices, capacityOf(cfg.RootDir, cfg.MaxPods)))
		selector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
	}

	registering := newSlots(32)
	for _, a := range agents {
		a.slots = registering
		a.pools = poolCache
	}
	source, err := newPodSource(cross, selector, agents)
	if err != nil {
		return err
	}
	srv, err := newServer(cfg, agents)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The first failure stops the process: a node that cannot run is not
	// left registered as if it could.
	errc := make(chan error, 1)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		cancel()
	}
	go func() {
		if err := srv.serve(ctx); err != nil {
			fail(err)
		}
	}()

	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.run(ctx); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("node %s: %w", a.name, err))
			}
		}()
	}
	// The agents' contexts are set before pods arrive.
	for _, a := range agents {
		for a.ctxSet() == false && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	go source.cache.Run(ctx)
	if cache.WaitForCacheSync(ctx.Done(), source.cache.HasSynced) {
		for _, a := range agents {
			go a.adoptOrphans(ctx)
		}
		klog.FromContext(ctx).Info("Node agent running", "nodes", len(agents), "runtime", agents[0].runtime.Scheme)
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	return nil
}

func (a *Agent) ctxSet() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ctx != nil
}

// criRuntime connects to a CRI runtime such as containerd.
func criRuntime(ctx context.Context, endpoint string) (Runtime, error) {
	svc, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(2 * time.Minute).Build(ctx)
	if err != nil {
		return Runtime{}, fmt.Errorf("connecting to the container runtime at %s: %w", endpoint, err)
	}
	images, err := remote.NewRemoteImageServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(2 * time.Minute).Build(ctx)
	if err != nil {
		return Runtime{}, fmt.Errorf("connecting to the image service at %s: %w", endpoint, err)
	}
	v, err := svc.Version(ctx, "v1")
	if err != nil {
		return Runtime{}, fmt.Errorf("asking the container runtime at %s its version: %w", endpoint, err)
	}
	return Runtime{Service: svc, Images: images, HostNetworkOnly: true, Scheme: v.RuntimeName}, nil
}
