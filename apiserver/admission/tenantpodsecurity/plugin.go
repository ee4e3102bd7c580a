package tenantpodsecurity

import (
	"context"
	"fmt"
	"io"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/admission"
	api "k8s.io/kubernetes/pkg/apis/core"

	"github.com/kplex/kplex/podsecurity"
	"github.com/kplex/kplex/tenant"
)

// PluginName is the name the plugin is registered and enabled by.
const PluginName = "TenantPodSecurity"

var podsResource = api.Resource("pods")

// Levels tells the level the management plane set for a tenant; ok is
// false for a tenant not served.
type Levels interface {
	PodSecurity(tenant string) (level string, ok bool)
}

// Plugin refuses tenants' pods that do not meet their tenant's level.
type Plugin struct {
	*admission.Handler
	levels Levels
}

var (
	_ admission.ValidationInterface     = &Plugin{}
	_ admission.InitializationValidator = &Plugin{}
)

// New returns the plugin; Register adds it to a server's plugins,
// SetLevels gives it the tenants' levels.
func New() *Plugin {
	return &Plugin{Handler: admission.NewHandler(admission.Create, admission.Update)}
}

// Register adds p to plugins as PluginName.
func (p *Plugin) Register(plugins *admission.Plugins) {
	plugins.Register(PluginName, func(io.Reader) (admission.Interface, error) { return p, nil })
}

// SetLevels gives the plugin the tenants' levels. Call it before the
// server starts serving.
func (p *Plugin) SetLevels(l Levels) { p.levels = l }

// ValidateInitialization checks the plugin got its levels.
func (p *Plugin) ValidateInitialization() error {
	if p.levels == nil {
		return fmt.Errorf("%s needs the tenants' levels", PluginName)
	}
	return nil
}

// Validate refuses a tenant's pod, or a change to it that runs new code,
// that does not meet the tenant's level.
func (p *Plugin) Validate(ctx context.Context, a admission.Attributes, _ admission.ObjectInterfaces) error {
	return p.validate(tenant.FromContext(ctx), a)
}

// validate is Validate for the request's tenant.
func (p *Plugin) validate(tenantName string, a admission.Attributes) error {
	if tenantName == tenant.Root || tenantName == tenant.Wildcard || a.GetResource().GroupResource() != podsResource {
		return nil
	}
	if !judged(a) {
		return nil
	}
	pod, ok := a.GetObject().(*api.Pod)
	if !ok {
		return nil
	}
	level, ok := p.levels.PodSecurity(tenantName)
	if !ok {
		level = podsecurity.Restricted // not served: fail closed
	}
	violation, err := podsecurity.CheckInternal(level, pod)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if violation == nil {
		return nil
	}
	return apierrors.NewForbidden(a.GetResource().GroupResource(), a.GetName(),
		fmt.Errorf("violates PodSecurity %q set by the management plane for tenant %s: %s", violation.Level, tenantName, violation.Detail))
}

// judged says whether a request could start code the level has not seen:
// a create, an ephemeral container, or an update that changes an image or
// the set of containers. Status and other subresources, and updates of
// labels or annotations, pass, so that a level raised later does not
// stop controllers from managing pods that already run.
func judged(a admission.Attributes) bool {
	switch a.GetSubresource() {
	case "":
	case "ephemeralcontainers":
		return true
	default:
		return false
	}
	if a.GetOperation() == admission.Create {
		return true
	}
	pod, ok := a.GetObject().(*api.Pod)
	old, oldOK := a.GetOldObject().(*api.Pod)
	if !ok || !oldOK {
		return true
	}
	return !sameImages(pod, old)
}

// sameImages reports whether two versions of a pod run the same images in
// the same containers.
func sameImages(a, b *api.Pod) bool {
	images := func(p *api.Pod) []string {
		var out []string
		for _, c := range p.Spec.InitContainers {
			out = append(out, "i:"+c.Name+"="+c.Image)
		}
		for _, c := range p.Spec.Containers {
			out = append(out, "c:"+c.Name+"="+c.Image)
		}
		for _, c := range p.Spec.EphemeralContainers {
			out = append(out, "e:"+c.Name+"="+c.Image)
		}
		return out
	}
	return slices.Equal(images(a), images(b))
}
