package schedulingapi

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/initializer"
	"k8s.io/client-go/informers"
	corev1listers "k8s.io/client-go/listers/core/v1"
	api "k8s.io/kubernetes/pkg/apis/core"

	"github.com/kplex/kplex/client/pools"
	"github.com/kplex/kplex/podsecurity"
	"github.com/kplex/kplex/tenant"
)

// FencePluginName is the name the node fence is registered and enabled by.
const FencePluginName = "TenantNodeFence"

var podsResource = api.Resource("pods")

// Fence refuses a tenant's pod created with spec.nodeName, or a binding,
// onto a node the tenant's pods may not use: the scheduler's fence would
// mean nothing if a pod could name its node itself. It reads nodes from
// the server's informers and pools from the server's pool cache, so a
// binding costs no request.
type Fence struct {
	*admission.Handler
	nodes corev1listers.NodeLister
	pools atomic.Pointer[pools.Cache]
}

var (
	_ admission.ValidationInterface                = &Fence{}
	_ initializer.WantsExternalKubeInformerFactory = &Fence{}
)

// NewFence returns the node fence; Register adds it to a server's
// plugins, SetPools gives it the pools once the server has them.
func NewFence() *Fence {
	return &Fence{Handler: admission.NewHandler(admission.Create)}
}

// Register adds f to plugins as FencePluginName.
func (f *Fence) Register(plugins *admission.Plugins) {
	plugins.Register(FencePluginName, func(io.Reader) (admission.Interface, error) { return f, nil })
}

// SetPools gives the fence the server's pool cache. Before it, a tenant
// may name only nodes in no pool.
func (f *Fence) SetPools(c *pools.Cache) { f.pools.Store(c) }

// SetExternalKubeInformerFactory is how the server hands the plugin root's
// informers: the nodes are root's.
func (f *Fence) SetExternalKubeInformerFactory(factory informers.SharedInformerFactory) {
	nodes := factory.Core().V1().Nodes()
	f.nodes = nodes.Lister()
	f.SetReadyFunc(nodes.Informer().HasSynced)
}

// ValidateInitialization checks the plugin got its informers.
func (f *Fence) ValidateInitialization() error {
	if f.nodes == nil {
		return fmt.Errorf("%s needs the server's informers", FencePluginName)
	}
	return nil
}

// Validate checks the node a tenant's pod is created on or bound to.
func (f *Fence) Validate(ctx context.Context, a admission.Attributes, _ admission.ObjectInterfaces) error {
	t := tenant.FromContext(ctx)
	if t == tenant.Root || t == tenant.Wildcard || a.GetResource().GroupResource() != podsResource {
		return nil
	}
	var node string
	var path *field.Path
	switch a.GetSubresource() {
	case "":
		pod, ok := a.GetObject().(*api.Pod)
		if !ok {
			return nil
		}
		node, path = pod.Spec.NodeName, field.NewPath("spec", "nodeName")
	case "binding":
		b, ok := a.GetObject().(*api.Binding)
		if !ok {
			return nil
		}
		node, path = b.Target.Name, field.NewPath("target", "name")
	default:
		return nil
	}
	if node == "" {
		return nil
	}
	if !f.WaitForReady() {
		return admission.NewForbidden(a, fmt.Errorf("%s: the server's node cache is not ready yet", FencePluginName))
	}
	n, err := f.nodes.Get(node)
	if apierrors.IsNotFound(err) {
		return nil // left to the node agent to refuse, as upstream does
	}
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("reading node %s: %w", node, err))
	}
	var ok bool
	if c := f.pools.Load(); c != nil {
		ok = c.MayUse(t, n.Labels)
	} else {
		ok = pools.MayUse(t, n.Labels, nil)
	}
	if !ok {
		return apierrors.NewInvalid(a.GetKind().GroupKind(), a.GetName(), field.ErrorList{
			field.Forbidden(path, fmt.Sprintf("node %q is not one this tenant's pods may use (see kubectl get nodes)", node)),
		})
	}
	if pod, isPod := a.GetObject().(*api.Pod); isPod {
		return f.meetsPoolLevel(a, pod, n.Labels, path)
	}
	return nil
}

// meetsPoolLevel refuses a pod naming a node whose pool requires a Pod
// Security level the pod does not meet: the scheduler keeps such pods off
// the pool, and naming the node must not get around it.
func (f *Fence) meetsPoolLevel(a admission.Attributes, pod *api.Pod, nodeLabels map[string]string, path *field.Path) error {
	c := f.pools.Load()
	if c == nil {
		return nil
	}
	np := c.Pool(c.PoolOf(nodeLabels))
	if np == nil || np.Spec.PodSecurity == "" {
		return nil
	}
	v, err := podsecurity.CheckInternal(np.Spec.PodSecurity, pod)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if v != nil {
		return apierrors.NewInvalid(a.GetKind().GroupKind(), a.GetName(), field.ErrorList{
			field.Forbidden(path, fmt.Sprintf("node %q is in pool %s, which requires PodSecurity %q: %s", pod.Spec.NodeName, np.Name, v.Level, v.Detail)),
		})
	}
	return nil
}
