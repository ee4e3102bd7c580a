package schedulingapi

import (
	"context"
	"fmt"
	"io"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/initializer"
	"k8s.io/client-go/dynamic"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/tenant"
)

// PluginName is the name the admission plugin is registered and enabled by.
const PluginName = "TenantQuotaPools"

// Plugin refuses a management-plane TenantQuota that names a NodePool
// that does not exist: a quota for a mistyped pool would bound nothing.
type Plugin struct {
	*admission.Handler
	client dynamic.Interface
}

var (
	_ admission.ValidationInterface  = &Plugin{}
	_ initializer.WantsDynamicClient = &Plugin{}
)

// Register adds the plugin to plugins as PluginName.
func Register(plugins *admission.Plugins) {
	plugins.Register(PluginName, func(io.Reader) (admission.Interface, error) {
		return &Plugin{Handler: admission.NewHandler(admission.Create, admission.Update)}, nil
	})
}

// SetDynamicClient is how the server hands the plugin its loopback client.
func (p *Plugin) SetDynamicClient(c dynamic.Interface) { p.client = c }

// ValidateInitialization checks the plugin got its client.
func (p *Plugin) ValidateInitialization() error {
	if p.client == nil {
		return fmt.Errorf("%s needs a dynamic client", PluginName)
	}
	return nil
}

// Validate checks every pool a TenantQuota names.
func (p *Plugin) Validate(ctx context.Context, a admission.Attributes, _ admission.ObjectInterfaces) error {
	if a.GetResource() != schedulingv1alpha1.TenantQuotasResource || a.GetSubresource() != "" || tenant.FromContext(ctx) != tenant.Root {
		return nil
	}
	u, ok := a.GetObject().(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	pools, _, _ := unstructured.NestedSlice(u.Object, "spec", "pools")
	var errs field.ErrorList
	for i, pool := range pools {
		m, _ := pool.(map[string]any)
		name, _ := m["name"].(string)
		if name == "" {
			continue // the schema refuses it
		}
		_, err := p.client.Resource(schedulingv1alpha1.NodePoolsResource).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			errs = append(errs, field.Invalid(field.NewPath("spec", "pools").Index(i).Child("name"), name, "no NodePool of this name exists"))
		case err != nil:
			return apierrors.NewInternalError(fmt.Errorf("looking up NodePool %q: %w", name, err))
		}
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(a.GetKind().GroupKind(), a.GetName(), errs)
	}
	return nil
}
