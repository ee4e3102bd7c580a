package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	tenancyv1alpha1 "github.com/kplex/kplex/apis/tenancy/v1alpha1"
	"github.com/kplex/kplex/apiserver/partition"
	"github.com/kplex/kplex/apiserver/tenantauth"
	"github.com/kplex/kplex/apiserver/tenantmetrics"
	"github.com/kplex/kplex/tenant"
)

// SystemNamespaces are created in every tenant, as in any Kubernetes cluster.
var SystemNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}

// lateWriteSweep is longer than the apiserver's default request timeout (60s).
const lateWriteSweep = 75 * time.Second

// Options configure a Controller.
type Options struct {
	// Loopback reaches this apiserver as a privileged identity.
	Loopback *rest.Config
	// Etcd is a client of the apiserver's etcd, used to remove a deleted
	// tenant's keys.
	Etcd *clientv3.Client
	// EtcdPrefix is the apiserver's key prefix in etcd (default "/registry").
	EtcdPrefix string
	// Prefixes are the resource key prefixes the apiserver's storage uses.
	Prefixes *partition.Prefixes
	// Registry is kept up to date with the Tenants the informer sees.
	Registry *Registry
	// Workers reconcile tenants in parallel. Zero means 4.
	Workers int
	// PolicyHas, when set, reports whether the authorizer's policy has seen
	// a tenant's ClusterRoleBinding; a tenant is Ready once its admin's
	// binding is in force.
	PolicyHas func(tenant, clusterRoleBinding string) bool
}

// Controller bootstraps and removes tenants.
type Controller struct {
	opts     Options
	dynamic  dynamic.Interface
	informer cache.SharedIndexInformer
	queue    workqueue.TypedRateLimitingInterface[string]

	// arrived is when the informer first saw each tenant not yet Ready:
	// a finer start of its provisioning than its creation timestamp,
	// which has whole seconds.
	mu      sync.Mutex
	arrived map[types.UID]time.Time
}

// NewController returns a controller; Run starts it.
func NewController(opts Options) (*Controller, error) {
	if opts.Workers == 0 {
		opts.Workers = 4
	}
	client, err := dynamic.NewForConfig(opts.Loopback)
	if err != nil {
		return nil, fmt.Errorf("building the tenant client: %w", err)
	}
	c := &Controller{
		opts:    opts,
		dynamic: client,
		arrived: map[types.UID]time.Time{},
		informer: dynamicinformer.NewFilteredDynamicInformer(client, tenancyv1alpha1.TenantsResource, "", 0,
			cache.Indexers{}, nil).Informer(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "tenants"}),
	}
	_, err = c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.observe(obj) },
		UpdateFunc: func(_, obj any) { c.observe(obj) },
		DeleteFunc: func(obj any) {
			if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tombstone.Obj
			}
			if u, ok := obj.(*unstructured.Unstructured); ok {
				c.mu.Lock()
				delete(c.arrived, u.GetUID())
				c.mu.Unlock()
				opts.Registry.forget(u.GetName())
				c.queue.Add(u.GetName())
				// A write admitted before the deletion may still land; sweep
				// again once every such request has timed out.
				c.queue.AddAfter(u.GetName(), lateWriteSweep)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Controller) observe(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	c.opts.Registry.observe(u)
	c.mu.Lock()
	if _, seen := c.arrived[u.GetUID()]; !seen && !ready(u) && u.GetDeletionTimestamp() == nil {
		c.arrived[u.GetUID()] = time.Now()
	} else if u.GetDeletionTimestamp() != nil {
		delete(c.arrived, u.GetUID())
	}
	c.mu.Unlock()
	c.queue.Add(u.GetName())
}

// provisioned records how long tenant t took to become Ready: from when
// the informer first saw it if that was within a second of its creation
// timestamp, else (the apiserver started later) from the timestamp.
func (c *Controller) provisioned(t *unstructured.Unstructured) {
	c.mu.Lock()
	arrived, seen := c.arrived[t.GetUID()]
	delete(c.arrived, t.GetUID())
	c.mu.Unlock()
	start := t.GetCreationTimestamp().Time
	if seen && !arrived.Before(start) && arrived.Sub(start) < time.Second {
		start = arrived
	}
	if !start.IsZero() {
		tenantmetrics.ObserveProvisioning(time.Since(start))
	}
}

