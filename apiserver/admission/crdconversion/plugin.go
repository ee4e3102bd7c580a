// Package crdconversion refuses, at write time, what a tenant's CRD
// conversion webhook could not use: a Service reference. kplex resolves no
// Service for a tenant's conversion webhook (upstream's resolver would look
// in root), so such a CRD would fail on every conversion; it is refused
// with the field named instead.
package crdconversion

import (
	"context"
	"io"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/admission"

	"github.com/kplex/kplex/tenant"
)

// PluginName is the name the plugin is registered and enabled by.
const PluginName = "TenantCustomResourceConversion"

var crds = apiextensions.Resource("customresourcedefinitions")

// Plugin validates tenants' CustomResourceDefinitions.
type Plugin struct{ *admission.Handler }

var _ admission.ValidationInterface = &Plugin{}

// Register adds the plugin to plugins as PluginName.
func Register(plugins *admission.Plugins) {
	plugins.Register(PluginName, func(io.Reader) (admission.Interface, error) {
		return &Plugin{Handler: admission.NewHandler(admission.Create, admission.Update)}, nil
	})
}

// Validate refuses a tenant's CRD whose conversion webhook names a Service.
func (p *Plugin) Validate(ctx context.Context, a admission.Attributes, _ admission.ObjectInterfaces) error {
	if a.GetResource().GroupResource() != crds || a.GetSubresource() != "" {
		return nil
	}
	if t := tenant.FromContext(ctx); t == tenant.Root || t == tenant.Wildcard {
		return nil
	}
	crd, ok := a.GetObject().(*apiextensions.CustomResourceDefinition)
	if !ok || crd.Spec.Conversion == nil || crd.Spec.Conversion.WebhookClientConfig == nil || crd.Spec.Conversion.WebhookClientConfig.Service == nil {
		return nil
	}
	path := field.NewPath("spec", "conversion", "webhook", "clientConfig", "service")
	return apierrors.NewInvalid(a.GetKind().GroupKind(), a.GetName(), field.ErrorList{
		field.Forbidden(path, "a tenant's conversion webhook is reached by clientConfig.url; Service references are not resolved in tenants"),
	})
}
