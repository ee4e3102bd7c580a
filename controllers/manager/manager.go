// Package manager is kplex's controller manager: one process runs
// upstream controllers for every tenant, each (controller, tenant) only
// while that tenant has work for it (package activation), over shared
// cross-tenant caches.
//
// It runs in `kplex up`'s process (no leader election: one process) and as
// the kplex-controller-manager binary (leader election on a Lease in
// root's kube-system by default).
package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	componentbaseconfig "k8s.io/component-base/config"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/capacity"
	capmetrics "github.com/kplex/kplex/capacity/metrics"
	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/crosstenant/tenantview"
	"github.com/kplex/kplex/client/pools"
	"github.com/kplex/kplex/controllers/activation"
	"github.com/kplex/kplex/controllers/autoscaling"
	"github.com/kplex/kplex/controllers/certificates"
	"github.com/kplex/kplex/controllers/clusterdns"
	"github.com/kplex/kplex/controllers/clusterroles"
	"github.com/kplex/kplex/controllers/disruption"
	"github.com/kplex/kplex/controllers/endpoints"
	"github.com/kplex/kplex/controllers/garbagecollector"
	"github.com/kplex/kplex/controllers/namespace"
	"github.com/kplex/kplex/controllers/networkpolicies"
	"github.com/kplex/kplex/controllers/nodeipam"
	"github.com/kplex/kplex/controllers/nodelifecycle"
	"github.com/kplex/kplex/controllers/nodepools"
	"github.com/kplex/kplex/controllers/podgc"
	"github.com/kplex/kplex/controllers/resourcequota"
	"github.com/kplex/kplex/controllers/serviceaccount"
	"github.com/kplex/kplex/controllers/workloads"
	"github.com/kplex/kplex/metrics/bounded"
)

// Lease defaults, as kube-controller-manager's.
const (
	DefaultLeaseName      = "kplex-controller-manager"
	DefaultLeaseNamespace = metav1.NamespaceSystem
	DefaultLeaseDuration  = 15 * time.Second
	DefaultRenewDeadline  = 10 * time.Second
	DefaultRetryPeriod    = 2 * time.Second
)

// Options configure the manager. Zero fields take the defaults.
type Options struct {
	// Loopback is a config of the apiserver's root with the right to list
	// and watch across tenants (system:masters) and to write in every
	// tenant. Required.
	Loopback *rest.Config
	// RootCA is the PEM CA bundle the apiserver serves with, published in
	// every namespace as kube-root-ca.crt. Required.
	RootCA []byte
	// QuietPeriod puts a tenant's controller to sleep after it saw no
	// relevant event and made no API call for that long. Default
	// activation.DefaultQuietPeriod (1m).
	QuietPeriod time.Duration
	// LeaderElection: with LeaderElect false (the zero value) the manager
	// runs at once, as in `kplex up`'s single process. Zero durations and
	// names take the Default... constants.
	LeaderElection componentbaseconfig.LeaderElectionConfiguration
	// Identity is this candidate's leader-election identity. Default
	// hostname_<uuid>.
	Identity string
	// Nodes configure the node lifecycle controller; its Loopback is
	// Loopback's.
	Nodes nodelifecycle.Options
	// ServiceAccountKey signs the tokens of service-account-token Secrets
	// (the apiserver's service account key). Without it the token
	// controller does not run, as in kube-controller-manager.
	ServiceAccountKey any
	// MetricsTopTenants is how many tenants get capacity series of their
	// own (kplex_tenant_*); the others are summed as tenant="_other".
	// Default bounded.DefaultTopTenants (100). It is the process's: the
	// capacity collector is registered once, in legacyregistry.
	MetricsTopTenants int
	// Autoscaling configures the horizontal pod autoscaler; a zero
	// SyncPeriod takes autoscaling.DefaultOptions().
	Autoscaling autoscaling.Options
	// NodeIPAM configures the pod CIDRs given to nodes; zero fields take
	// nodeipam's defaults (10.244.0.0/16, /24 per node).
	NodeIPAM nodeipam.Options
	// Certificates approves and signs node agents' client certificates
	// (TLS bootstrap); without signing files it only approves.
	Certificates certificates.Options
}