// TenantPhases counts the Tenant objects by status.phase ("" for none
// yet), as the informer sees them.
func (c *Controller) TenantPhases() map[string]int {
	out := map[string]int{}
	for _, obj := range c.informer.GetStore().List() {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
			out[phase]++
		}
	}
	return out
}

// Run starts the informer and the workers and blocks until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	go c.informer.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.informer.HasSynced) {
		return
	}
	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Go(func() { wait.UntilWithContext(ctx, c.work, time.Second) })
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
}

// HasSynced reports whether the registry reflects every existing Tenant.
func (c *Controller) HasSynced() bool { return c.informer.HasSynced() }

func (c *Controller) work(ctx context.Context) {
	for {
		name, quit := c.queue.Get()
		if quit {
			return
		}
		err := c.reconcile(ctx, name)
		switch {
		case apierrors.IsConflict(err):
			// The informer had not yet seen our own last write; the
			// retry works from the newer object.
			klog.V(2).InfoS("Reconciling tenant: conflict, retrying", "tenant", name)
			c.queue.AddRateLimited(name)
		case err != nil:
			klog.ErrorS(err, "Reconciling tenant", "tenant", name)
			c.queue.AddRateLimited(name)
		default:
			c.queue.Forget(name)
		}
		c.queue.Done(name)
	}
}

// writeDrainLimit bounds how long deletion waits for a tenant's writes in
// flight: longer than the apiserver's request timeout (60s).
const writeDrainLimit = 70 * time.Second

func (c *Controller) reconcile(ctx context.Context, name string) error {
	obj, exists, err := c.informer.GetStore().GetByKey(name)
	if err != nil {
		return err
	}
	if !exists {
		// Deleted without our finalizer (or after it was removed): make
		// sure nothing of it is left, unless a new tenant took the name.
		if c.opts.Registry.Serving(name) {
			return nil
		}
		c.opts.Registry.drained(ctx, name, writeDrainLimit)
		return c.purge(ctx, name)
	}
	t := obj.(*unstructured.Unstructured)
	if t.GetDeletionTimestamp() != nil {
		if phase, _, _ := unstructured.NestedString(t.Object, "status", "phase"); phase != string(tenancyv1alpha1.TenantTerminating) {
			if t, err = c.setStatus(ctx, t, tenancyv1alpha1.TenantTerminating, metav1.ConditionFalse, "Terminating", "the tenant's data is being removed"); err != nil {
				return err
			}
		}
		// A write admitted just before the tenant stopped being served
		// must not land after its keys are gone.
		c.opts.Registry.drained(ctx, name, writeDrainLimit)
		if err := c.purge(ctx, name); err != nil {
			return err
		}
		return c.removeFinalizer(ctx, t)
	}
	if ready(t) {
		// Ready is written before the finalizer, so that the informer's
		// copy of our own status write is never taken for an unbootstrapped
		// tenant: here only the finalizer may still be missing.
		_, err := c.addFinalizer(ctx, t)
		return err
	}
	start := time.Now()
	if err := c.bootstrap(ctx, name); err != nil {
		_, _ = c.setStatus(ctx, t, tenancyv1alpha1.TenantProvisioning, metav1.ConditionFalse, "BootstrapFailed", err.Error())
		return fmt.Errorf("bootstrapping tenant %q: %w", name, err)
	}
	klog.V(2).InfoS("Tenant bootstrapped", "tenant", name, "duration", time.Since(start))
	t, err = c.setStatus(ctx, t, tenancyv1alpha1.TenantReady, metav1.ConditionTrue, "Bootstrapped", "the tenant is serving at "+tenant.Path(name))
	if err != nil {
		return err
	}
	c.provisioned(t)
	_, err = c.addFinalizer(ctx, t)
	return err
}

