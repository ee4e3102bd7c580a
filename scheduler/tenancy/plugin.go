// Package tenancy is the kplex scheduler plugin: it places every tenant's
// pods, seen through one cross-tenant informer with namespaces joined
// tenant~namespace (client/crosstenant/tenantns), onto the management
// plane's nodes.
//
//   - Fencing: a node in a pool takes a pod only if the pool admits the
//     pod's tenant, which comes from where the pod lives, never from its
//     spec; no toleration opens a dedicated pool to another tenant.
//   - Quota: a tenant's pods in a pool request at most its nominal quota
//     there, plus what it may borrow while the pool's other tenants leave
//     theirs unused; a pool's limits bound all tenants together.
//   - Fair share: the queue serves first the tenant with the smallest
//     dominant share (DRF), divided by its weight; then priority, then age.
//   - Binding goes to the pod's own tenant, and names the pool; the time
//     from the pod's creation to its binding is observed in
//     kplex_scheduler_pod_scheduling_duration_seconds{tenant,pool}.
package tenancy

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/client/crosstenant/tenantns"
	"github.com/kplex/kplex/client/pools"
	"github.com/kplex/kplex/podsecurity"
	"github.com/kplex/kplex/scheduler/usage"
	"github.com/kplex/kplex/tenant"
)

// Name is the plugin's name in scheduler profiles.
const Name = "KplexTenancy"

const rootTenant = tenant.Root

// Plugin implements the kplex scheduling rules.
type Plugin struct {
	handle   fwk.Handle
	dir      *pools.Cache
	tracker  *usage.Tracker
	arrivals *arrivals
}

var (
	_ fwk.QueueSortPlugin   = &Plugin{}
	_ fwk.PreFilterPlugin   = &Plugin{}
	_ fwk.FilterPlugin      = &Plugin{}
	_ fwk.ReservePlugin     = &Plugin{}
	_ fwk.BindPlugin        = &Plugin{}
	_ fwk.SignPlugin        = &Plugin{}
	_ fwk.EnqueueExtensions = &Plugin{}
)

// New builds the plugin: it watches the management plane's pools and
// quotas, and counts every tenant's bound pods and every node.
func New(ctx context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	client, err := dynamic.NewForConfig(h.KubeConfig())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	dir := pools.New(client)
	p := &Plugin{handle: h, dir: dir, tracker: usage.NewTracker(), arrivals: &arrivals{seen: map[types.UID]time.Time{}}}
	dir.Run(ctx)
	RegisterMetrics()

	pods := h.SharedInformerFactory().Core().V1().Pods().Informer()
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.countPod(obj) },
		UpdateFunc: func(_, obj any) { p.countPod(obj) },
		DeleteFunc: func(obj any) { p.forgetPod(obj) },
	}); err != nil {
		return nil, err
	}
	nodes := h.SharedInformerFactory().Core().V1().Nodes().Informer()
	if _, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.countNode(obj) },
		UpdateFunc: func(_, obj any) { p.countNode(obj) },
		DeleteFunc: func(obj any) {
			if n, ok := unwrap(obj).(*corev1.Node); ok {
				p.tracker.RemoveNode(n.Name)
			}
		},
	}); err != nil {
		return nil, err
	}
	if !cache.WaitForCacheSync(ctx.Done(), dir.HasSynced) {
		return nil, fmt.Errorf("%s: pools and quotas did not sync", Name)
	}
	return p, nil
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

func unwrap(obj any) any {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}

// TenantOf is the tenant of a pod seen with a joined namespace.
func TenantOf(namespace string) string {
	if t, _, ok := tenantns.Split(namespace); ok {
		return t
	}
	return rootTenant
}

func requests(pod *corev1.Pod) usage.Amounts {
	return usage.FromList(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
}

// countPod counts a bound, running pod against its tenant in its node's
// pool. The pool comes from the node, never from the pod's kplex.io/pool
// annotation, which its tenant can write.
func (p *Plugin) countPod(obj any) {
	pod, ok := unwrap(obj).(*corev1.Pod)
	if !ok {
		return
	}
	if pod.Spec.NodeName == "" {
		p.arrivals.saw(pod, time.Now())
		return
	}
	p.arrivals.forget(pod.UID)
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		p.tracker.RemovePod(pod.UID)
		return
	}
	if p.tracker.HasPod(pod.UID) {
		return // counted when reserved, or when first seen bound
	}
	p.tracker.SetPod(pod.UID, usage.Key{Tenant: TenantOf(pod.Namespace), Pool: p.poolOfNode(pod.Spec.NodeName)}, requests(pod))
}