// capacityMetrics is the process's capacity collector, registered with
// legacyregistry on first use: /metrics of kplex-controller-manager
// (--secure-port), and of the apiserver in `kplex up`'s process.
var capacityMetrics = sync.OnceValue(func() *capmetrics.Collector {
	c := capmetrics.New(bounded.DefaultTopTenants)
	legacyregistry.RawMustRegister(c)
	return c
})

// Manager runs the tenant controllers.
type Manager struct {
	opts  Options
	cross kubernetes.Interface
	// activator is set by run, once the caches are made.
	activator atomic.Pointer[activation.Activator]
}

// New checks opts and builds the manager's clients; Run runs it.
func New(opts Options) (*Manager, error) {
	if opts.Loopback == nil {
		return nil, errors.New("manager: Options.Loopback is required")
	}
	if len(opts.RootCA) == 0 {
		return nil, errors.New("manager: Options.RootCA is required (the apiserver's CA, --root-ca-file)")
	}
	cross, err := kubernetes.NewForConfig(crosstenant.Config(opts.Loopback))
	if err != nil {
		return nil, fmt.Errorf("building the cross-tenant client: %w", err)
	}
	if opts.Autoscaling.SyncPeriod == 0 {
		opts.Autoscaling = autoscaling.DefaultOptions()
	}
	if err := opts.Autoscaling.Validate(); err != nil {
		return nil, err
	}
	if err := opts.NodeIPAM.Validate(); err != nil {
		return nil, err
	}
	return &Manager{opts: opts, cross: cross}, nil
}

