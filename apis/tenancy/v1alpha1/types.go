package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of kplex's management-plane types.
const GroupName = "kplex.io"

// SchemeGroupVersion is this package's group and version.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// TenantsResource is the resource that serves Tenants.
var TenantsResource = SchemeGroupVersion.WithResource("tenants")

// Tenant is one isolated Kubernetes control plane. It lives in the
// management plane and is cluster-scoped; its name is a DNS-1123 label.
type Tenant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TenantSpec   `json:"spec,omitempty"`
	Status TenantStatus `json:"status,omitempty"`
}

// TenantSpec is what the management plane sets for a tenant; the tenant
// itself cannot change it.
type TenantSpec struct {
	// PodSecurity is the Pod Security Standard every pod of the tenant must
	// meet (restricted, baseline or privileged; default baseline), whatever
	// the tenant's namespace labels say: they may only tighten it.
	PodSecurity string `json:"podSecurity,omitempty"`
}

// TenantPhase is a tenant's place in its lifecycle.
type TenantPhase string

const (
	// TenantProvisioning: created, bootstrap not finished.
	TenantProvisioning TenantPhase = "Provisioning"
	// TenantReady: bootstrapped and serving.
	TenantReady TenantPhase = "Ready"
	// TenantTerminating: being deleted; its data is being removed.
	TenantTerminating TenantPhase = "Terminating"
)

// ConditionReady is true once a tenant is bootstrapped and serving.
const ConditionReady = "Ready"

// CleanupFinalizer keeps a Tenant until every key of its partition is gone.
const CleanupFinalizer = "kplex.io/cleanup"

// TenantStatus is what the server observed.
type TenantStatus struct {
	Phase      TenantPhase        `json:"phase,omitempty"`
	Path       string             `json:"path,omitempty"`
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CredentialsPath is where the management plane serves a tenant's admin
// credentials: GET CredentialsPath + "<tenant>" answers with Credentials.
const CredentialsPath = "/kplex/v1alpha1/credentials/"

// Credentials are a tenant's admin credentials.
type Credentials struct {
	Tenant string `json:"tenant"`
	// Path is appended to the server URL to address the tenant.
	Path string `json:"path"`
	// Token authenticates as the tenant's admin, on its own path only.
	Token string `json:"token"`
}