func (p *Plugin) forgetPod(obj any) {
	if pod, ok := unwrap(obj).(*corev1.Pod); ok {
		p.tracker.RemovePod(pod.UID)
		p.arrivals.forget(pod.UID)
	}
}

func (p *Plugin) countNode(obj any) {
	if n, ok := unwrap(obj).(*corev1.Node); ok {
		p.tracker.SetNode(n.Name, usage.FromList(n.Status.Allocatable))
	}
}

func (p *Plugin) poolOfNode(name string) string {
	node, err := p.handle.SharedInformerFactory().Core().V1().Nodes().Lister().Get(name)
	if err != nil {
		return ""
	}
	return p.dir.PoolOf(node.Labels)
}

// Less orders the queue: the tenant with the smaller weighted dominant
// share first, then higher priority, then the older entity.
func (p *Plugin) Less(a, b fwk.QueuedEntityInfo) bool {
	if ta, tb := entityTenant(a), entityTenant(b); ta != tb {
		sa := p.tracker.DominantShare(ta) / weight(p.dir.Quota(ta))
		sb := p.tracker.DominantShare(tb) / weight(p.dir.Quota(tb))
		if sa != sb {
			return sa < sb
		}
	}
	pa, pb := a.GetPriority(), b.GetPriority()
	return pa > pb || (pa == pb && a.GetTimestamp().Before(b.GetTimestamp()))
}

func entityTenant(e fwk.QueuedEntityInfo) string {
	if n, ok := e.(interface{ GetNamespace() string }); ok {
		return TenantOf(n.GetNamespace())
	}
	return rootTenant
}

// cycle is what PreFilter works out once for Filter and Reserve.
type cycle struct {
	tenant   string
	requests usage.Amounts

	mu       sync.Mutex
	verdicts map[string]string // pool → why it cannot take the pod ("" if it can)
}

func (c *cycle) Clone() fwk.StateData { return c }

const stateKey fwk.StateKey = Name

// PreFilter works out the pod's tenant and requests.
func (p *Plugin) PreFilter(_ context.Context, state fwk.CycleState, pod *corev1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	state.Write(stateKey, &cycle{tenant: TenantOf(pod.Namespace), requests: requests(pod), verdicts: map[string]string{}})
	return nil, nil
}

// PreFilterExtensions is nil: what a pool admits does not depend on the
// other pods on a node.
func (p *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

func cycleOf(state fwk.CycleState, pod *corev1.Pod) *cycle {
	if c, err := state.Read(stateKey); err == nil {
		return c.(*cycle)
	}
	return &cycle{tenant: TenantOf(pod.Namespace), requests: requests(pod), verdicts: map[string]string{}}
}

// Filter refuses a node whose pool does not admit the pod's tenant, or in
// which the tenant's quota or the pool's limits would be exceeded. The
// messages name no other tenant.
func (p *Plugin) Filter(_ context.Context, state fwk.CycleState, pod *corev1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	node := nodeInfo.Node()
	if node == nil {
		return fwk.NewStatus(fwk.Error, "node not found")
	}
	c := cycleOf(state, pod)
	pool := p.dir.PoolOf(node.Labels)
	c.mu.Lock()
	why, seen := c.verdicts[pool]
	if !seen {
		why = p.verdict(c.tenant, pool, c.requests)
		if why == "" {
			why = p.securityVerdict(pool, pod)
		}
		c.verdicts[pool] = why
	}
	c.mu.Unlock()
	if why != "" {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, why)
	}
	if np := p.dir.Pool(pool); np != nil {
		if handler := pools.SandboxHandler(np); !pools.HasRuntimeHandler(node, handler) {
			// The node agent would refuse the pod; it waits here instead,
			// for a node that has the sandbox.
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
				fmt.Sprintf("node(s) without the %s sandbox (runtime handler %s) pool %s requires", np.Spec.Sandbox, handler, pool))
		}
	}
	return nil
}

// securityVerdict says why the pod does not meet the Pod Security level
// its pool requires, or "". The details name only the pod's own fields.
func (p *Plugin) securityVerdict(pool string, pod *corev1.Pod) string {
	np := p.dir.Pool(pool)
	if np == nil || np.Spec.PodSecurity == "" {
		return ""
	}
	if v := podsecurity.Check(np.Spec.PodSecurity, pod); v != nil {
		return fmt.Sprintf("pool %s requires PodSecurity %q: %s", pool, v.Level, v.Detail)
	}
	return ""
}