// build makes the cross-tenant caches (the garbage collector's after
// discovering the server's resources) and the activator of every tenant
// controller.
func (m *Manager) build(ctx context.Context) (*activation.Activator, []*crosstenant.Cache, error) {
	core, apps, batch := m.cross.CoreV1().RESTClient(), m.cross.AppsV1().RESTClient(), m.cross.BatchV1().RESTClient()
	sa := serviceaccount.Caches{
		Namespaces:      crosstenant.NewCache(crosstenant.ListWatch(core, "namespaces"), &corev1.Namespace{}),
		ServiceAccounts: crosstenant.NewCache(crosstenant.ListWatch(core, "serviceaccounts"), &corev1.ServiceAccount{}),
		ConfigMaps:      crosstenant.NewCache(crosstenant.ListWatchSelected(core, "configmaps", serviceaccount.ConfigMapSelector), &corev1.ConfigMap{}),
	}
	w := workloads.Caches{
		Pods:        crosstenant.NewCache(crosstenant.ListWatch(core, "pods"), &corev1.Pod{}),
		ReplicaSets: crosstenant.NewCache(crosstenant.ListWatch(apps, "replicasets"), &appsv1.ReplicaSet{}),

		ReplicationControllers: crosstenant.NewCache(crosstenant.ListWatch(core, "replicationcontrollers"), &corev1.ReplicationController{}),
		Deployments:            crosstenant.NewCache(crosstenant.ListWatch(apps, "deployments"), &appsv1.Deployment{}),
		Jobs:                   crosstenant.NewCache(crosstenant.ListWatch(batch, "jobs"), &batchv1.Job{}),
		CronJobs:               crosstenant.NewCache(crosstenant.ListWatch(batch, "cronjobs"), &batchv1.CronJob{}),

		StatefulSets:        crosstenant.NewCache(crosstenant.ListWatch(apps, "statefulsets"), &appsv1.StatefulSet{}),
		ControllerRevisions: crosstenant.NewCache(crosstenant.ListWatch(apps, "controllerrevisions"), &appsv1.ControllerRevision{}),
		DaemonSets:          crosstenant.NewCache(crosstenant.ListWatch(apps, "daemonsets"), &appsv1.DaemonSet{}),
	}
	quotas := crosstenant.NewCache(crosstenant.ListWatch(core, "resourcequotas"), &corev1.ResourceQuota{})
	services := crosstenant.NewCache(crosstenant.ListWatch(core, "services"), &corev1.Service{})
	autoscalers := autoscaling.NewCache(crosstenant.ListWatch(m.cross.AutoscalingV2().RESTClient(), "horizontalpodautoscalers"))
	claims := crosstenant.NewCache(crosstenant.ListWatch(core, "persistentvolumeclaims"), &corev1.PersistentVolumeClaim{})
	ep := endpoints.Caches{
		Services:       services,
		Pods:           w.Pods,
		Endpoints:      crosstenant.NewCache(crosstenant.ListWatch(core, "endpoints"), &corev1.Endpoints{}),
		EndpointSlices: crosstenant.NewCache(crosstenant.ListWatch(m.cross.DiscoveryV1().RESTClient(), "endpointslices"), &discoveryv1.EndpointSlice{}),
		Nodes:          crosstenant.NewCache(crosstenant.ListWatch(core, "nodes"), &corev1.Node{}),
	}
	pdb := disruption.Caches{
		PodDisruptionBudgets:   crosstenant.NewCache(crosstenant.ListWatch(m.cross.PolicyV1().RESTClient(), "poddisruptionbudgets"), &policyv1.PodDisruptionBudget{}),
		ReplicationControllers: w.ReplicationControllers,
		Pods:                   w.Pods, ReplicaSets: w.ReplicaSets, Deployments: w.Deployments, StatefulSets: w.StatefulSets,
	}
	gc, err := garbagecollector.NewCaches(ctx, m.opts.Loopback, crosstenant.Config(m.opts.Loopback))
	if err != nil {
		return nil, nil, err
	}
	podGC, err := podgc.Spec(podgc.Caches{Pods: w.Pods, Nodes: ep.Nodes})
	if err != nil {
		return nil, nil, err
	}
	// A tenant's controllers see the nodes its pods may use: a
	// DaemonSet runs on its tenant's pools' nodes only.
	dyn, err := dynamic.NewForConfig(m.opts.Loopback)
	if err != nil {
		return nil, nil, err
	}
	nodePools := pools.New(dyn)
	nodePools.Run(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), nodePools.HasSynced) {
		return nil, nil, fmt.Errorf("node pools did not sync: %w", ctx.Err())
	}
	views := &tenantview.Caches{
		MayUseNode: nodePools.MayUse,
		Namespaces: sa.Namespaces, ServiceAccounts: sa.ServiceAccounts, ConfigMaps: sa.ConfigMaps,
		Pods: w.Pods, ReplicaSets: w.ReplicaSets, Deployments: w.Deployments, Jobs: w.Jobs, CronJobs: w.CronJobs,
		StatefulSets: w.StatefulSets, ControllerRevisions: w.ControllerRevisions, DaemonSets: w.DaemonSets,
		PodDisruptionBudgets: pdb.PodDisruptionBudgets, ReplicationControllers: pdb.ReplicationControllers,
		ResourceQuotas: quotas, Services: services, PersistentVolumeClaims: claims,
		Endpoints: ep.Endpoints, EndpointSlices: ep.EndpointSlices, Nodes: ep.Nodes,
		Metadata: gc,
	}
	specs := []activation.Spec{
		serviceaccount.ServiceAccounts(sa), serviceaccount.RootCAPublisher(sa, m.opts.RootCA),
		namespace.Spec(sa.Namespaces),
		garbagecollector.Spec(gc),
		resourcequota.Spec(quotas, append([]*crosstenant.Cache{w.Pods, services, claims}, gc.List()...)),
		workloads.Deployments(w), workloads.ReplicaSets(w), workloads.ReplicationControllers(w), workloads.StatefulSets(w), workloads.Jobs(w),
		workloads.CronJobs(w), workloads.TTLAfterFinished(w),
		endpoints.Endpoints(ep), endpoints.EndpointSlices(ep),
		disruption.Spec(pdb), podGC, workloads.DaemonSets(w, ep.Nodes),
		autoscaling.Spec(autoscalers, m.opts.Autoscaling),
	}
	caches := append([]*crosstenant.Cache{sa.Namespaces, sa.ServiceAccounts, sa.ConfigMaps, w.Pods, w.ReplicaSets, w.Deployments, w.Jobs, w.CronJobs, w.StatefulSets, w.ControllerRevisions, w.DaemonSets, quotas, services, claims, ep.Endpoints, ep.EndpointSlices, ep.Nodes, pdb.PodDisruptionBudgets, pdb.ReplicationControllers, autoscalers}, gc.List()...)
	if m.opts.ServiceAccountKey != nil {
		tokens := serviceaccount.TokenCaches{
			ServiceAccounts: sa.ServiceAccounts,
			Secrets:         crosstenant.NewCache(crosstenant.ListWatchSelected(core, "secrets", serviceaccount.TokenSecretSelector), &corev1.Secret{}),
		}
		spec, err := serviceaccount.Tokens(tokens, m.opts.ServiceAccountKey, m.opts.RootCA)
		if err != nil {
			return nil, nil, err
		}
		specs = append(specs, spec)
		caches = append(caches, tokens.Secrets)
		views.Secrets = tokens.Secrets
	}
	a, err := activation.New(activation.Options{
		Loopback:    m.opts.Loopback,
		Caches:      views,
		Tenants:     func() []string { return sa.Namespaces.ListIndexFuncValues(crosstenant.ByTenant) },
		QuietPeriod: m.opts.QuietPeriod,
	}, specs...)
	if err != nil {
		return nil, nil, err
	}
	return a, caches, nil
}

