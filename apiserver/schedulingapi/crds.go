package schedulingapi

import (
	"strconv"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/podsecurity"
)

// Bounds that keep the CEL rules' cost estimate within budget.
const (
	maxResources = 32
	maxPools     = 256
)

// dnsLabel is a tenant's or a pool's name.
const dnsLabel = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`

type props = map[string]apiextensionsv1.JSONSchemaProps

var (
	str    = apiextensionsv1.JSONSchemaProps{Type: "string"}
	name   = apiextensionsv1.JSONSchemaProps{Type: "string", MaxLength: ptr.To[int64](63), Pattern: dnsLabel}
	labels = apiextensionsv1.JSONSchemaProps{Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Schema: &str}}
)

// Enum is a string that must be one of values; the schema's refusal
// names the field and lists them (422).
func Enum(values ...string) apiextensionsv1.JSONSchemaProps {
	out := apiextensionsv1.JSONSchemaProps{Type: "string"}
	for _, v := range values {
		out.Enum = append(out.Enum, apiextensionsv1.JSON{Raw: []byte(strconv.Quote(v))})
	}
	return out
}

// Conditions is the schema of a []metav1.Condition status field.
var Conditions = apiextensionsv1.JSONSchemaProps{
	Type:         "array",
	XListType:    ptr.To("map"),
	XListMapKeys: []string{"type"},
	Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{
		Type:     "object",
		Required: []string{"type", "status", "lastTransitionTime", "reason", "message"},
		Properties: props{
			"type": str, "status": str, "reason": str, "message": str,
			"lastTransitionTime": {Type: "string", Format: "date-time"},
			"observedGeneration": {Type: "integer", Format: "int64"},
		},
	}},
}

// quantity is a resource.Quantity; CEL refuses a malformed or negative one
// with a message naming it, where a pattern would print a regular
// expression.
func quantity(what string) apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{
		XIntOrString: true,
		AnyOf:        []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}},
		MaxLength:    ptr.To[int64](64),
		XValidations: apiextensionsv1.ValidationRules{{
			Rule:    "isQuantity(string(self)) && !quantity(string(self)).isLessThan(quantity('0'))",
			Message: what + " must be a non-negative quantity, such as 8 or 500m",
			Reason:  ptr.To(apiextensionsv1.FieldValueInvalid),
		}},
	}
}

// observed is a quantity written by kplex, not a person.
var observed = apiextensionsv1.JSONSchemaProps{XIntOrString: true, AnyOf: []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}}}

var observedList = apiextensionsv1.JSONSchemaProps{Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Schema: &observed}}

func resourceList(what string) apiextensionsv1.JSONSchemaProps {
	q := quantity(what)
	return apiextensionsv1.JSONSchemaProps{Type: "object", MaxProperties: ptr.To[int64](maxResources), AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Schema: &q}}
}

// CRDs are the definitions that serve scheduling.kplex.io.
func CRDs() []*apiextensionsv1.CustomResourceDefinition {
	return []*apiextensionsv1.CustomResourceDefinition{NodePoolCRD(), TenantQuotaCRD()}
}

func crd(plural, singular, kind, short string, columns []apiextensionsv1.CustomResourceColumnDefinition, schema apiextensionsv1.JSONSchemaProps) *apiextensionsv1.CustomResourceDefinition {
	schema.Type = "object"
	schema.Properties["apiVersion"] = str
	schema.Properties["kind"] = str
	schema.Properties["metadata"] = apiextensionsv1.JSONSchemaProps{Type: "object", Properties: props{"name": name}}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + schedulingv1alpha1.GroupName},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: schedulingv1alpha1.GroupName,
			Scope: apiextensionsv1.ClusterScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: plural, Singular: singular, Kind: kind, ListKind: kind + "List",
				ShortNames: []string{short}, Categories: []string{"kplex"},
			},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: schedulingv1alpha1.SchemeGroupVersion.Version, Served: true, Storage: true,
				Subresources:             &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				AdditionalPrinterColumns: append(columns, apiextensionsv1.CustomResourceColumnDefinition{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"}),
				Schema:                   &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &schema},
			}},
		},
	}
}

// NodePoolCRD serves NodePools.
func NodePoolCRD() *apiextensionsv1.CustomResourceDefinition {
	taint := apiextensionsv1.JSONSchemaProps{
		Type:     "object",
		Required: []string{"key", "effect"},
		Properties: props{
			"key": {Type: "string", MinLength: ptr.To[int64](1)}, "value": str,
			"effect": {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"NoSchedule"`)}, {Raw: []byte(`"PreferNoSchedule"`)}, {Raw: []byte(`"NoExecute"`)}}},
		},
	}
	spec := apiextensionsv1.JSONSchemaProps{
		Type:     "object",
		Required: []string{"mode"},
		XValidations: apiextensionsv1.ValidationRules{{
			Rule:      "self.mode != 'dedicated' || (has(self.tenants) && size(self.tenants) == 1)",
			Message:   "a dedicated pool names exactly one tenant",
			FieldPath: ".tenants",
			Reason:    ptr.To(apiextensionsv1.FieldValueInvalid),
		}},
		Properties: props{
			"mode":         {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"shared"`)}, {Raw: []byte(`"dedicated"`)}}},
			"tenants":      {Type: "array", XListType: ptr.To("set"), Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &name}},
			"nodeSelector": labels,
			"template": {Type: "object", Properties: props{
				"metadata": {Type: "object", Properties: props{"labels": labels}},
				"spec": {Type: "object", Properties: props{
					"taints": {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &taint}},
				}},
			}},
			"limits":      resourceList("a limit"),
			"weight":      {Type: "integer", Format: "int32", Minimum: ptr.To[float64](1), Maximum: ptr.To[float64](100)},
			"podSecurity": Enum(podsecurity.Levels...),
			"sandbox":     Enum(string(schedulingv1alpha1.SandboxGVisor), string(schedulingv1alpha1.SandboxNone)),
		},
	}
	status := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: props{
		"nodes":          {Type: "integer", Format: "int32"},
		"allocatable":    observedList,
		"requested":      observedList,
		"sandboxedNodes": {Type: "integer", Format: "int32"},
		"conditions":     Conditions,
	}}
	return crd("nodepools", "nodepool", "NodePool", "np", []apiextensionsv1.CustomResourceColumnDefinition{
		{Name: "Mode", Type: "string", JSONPath: ".spec.mode"},
		{Name: "Tenants", Type: "string", JSONPath: ".spec.tenants"},
		{Name: "Nodes", Type: "integer", JSONPath: ".status.nodes"},
		{Name: "Sandbox", Type: "string", JSONPath: ".spec.sandbox", Priority: 1},
		{Name: "PodSecurity", Type: "string", JSONPath: ".spec.podSecurity", Priority: 1},
		{Name: "Weight", Type: "integer", JSONPath: ".spec.weight", Priority: 1},
	}, apiextensionsv1.JSONSchemaProps{Required: []string{"spec"}, Properties: props{"spec": spec, "status": status}})
}

// TenantQuotaCRD serves TenantQuotas.
func TenantQuotaCRD() *apiextensionsv1.CustomResourceDefinition {
	resourceQuota := apiextensionsv1.JSONSchemaProps{
		Type:     "object",
		Required: []string{"name", "nominalQuota"},
		Properties: props{
			"name":           {Type: "string", MinLength: ptr.To[int64](1)},
			"nominalQuota":   quantity("nominalQuota"),
			"borrowingLimit": quantity("borrowingLimit"),
		},
	}
	poolQuota := apiextensionsv1.JSONSchemaProps{
		Type:     "object",
		Required: []string{"name", "resources"},
		Properties: props{
			"name": name,
			"resources": {Type: "array", MaxItems: ptr.To[int64](maxResources), XListType: ptr.To("map"), XListMapKeys: []string{"name"},
				Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &resourceQuota}},
		},
	}
	usage := apiextensionsv1.JSONSchemaProps{Type: "object", Required: []string{"name"}, Properties: props{
		"name": str, "used": observedList, "borrowed": observedList,
	}}
	spec := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: props{
		"pools": {Type: "array", MaxItems: ptr.To[int64](maxPools), XListType: ptr.To("map"), XListMapKeys: []string{"name"},
			Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &poolQuota}},
		"fairSharing": {Type: "object", Properties: props{"weight": quantity("fairSharing.weight")}},
	}}
	status := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: props{
		"pools": {Type: "array", XListType: ptr.To("map"), XListMapKeys: []string{"name"},
			Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &usage}},
	}}
	return crd("tenantquotas", "tenantquota", "TenantQuota", "tq", []apiextensionsv1.CustomResourceColumnDefinition{
		{Name: "Pools", Type: "string", JSONPath: ".spec.pools[*].name"},
	}, apiextensionsv1.JSONSchemaProps{Properties: props{"spec": spec, "status": status}})
}
