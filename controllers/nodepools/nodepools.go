// Package nodepools keeps the management plane's NodePools and
// TenantQuotas true to their nodes and pods: it applies a pool's template
// (labels and taints) to the pool's nodes, and writes the status of pools
// (nodes, allocatable, requested) and of quotas (used and borrowed, per
// pool). It runs once, in the controller manager, over root's nodes and
// one cross-tenant pod informer.
package nodepools

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/capacity"
	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/crosstenant/tenantns"
	"github.com/kplex/kplex/client/pools"
)

// DefaultPeriod is how often statuses and templates are reconciled.
const DefaultPeriod = 5 * time.Second

// Options configure the controller.
type Options struct {
	// Loopback is root's config with the right to read every tenant's
	// pods (system:masters). Required.
	Loopback *rest.Config
	// Period between reconciles; 0 is DefaultPeriod.
	Period time.Duration
	// OnReport, if set, receives each reconcile's capacity report (the
	// controller manager exports it as metrics).
	OnReport func(*capacity.Report)
}

type controller struct {
	onReport func(*capacity.Report)
	root     kubernetes.Interface
	dyn      dynamic.Interface
	pools    *pools.Cache
	nodes    cache.SharedIndexInformer
	pods     cache.SharedIndexInformer
}

// Run reconciles every Period until ctx ends.
func Run(ctx context.Context, opts Options) error {
	if opts.Loopback == nil {
		return fmt.Errorf("nodepools: Options.Loopback is required")
	}
	if opts.Period <= 0 {
		opts.Period = DefaultPeriod
	}
	c := &controller{onReport: opts.OnReport}
	var err error
	if c.root, err = kubernetes.NewForConfig(opts.Loopback); err != nil {
		return err
	}
	if c.dyn, err = dynamic.NewForConfig(opts.Loopback); err != nil {
		return err
	}
	cross, err := kubernetes.NewForConfig(crosstenant.Config(opts.Loopback))
	if err != nil {
		return err
	}
	c.pools = pools.New(c.dyn)
	c.pools.Run(ctx)
	factory := informers.NewSharedInformerFactory(c.root, 0)
	c.nodes = factory.Core().V1().Nodes().Informer()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	running := fields.ParseSelectorOrDie(fmt.Sprintf("status.phase!=%s,status.phase!=%s", corev1.PodSucceeded, corev1.PodFailed))
	c.pods = cache.NewSharedIndexInformer(crosstenant.ListWatchSelected(cross.CoreV1().RESTClient(), "pods", running), &corev1.Pod{}, 0, cache.Indexers{})
	// Same-named pods of two tenants stay two: namespaces are joined.
	if err := c.pods.SetTransform(tenantns.Transform); err != nil {
		return err
	}
	go c.pods.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), c.pools.HasSynced, c.nodes.HasSynced, c.pods.HasSynced) {
		return nil // stopped before the caches filled: not a failure
	}
	logger := klog.FromContext(ctx).WithName("nodepools")
	tick := time.NewTicker(opts.Period)
	defer tick.Stop()
	for {
		if err := c.reconcile(ctx); err != nil {
			logger.Error(err, "Reconciling node pools")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (c *controller) reconcile(ctx context.Context) error {
	var nodes []*corev1.Node
	for _, obj := range c.nodes.GetStore().List() {
		n := obj.(*corev1.Node)
		nodes = append(nodes, n)
		if p := c.pools.Pool(c.pools.PoolOf(n.Labels)); p != nil {
			if err := c.applyTemplate(ctx, n, p); err != nil {
				return err
			}
		}
	}
	var pods []*corev1.Pod
	for _, obj := range c.pods.GetStore().List() {
		pods = append(pods, obj.(*corev1.Pod))
	}
	report := capacity.Compute(nodes, pods, c.pools.Pools(), c.pools.Quotas())
	if c.onReport != nil {
		c.onReport(report)
	}
	for _, obj := range c.pools.Pools() {
		s := &schedulingv1alpha1.NodePoolStatus{}
		if p := report.Pool(obj.Name); p != nil && p.Nodes > 0 {
			s = &schedulingv1alpha1.NodePoolStatus{Nodes: int32(p.Nodes), Allocatable: p.Allocatable, Requested: p.Requested}
		}
		sandboxStatus(s, obj, report.Pool(obj.Name))
		if err := c.writeStatus(ctx, schedulingv1alpha1.NodePoolsResource, obj.Name, &obj.Status, s); err != nil {
			return err
		}
	}
	for _, q := range c.pools.Quotas() {
		s := quotaStatus(q, report)
		if err := c.writeStatus(ctx, schedulingv1alpha1.TenantQuotasResource, q.Name, &q.Status, s); err != nil {
			return err
		}
	}
	return nil
}

// sandboxStatus says, for a pool that requires a sandbox, how many of its
// nodes have it: a pool whose nodes all lack it runs none of its pods, and
// its operator should see why.
func sandboxStatus(s *schedulingv1alpha1.NodePoolStatus, p *schedulingv1alpha1.NodePool, row *capacity.Pool) {
	handler := pools.SandboxHandler(p)
	if handler == "" {
		return
	}
	nodes := 0
	if row != nil {
		nodes, s.SandboxedNodes = row.Nodes, int32(row.SandboxedNodes)
	}
	s.Conditions = slices.Clone(p.Status.Conditions)
	cond := metav1.Condition{Type: schedulingv1alpha1.ConditionSandboxReady, Status: metav1.ConditionTrue, Reason: "NodesHaveSandbox",
		Message: fmt.Sprintf("%d of %d nodes have the %s sandbox (runtime handler %s)", s.SandboxedNodes, nodes, p.Spec.Sandbox, handler)}
	if s.SandboxedNodes == 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, "NoNodeHasSandbox"
		cond.Message = fmt.Sprintf("none of the pool's %d nodes has the %s sandbox (runtime handler %s); its pods wait", nodes, p.Spec.Sandbox, handler)
	}
	meta.SetStatusCondition(&s.Conditions, cond)
}

// quotaStatus is, for each pool the quota names, what the tenant's pods
// there request of the resources it bounds, and how much of that is
// beyond the nominal quota (borrowed).
func quotaStatus(q *schedulingv1alpha1.TenantQuota, report *capacity.Report) *schedulingv1alpha1.TenantQuotaStatus {
	s := &schedulingv1alpha1.TenantQuotaStatus{}
	for _, pq := range q.Spec.Pools {
		u := schedulingv1alpha1.PoolUsage{Name: pq.Name, Used: corev1.ResourceList{}, Borrowed: corev1.ResourceList{}}
		var tp capacity.TenantPool
		for _, row := range report.TenantPools {
			if row.Tenant == q.Name && row.Pool == pq.Name {
				tp = row
			}
		}
		for _, rq := range pq.Resources {
			have, ok := tp.Requested[rq.Name]
			if !ok {
				have = *resource.NewQuantity(0, rq.NominalQuota.Format)
			}
			u.Used[rq.Name] = have
			u.Borrowed[rq.Name] = tp.Borrowed[rq.Name]
		}
		s.Pools = append(s.Pools, u)
	}
	return s
}

// writeStatus writes want as the status of a pool or quota unless cur
// already says the same.
func (c *controller) writeStatus(ctx context.Context, gvr schema.GroupVersionResource, name string, cur, want any) error {
	if semanticEqual(cur, want) {
		return nil
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(want)
	if err != nil {
		return err
	}
	res := c.dyn.Resource(gvr)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := res.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		u.Object["status"] = content
		_, err = res.UpdateStatus(ctx, u, metav1.UpdateOptions{})
		return err
	})
}

// applyTemplate adds the pool's labels and taints to a node that lacks
// them; it removes nothing (a node may carry more).
func (c *controller) applyTemplate(ctx context.Context, n *corev1.Node, p *schedulingv1alpha1.NodePool) error {
	t := p.Spec.Template
	missingLabel := false
	for k, v := range t.Metadata.Labels {
		missingLabel = missingLabel || n.Labels[k] != v
	}
	missingTaint := slices.ContainsFunc(t.Spec.Taints, func(want corev1.Taint) bool {
		return !slices.ContainsFunc(n.Spec.Taints, func(have corev1.Taint) bool { return have.MatchTaint(&want) && have.Value == want.Value })
	})
	if !missingLabel && !missingTaint {
		return nil
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := c.root.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		maps.Copy(cur.Labels, t.Metadata.Labels)
		for _, want := range t.Spec.Taints {
			cur.Spec.Taints = slices.DeleteFunc(cur.Spec.Taints, func(have corev1.Taint) bool { return have.MatchTaint(&want) })
			cur.Spec.Taints = append(cur.Spec.Taints, want)
		}
		_, err = c.root.CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func semanticEqual(a, b any) bool { return equality.Semantic.DeepEqual(a, b) }