// verdict says why pool cannot take requests of tenant's, or "".
func (p *Plugin) verdict(tenantName, pool string, req usage.Amounts) string {
	if pool == "" {
		return "" // a node in no pool is everyone's
	}
	np := p.dir.Pool(pool)
	if np == nil {
		return "node(s) in a pool that does not exist"
	}
	if !pools.Admits(np, tenantName) {
		return "node(s) in a pool this tenant may not use"
	}
	for name, need := range req {
		if limit, ok := np.Spec.Limits[name]; ok && p.tracker.PoolUsed(pool, name)+need > limit.MilliValue() {
			return fmt.Sprintf("pool %s limit %s reached", pool, name)
		}
		if why := p.quotaVerdict(tenantName, pool, name, need); why != "" {
			return why
		}
	}
	return ""
}

// quotaVerdict checks one resource against the tenant's quota in pool:
// within nominal it fits; beyond it the tenant borrows, up to its
// borrowing limit, what the tenants with quota in the pool leave unused
// of theirs (Kueue's cohort, one per pool).
func (p *Plugin) quotaVerdict(tenantName, pool string, name corev1.ResourceName, need int64) string {
	rq := resourceQuota(p.dir.Quota(tenantName), pool, name)
	if rq == nil {
		return ""
	}
	used := p.tracker.Used(usage.Key{Tenant: tenantName, Pool: pool}, name)
	nominal := rq.NominalQuota.MilliValue()
	if used+need <= nominal {
		return ""
	}
	exhausted := fmt.Sprintf("tenant quota %s exhausted in pool %s", name, pool)
	if rq.BorrowingLimit != nil && used+need > nominal+rq.BorrowingLimit.MilliValue() {
		return exhausted
	}
	var cohortNominal, cohortUsed int64
	for _, q := range p.dir.Quotas() {
		if other := resourceQuota(q, pool, name); other != nil {
			cohortNominal += other.NominalQuota.MilliValue()
			cohortUsed += p.tracker.Used(usage.Key{Tenant: q.Name, Pool: pool}, name)
		}
	}
	if cohortUsed+need > cohortNominal {
		return exhausted
	}
	return ""
}

// Reserve counts the pod against its tenant in the node's pool before it
// is bound, checking the quota once more: the binding cycle of an earlier
// pod may have charged the same quota since Filter.
func (p *Plugin) Reserve(_ context.Context, state fwk.CycleState, pod *corev1.Pod, nodeName string) *fwk.Status {
	c := cycleOf(state, pod)
	pool := p.poolOfNode(nodeName)
	if why := p.verdict(c.tenant, pool, c.requests); why != "" {
		return fwk.NewStatus(fwk.Unschedulable, why)
	}
	p.tracker.SetPod(pod.UID, usage.Key{Tenant: c.tenant, Pool: pool}, c.requests)
	return nil
}

// Unreserve stops counting a pod whose binding failed.
func (p *Plugin) Unreserve(_ context.Context, _ fwk.CycleState, pod *corev1.Pod, _ string) {
	p.tracker.RemovePod(pod.UID)
}

// Bind binds the pod in its own tenant (the client's transport routes the
// joined namespace there) and names the node's pool on the pod.
func (p *Plugin) Bind(ctx context.Context, _ fwk.CycleState, pod *corev1.Pod, nodeName string) *fwk.Status {
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: nodeName},
	}
	pool := p.poolOfNode(nodeName)
	if pool != "" {
		binding.Annotations = map[string]string{schedulingv1alpha1.PoolAnnotation: pool}
	}
	if err := p.handle.ClientSet().CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fwk.AsStatus(fmt.Errorf("binding %s/%s to %s: %w", pod.Namespace, pod.Name, nodeName, err))
	}
	p.observeBound(pod, pool)
	klog.FromContext(ctx).V(3).Info("Bound", "pod", klog.KObj(pod), "node", nodeName)
	return nil
}

// SignPod lets opportunistic batching reuse a placement only between pods
// of one tenant: pools and quotas differ between tenants.
func (p *Plugin) SignPod(_ context.Context, pod *corev1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: "kplex.io/tenant", Value: TenantOf(pod.Namespace)}}, nil
}

// EventsToRegister retries pods refused here when quota frees (a pod
// leaves or ends), nodes change, or pools and quotas change.
func (p *Plugin) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete | fwk.Update}},
		// Any Node update: a node may announce a sandbox (status.runtimeHandlers).
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.Update}},
		{Event: fwk.ClusterEvent{Resource: fwk.EventResource(gvk(schedulingv1alpha1.NodePoolsResource.Resource)), ActionType: fwk.All}},
		{Event: fwk.ClusterEvent{Resource: fwk.EventResource(gvk(schedulingv1alpha1.TenantQuotasResource.Resource)), ActionType: fwk.All}},
	}, nil
}

// gvk is how the scheduler names a custom resource in cluster events.
func gvk(resource string) string {
	return resource + "." + schedulingv1alpha1.SchemeGroupVersion.Version + "." + schedulingv1alpha1.GroupName
}