// Run runs the controllers until ctx ends, after winning the Lease if
// leader election is on. Losing the Lease ends Run with an error: the
// caller should exit, as kube-controller-manager does.
func Run(ctx context.Context, opts Options) error {
	m, err := New(opts)
	if err != nil {
		return err
	}
	return m.Run(ctx)
}

// Run runs the controllers until ctx ends, after winning the Lease if
// leader election is on.
func (m *Manager) Run(ctx context.Context) error {
	if !m.opts.LeaderElection.LeaderElect {
		return m.run(ctx)
	}
	le, err := m.elector()
	if err != nil {
		return err
	}
	lost := errors.New("lost the leader-election Lease")
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var runErr error
	var started atomic.Bool
	done := make(chan struct{})
	le.Callbacks = leaderelection.LeaderCallbacks{
		OnStartedLeading: func(ctx context.Context) {
			started.Store(true)
			defer close(done)
			klog.FromContext(ctx).Info("Leading", "lease", le.Name)
			runErr = m.run(ctx)
		},
		OnStoppedLeading: func() { cancel(lost) },
	}
	elector, err := leaderelection.NewLeaderElector(le)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	elector.Run(ctx)
	if started.Load() {
		<-done
	}
	if runErr != nil {
		return runErr
	}
	if errors.Is(context.Cause(ctx), lost) {
		return lost
	}
	return nil
}

func (m *Manager) elector() (leaderelection.LeaderElectionConfig, error) {
	l := m.opts.LeaderElection
	dur := func(d metav1.Duration, def time.Duration) time.Duration {
		if d.Duration <= 0 {
			return def
		}
		return d.Duration
	}
	str := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	id := m.opts.Identity
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return leaderelection.LeaderElectionConfig{}, fmt.Errorf("leader-election identity: %w", err)
		}
		id = host + "_" + string(uuid.NewUUID())
	}
	client, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(m.opts.Loopback), "leader-election"))
	if err != nil {
		return leaderelection.LeaderElectionConfig{}, err
	}
	lock, err := resourcelock.New(str(l.ResourceLock, resourcelock.LeasesResourceLock),
		str(l.ResourceNamespace, DefaultLeaseNamespace), str(l.ResourceName, DefaultLeaseName),
		client.CoreV1(), client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id})
	if err != nil {
		return leaderelection.LeaderElectionConfig{}, fmt.Errorf("leader-election lock: %w", err)
	}
	return leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   dur(l.LeaseDuration, DefaultLeaseDuration),
		RenewDeadline:   dur(l.RenewDeadline, DefaultRenewDeadline),
		RetryPeriod:     dur(l.RetryPeriod, DefaultRetryPeriod),
		ReleaseOnCancel: true,
		Name:            DefaultLeaseName,
	}, nil
}