// waitForPolicy waits until the admin's binding is in the authorizer's
// cache, so that the admin's first request after Ready is allowed.
func (c *Controller) waitForPolicy(ctx context.Context, name string) error {
	if c.opts.PolicyHas == nil {
		return nil
	}
	binding := tenantauth.AdminsBinding().Name
	err := wait.PollUntilContextTimeout(ctx, time.Millisecond, policyWait, true, func(context.Context) (bool, error) {
		return c.opts.PolicyHas(name, binding), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the authorizer to see the %s binding: %w", binding, err)
	}
	return nil
}

// policyWait bounds waitForPolicy; the watch delivers within milliseconds.
const policyWait = 30 * time.Second

// tenantConfig returns a copy of cfg that addresses tenant name.
func tenantConfig(cfg *rest.Config, name string) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Host = cfg.Host + tenant.Path(name)
	return out
}

// bootstrap creates what every Kubernetes cluster has of its own: the system
// namespaces and its admin's binding. The default/kubernetes Service and the
// default RBAC policy are root's, shared with every tenant by the
// partitioned storage. It is idempotent.
func (c *Controller) bootstrap(ctx context.Context, name string) error {
	client, err := kubernetes.NewForConfig(tenantConfig(c.opts.Loopback, name))
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	record := func(err error) {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	// The admin's grant goes first and must be in force before the system
	// namespaces appear: a tenant counts as serving once its default
	// namespace can be read, and from then on its admin may act.
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, tenantauth.AdminsBinding(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := c.waitForPolicy(ctx, name); err != nil {
		return err
	}
	for _, ns := range SystemNamespaces {
		wg.Go(func() {
			_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			record(err)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func ready(t *unstructured.Unstructured) bool {
	conditions, _, _ := unstructured.NestedSlice(t.Object, "status", "conditions")
	for _, c := range conditions {
		m, _ := c.(map[string]any)
		if m["type"] == tenancyv1alpha1.ConditionReady && m["status"] == string(metav1.ConditionTrue) {
			return true
		}
	}
	return false
}

func (c *Controller) tenants() dynamic.ResourceInterface {
	return c.dynamic.Resource(tenancyv1alpha1.TenantsResource)
}

func (c *Controller) addFinalizer(ctx context.Context, t *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	for _, f := range t.GetFinalizers() {
		if f == tenancyv1alpha1.CleanupFinalizer {
			return t, nil
		}
	}
	t = t.DeepCopy()
	t.SetFinalizers(append(t.GetFinalizers(), tenancyv1alpha1.CleanupFinalizer))
	return c.tenants().Update(ctx, t, metav1.UpdateOptions{})
}

func (c *Controller) removeFinalizer(ctx context.Context, t *unstructured.Unstructured) error {
	var kept []string
	for _, f := range t.GetFinalizers() {
		if f != tenancyv1alpha1.CleanupFinalizer {
			kept = append(kept, f)
		}
	}
	if len(kept) == len(t.GetFinalizers()) {
		return nil
	}
	t = t.DeepCopy()
	t.SetFinalizers(kept)
	_, err := c.tenants().Update(ctx, t, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// setStatus writes phase and the Ready condition and returns the updated object.
func (c *Controller) setStatus(ctx context.Context, t *unstructured.Unstructured, phase tenancyv1alpha1.TenantPhase, status metav1.ConditionStatus, reason, message string) (*unstructured.Unstructured, error) {
	var st tenancyv1alpha1.TenantStatus
	if raw, ok := t.Object["status"].(map[string]any); ok {
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st)
	}
	st.Path = tenant.Path(t.GetName())
	st.Phase = phase
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: tenancyv1alpha1.ConditionReady, Status: status, Reason: reason, Message: message,
		ObservedGeneration: t.GetGeneration(),
	})
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
	if err != nil {
		return nil, err
	}
	t = t.DeepCopy()
	t.Object["status"] = raw
	updated, err := c.tenants().UpdateStatus(ctx, t, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("updating status of tenant %q: %w", t.GetName(), err)
	}
	return updated, nil
}
