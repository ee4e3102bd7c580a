package tenantmux

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/resourcequota"
	mutatingwebhook "k8s.io/apiserver/pkg/admission/plugin/webhook/mutating"
	validatingwebhook "k8s.io/apiserver/pkg/admission/plugin/webhook/validating"
	"k8s.io/kubernetes/plugin/pkg/admission/limitranger"
	"k8s.io/kubernetes/plugin/pkg/admission/security/podsecurity"
	"k8s.io/kubernetes/plugin/pkg/admission/serviceaccount"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/client/crosstenant/tenantview"
)

// Spec is an upstream plugin made per tenant.
type Spec struct {
	// Name is upstream's, and the plugin is made by upstream's Register.
	Name     string
	register func(*admission.Plugins)
	// Need reports whether a, of tenant t, needs t's instance; when false
	// the request is admitted as upstream would admit it without objects.
	Need func(c *tenantview.Caches, t string, a admission.Attributes) bool
	// Keep reports whether t's instance, once built, is still of use.
	Keep func(c *tenantview.Caches, t string) bool
	// watched are the caches whose changes may end Keep.
	watched func(c *tenantview.Caches) []*crosstenant.Cache
	// dynamic: the plugin wants a dynamic client (policy params).
	dynamic bool
	// quota: the plugin wants a quota configuration.
	quota bool
}

// has returns Spec functions that hold while tenant t has objects in the
// cache sel picks.
func has(sel func(*tenantview.Caches) *crosstenant.Cache) (func(*tenantview.Caches, string, admission.Attributes) bool, func(*tenantview.Caches, string) bool, func(*tenantview.Caches) []*crosstenant.Cache) {
	keep := func(c *tenantview.Caches, t string) bool { return len(sel(c).InTenant(t)) != 0 }
	need := func(c *tenantview.Caches, t string, _ admission.Attributes) bool { return keep(c, t) }
	return need, keep, func(c *tenantview.Caches) []*crosstenant.Cache { return []*crosstenant.Cache{sel(c)} }
}

// Specs are the plugins made per tenant.
var Specs = []Spec{
	webhookSpec(mutatingwebhook.PluginName, mutatingwebhook.Register, func(c *tenantview.Caches) *crosstenant.Cache { return c.MutatingWebhooks }),
	webhookSpec(validatingwebhook.PluginName, validatingwebhook.Register, func(c *tenantview.Caches) *crosstenant.Cache { return c.ValidatingWebhooks }),
	policySpec(),
	mutatingPolicySpec(),
	limitRangerSpec(),
	podSecuritySpec(),
	serviceAccountSpec(),
	resourceQuotaSpec(),
}

func webhookSpec(name string, register func(*admission.Plugins), sel func(*tenantview.Caches) *crosstenant.Cache) Spec {
	need, keep, watched := has(sel)
	return Spec{Name: name, register: register, Need: need, Keep: keep, watched: watched}
}

// policySpec: a policy does nothing until bound.
func policySpec() Spec {
	need, keep, watched := has(func(c *tenantview.Caches) *crosstenant.Cache { return c.PolicyBindings })
	return Spec{Name: validating.PluginName, register: validating.Register, Need: need, Keep: keep, watched: watched, dynamic: true}
}

// mutatingPolicySpec: the same for MutatingAdmissionPolicies.
func mutatingPolicySpec() Spec {
	need, keep, watched := has(func(c *tenantview.Caches) *crosstenant.Cache { return c.MutatingPolicyBindings })
	return Spec{Name: mutating.PluginName, register: mutating.Register, Need: need, Keep: keep, watched: watched, dynamic: true}
}

// limitRangerSpec: upstream lists a namespace without LimitRanges live,
// every 30 s; a tenant's cache answers that instead.
func limitRangerSpec() Spec {
	_, keep, watched := has(func(c *tenantview.Caches) *crosstenant.Cache { return c.LimitRanges })
	return Spec{
		Name: limitranger.PluginName, register: limitranger.Register, Keep: keep, watched: watched,
		Need: func(c *tenantview.Caches, t string, a admission.Attributes) bool {
			return a.GetNamespace() != "" && len(c.LimitRanges.InNamespace(t, a.GetNamespace())) != 0
		},
	}
}

// podSecurityLabel prefixes the namespace labels PodSecurity reads.
const podSecurityLabel = "pod-security.kubernetes.io/"

func hasPodSecurityLabels(obj any) bool {
	m, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	for k := range m.GetLabels() {
		if strings.HasPrefix(k, podSecurityLabel) {
			return true
		}
	}
	return false
}

// podSecuritySpec: a tenant without labelled namespaces needs no instance,
// as long as the default levels are upstream's (privileged); raised
// defaults in the admission configuration hold in root only. Namespace
// writes that set labels are checked by the tenant's instance.
func podSecuritySpec() Spec {
	keep := func(c *tenantview.Caches, t string) bool {
		for _, ns := range c.Namespaces.InTenant(t) {
			if hasPodSecurityLabels(ns) {
				return true
			}
		}
		return false
	}
	return Spec{
		Name: podsecurity.PluginName, register: podsecurity.Register, Keep: keep,
		watched: func(c *tenantview.Caches) []*crosstenant.Cache { return []*crosstenant.Cache{c.Namespaces} },
		Need: func(c *tenantview.Caches, t string, a admission.Attributes) bool {
			if a.GetResource().Resource == "namespaces" && a.GetObject() != nil && hasPodSecurityLabels(a.GetObject()) {
				return true
			}
			return keep(c, t)
		},
	}
}

var pods = schema.GroupResource{Resource: "pods"}

// serviceAccountSpec: every pod of a tenant is given, and checked against,
// a service account of that tenant; upstream's instance reads root's. The
// tenant's instance lives while the tenant creates pods (idle timeout).
func serviceAccountSpec() Spec {
	return Spec{
		Name: serviceaccount.PluginName, register: serviceaccount.Register,
		Need: func(_ *tenantview.Caches, _ string, a admission.Attributes) bool {
			return a.GetResource().GroupResource() == pods
		},
		Keep:    func(*tenantview.Caches, string) bool { return true },
		watched: func(*tenantview.Caches) []*crosstenant.Cache { return nil },
	}
}

// resourceQuotaSpec: a tenant's quotas count its own objects, charged by
// its own instance; a namespace without quotas needs none (upstream would
// list it live and find nothing).
func resourceQuotaSpec() Spec {
	_, keep, watched := has(func(c *tenantview.Caches) *crosstenant.Cache { return c.ResourceQuotas })
	return Spec{
		Name: resourcequota.PluginName, register: resourcequota.Register, Keep: keep, watched: watched, quota: true,
		Need: func(c *tenantview.Caches, t string, a admission.Attributes) bool {
			return a.GetNamespace() != "" && len(c.ResourceQuotas.InNamespace(t, a.GetNamespace())) != 0
		},
	}
}
