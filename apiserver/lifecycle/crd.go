package lifecycle

import (
	"context"
	"fmt"
	"strconv"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	tenancyv1alpha1 "github.com/kplex/kplex/apis/tenancy/v1alpha1"
	"github.com/kplex/kplex/apiserver/schedulingapi"
	"github.com/kplex/kplex/podsecurity"
)

// tenantNameRule keeps Tenant names DNS-1123 labels and off the reserved
// name: a Tenant's name is a URL path segment and an etcd key segment.
const tenantNamePattern = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`

// TenantCRD is the definition that serves Tenants in the management plane.
func TenantCRD() *apiextensionsv1.CustomResourceDefinition {
	str := apiextensionsv1.JSONSchemaProps{Type: "string"}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "tenants." + tenancyv1alpha1.GroupName},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: tenancyv1alpha1.GroupName,
			Scope: apiextensionsv1.ClusterScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: "tenants", Singular: "tenant", Kind: "Tenant", ListKind: "TenantList",
				ShortNames: []string{"tn"}, Categories: []string{"kplex"},
			},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: tenancyv1alpha1.SchemeGroupVersion.Version, Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
					{Name: "Phase", Type: "string", JSONPath: ".status.phase"},
					{Name: "Path", Type: "string", JSONPath: ".status.path"},
					{Name: "PodSecurity", Type: "string", JSONPath: ".spec.podSecurity"},
					{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"},
				},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					XValidations: apiextensionsv1.ValidationRules{{
						Rule:    "self.metadata.name != 'root'",
						Message: "metadata.name: 'root' is reserved for the management plane",
						Reason:  ptr.To(apiextensionsv1.FieldValueInvalid),
					}},
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"apiVersion": str,
						"kind":       str,
						"metadata": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"name": {Type: "string", MaxLength: ptr.To[int64](63), Pattern: tenantNamePattern},
						}},
						// Defaults make a Tenant show its level even when its
						// creator named none.
						"spec": {Type: "object", Default: &apiextensionsv1.JSON{Raw: []byte(`{}`)}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"podSecurity": withDefault(schedulingapi.Enum(podsecurity.Levels...), podsecurity.DefaultTenantLevel),
						}},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"phase":      {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"Provisioning"`)}, {Raw: []byte(`"Ready"`)}, {Raw: []byte(`"Terminating"`)}}},
							"path":       str,
							"conditions": schedulingapi.Conditions,
						}},
					},
				}},
			}},
		},
	}
}

// InstallCRD creates or updates a management-plane CRD (the Tenant CRD,
// the scheduling API's) and waits until it is Established.
func InstallCRD(ctx context.Context, client apiextensionsclient.Interface, want *apiextensionsv1.CustomResourceDefinition) error {
	crds := client.ApiextensionsV1().CustomResourceDefinitions()
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		existing, err := crds.Get(ctx, want.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = crds.Create(ctx, want, metav1.CreateOptions{})
		case err == nil:
			existing.Spec = want.Spec
			_, err = crds.Update(ctx, existing, metav1.UpdateOptions{})
		}
		if apierrors.IsInvalid(err) {
			return false, err // a bad definition: trying again will not help
		}
		if err != nil {
			// The apiextensions server may still be starting; try again.
			lastErr = err
			klog.V(1).InfoS("Installing a CRD", "crd", want.Name, "err", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("installing CRD %s: %w (last error: %v)", want.Name, err, lastErr)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		crd, err := crds.Get(ctx, want.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for CRD %s to be established: %w", want.Name, err)
	}
	return nil
}

func withDefault(p apiextensionsv1.JSONSchemaProps, value string) apiextensionsv1.JSONSchemaProps {
	p.Default = &apiextensionsv1.JSON{Raw: []byte(strconv.Quote(value))}
	return p
}
