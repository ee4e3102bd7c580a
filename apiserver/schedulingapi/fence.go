package schedulingapi

import (
	"context"
	"fmt"
	"io"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/initializer"
	"k8s.io/client-go/dynamic"
	api "k8s.io/kubernetes/pkg/apis/core"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/client/pools"
	"github.com/kplex/kplex/tenant"
)

// FencePluginName is the name the node fence is registered and enabled by.
const FencePluginName = "TenantNodeFence"

var (
	podsResource  = api.Resource("pods")
	nodesResource = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
)

// Fence refuses a tenant's pod created with spec.nodeName, or a binding,
// onto a node the tenant's pods may not use: the scheduler's fence would
// mean nothing if a pod could name its node itself.
type Fence struct {
	*admission.Handler
	client dynamic.Interface
}

var (
	_ admission.ValidationInterface  = &Fence{}
	_ initializer.WantsDynamicClient = &Fence{}
)

// RegisterFence adds the node fence to plugins as FencePluginName.
func RegisterFence(plugins *admission.Plugins) {
	plugins.Register(FencePluginName, func(io.Reader) (admission.Interface, error) {
		return &Fence{Handler: admission.NewHandler(admission.Create)}, nil
	})
}

// SetDynamicClient is how the server hands the plugin its loopback client.
func (f *Fence) SetDynamicClient(c dynamic.Interface) { f.client = c }

// ValidateInitialization checks the plugin got its client.
func (f *Fence) ValidateInitialization() error {
	if f.client == nil {
		return fmt.Errorf("%s needs a dynamic client", FencePluginName)
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
	ok, err := f.mayUse(ctx, t, node)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if !ok {
		return apierrors.NewInvalid(a.GetKind().GroupKind(), a.GetName(), field.ErrorList{
			field.Forbidden(path, fmt.Sprintf("node %q is not one this tenant's pods may use (see kubectl get nodes)", node)),
		})
	}
	return nil
}

// mayUse reads the node and the pools from root. A node that does not
// exist is left to the node agent to refuse, as upstream does.
func (f *Fence) mayUse(ctx context.Context, t, node string) (bool, error) {
	n, err := f.client.Resource(nodesResource).Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading node %s: %w", node, err)
	}
	list, err := f.client.Resource(schedulingv1alpha1.NodePoolsResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, fmt.Errorf("listing node pools: %w", err)
	}
	all := make([]*schedulingv1alpha1.NodePool, 0, len(list.Items))
	for i := range list.Items {
		p, err := pools.Decode(&list.Items[i])
		if err != nil {
			return false, err
		}
		all = append(all, p)
	}
	return pools.MayUse(t, n.GetLabels(), all), nil
}