// run fills the caches and runs the activator until ctx ends.
func (m *Manager) run(ctx context.Context) error {
	// The server may not be up yet: discovery is retried, as upstream's
	// controller manager waits for the apiserver's health.
	var a *activation.Activator
	var caches []*crosstenant.Cache
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Steps: 1 << 30, Cap: 15 * time.Second}
	for {
		var err error
		if a, caches, err = m.build(ctx); err == nil {
			break
		}
		klog.FromContext(ctx).Error(err, "Building the tenant controllers; will retry")
		select {
		case <-ctx.Done():
			return fmt.Errorf("building the tenant controllers: %w", err)
		case <-time.After(backoff.Step()):
		}
	}
	for _, c := range caches {
		go c.Run(ctx)
	}
	m.activator.Store(a)
	// The management plane's controllers run beside the tenants'.
	nodes := m.opts.Nodes
	nodes.Loopback = m.opts.Loopback
	nodesDone := make(chan error, 1)
	go func() {
		err := nodelifecycle.Run(ctx, nodes)
		if err != nil {
			klog.FromContext(ctx).Error(err, "Node lifecycle controllers stopped")
		}
		nodesDone <- err
	}()
	rolesDone := make(chan error, 1)
	go func() { rolesDone <- clusterroles.Run(ctx, m.opts.Loopback) }()
	go func() {
		if err := clusterdns.Ensure(ctx, m.opts.Loopback, clusterdns.DefaultClusterIP); err != nil && ctx.Err() == nil {
			klog.FromContext(ctx).Error(err, "kube-dns Service")
		}
	}()
	if err := m.warnInertPolicies(ctx); err != nil {
		return err
	}
	certsDone := make(chan error, 1)
	go func() {
		err := certificates.Run(ctx, m.opts.Loopback, m.opts.Certificates)
		if err != nil {
			klog.FromContext(ctx).Error(err, "Certificate controllers stopped")
		}
		certsDone <- err
	}()
	ipamDone := make(chan error, 1)
	go func() {
		err := nodeipam.Run(ctx, m.opts.Loopback, m.opts.NodeIPAM)
		if err != nil {
			klog.FromContext(ctx).Error(err, "Node IPAM controller stopped")
		}
		ipamDone <- err
	}()
	// Only the running manager (the leader) exports capacity: its reports
	// go when it stops.
	exported := capacityMetrics()
	exported.SetTopTenants(m.opts.MetricsTopTenants)
	defer exported.Forget(m)
	poolsDone := make(chan error, 1)
	go func() {
		err := nodepools.Run(ctx, nodepools.Options{Loopback: m.opts.Loopback, OnReport: func(r *capacity.Report) { exported.SetFrom(m, r) }})
		if err != nil {
			klog.FromContext(ctx).Error(err, "Node pool controller stopped")
		}
		poolsDone <- err
	}()
	err := a.Run(ctx)
	if nerr := <-nodesDone; err == nil && nerr != nil {
		err = nerr
	}
	if perr := <-poolsDone; err == nil && perr != nil {
		err = perr
	}
	if rerr := <-rolesDone; err == nil && rerr != nil {
		err = rerr
	}
	if ierr := <-ipamDone; err == nil && ierr != nil {
		err = ierr
	}
	if cerr := <-certsDone; err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// Awake returns the number of awake tenant instances of each controller
// (none before the manager runs).
func (m *Manager) Awake() map[string]int {
	if a := m.activator.Load(); a != nil {
		return a.Awake()
	}
	return map[string]int{}
}

// AwakeTenants returns the tenants with an awake instance of the named
// controller.
func (m *Manager) AwakeTenants(name string) []string {
	if a := m.activator.Load(); a != nil {
		return a.AwakeTenants(name)
	}
	return nil
}

// Stats returns how many tenant instances were built and put to sleep.
func (m *Manager) Stats() activation.Stats {
	if a := m.activator.Load(); a != nil {
		return a.Stats()
	}
	return activation.Stats{}
}

// warnInertPolicies tells tenants of NetworkPolicy rules kplex never
// grants (an ipBlock over the pod network), from one cross-tenant cache.
func (m *Manager) warnInertPolicies(ctx context.Context) error {
	root, err := kubernetes.NewForConfig(m.opts.Loopback)
	if err != nil {
		return fmt.Errorf("network policy warnings: %w", err)
	}
	policies := crosstenant.NewCache(crosstenant.ListWatch(m.cross.NetworkingV1().RESTClient(), "networkpolicies"), &networkingv1.NetworkPolicy{})
	go policies.Run(ctx)
	go func() {
		if err := networkpolicies.Run(ctx, policies, root.CoreV1().RESTClient(), m.opts.NodeIPAM.WithDefaults().ClusterCIDR); err != nil {
			klog.FromContext(ctx).Error(err, "Network policy warnings stopped")
		}
	}()
	return nil
}
