package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of pools and quotas.
const GroupName = "scheduling.kplex.io"

// SchemeGroupVersion is this package's group and version.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// Resources serving the types, in the management plane.
var (
	NodePoolsResource    = SchemeGroupVersion.WithResource("nodepools")
	TenantQuotasResource = SchemeGroupVersion.WithResource("tenantquotas")
)

// PoolLabel on a Node names its NodePool. The node agent sets it
// (--pool); a pool's nodeSelector can add nodes without it.
const PoolLabel = "kplex.io/pool"

// PoolAnnotation on a bound pod names the pool of its node, so that the
// tenant, who cannot read the management plane, sees it in
// `kubectl describe pod`.
const PoolAnnotation = "kplex.io/pool"

// NodePool is a group of the management plane's nodes that some tenants'
// pods may use. It is cluster-scoped.
type NodePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodePoolSpec   `json:"spec"`
	Status NodePoolStatus `json:"status,omitempty"`
}

// PoolMode says who may use a pool.
type PoolMode string

const (
	// Shared pools take pods of every tenant in spec.tenants, or of every
	// tenant when the list is empty.
	Shared PoolMode = "shared"
	// Dedicated pools take pods of exactly one tenant: other tenants'
	// pods never land there, whatever tolerations they carry.
	Dedicated PoolMode = "dedicated"
)

// NodePoolSpec is what the operator asks for.
type NodePoolSpec struct {
	// Mode is shared or dedicated.
	Mode PoolMode `json:"mode"`
	// Tenants may use the pool: exactly one for a dedicated pool; for a
	// shared pool, none means every tenant.
	Tenants []string `json:"tenants,omitempty"`
	// NodeSelector adds the nodes whose labels match it; nodes labelled
	// kplex.io/pool=<name> belong to the pool whatever it says.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Template is what the pool's nodes carry.
	Template NodePoolTemplate `json:"template,omitempty"`
	// Limits bound the sum of what pods in the pool request, per resource
	// (e.g. nvidia.com/gpu: 64).
	Limits corev1.ResourceList `json:"limits,omitempty"`
	// Weight orders pools: a pod that fits several goes to the heaviest.
	Weight *int32 `json:"weight,omitempty"`
	// PodSecurity is the Pod Security Standard (restricted, baseline or
	// privileged) every pod placed on the pool must meet, on top of its
	// tenant's; empty requires nothing more.
	PodSecurity string `json:"podSecurity,omitempty"`
	// Sandbox is the runtime the pool's pods run under, whatever they ask:
	// gvisor or none. Empty means gvisor on the nodes of a shared pool that
	// have it and none elsewhere. A pool that names gvisor takes pods only
	// on nodes that have it; the others wait.
	Sandbox Sandbox `json:"sandbox,omitempty"`
}

// Sandbox names an isolation runtime for pods.
type Sandbox string

const (
	// SandboxGVisor runs pods under gVisor (runsc): a user-space kernel
	// between the pod and the host's.
	SandboxGVisor Sandbox = "gvisor"
	// SandboxNone runs pods under the node's default runtime (runc).
	SandboxNone Sandbox = "none"
)

// GVisorRuntimeHandler is the CRI runtime handler of gVisor (runsc).
const GVisorRuntimeHandler = "runsc"

// RuntimeHandlers maps a sandbox to the CRI runtime handler that nodes
// configure for it and announce in Node.status.runtimeHandlers.
var RuntimeHandlers = map[Sandbox]string{SandboxGVisor: GVisorRuntimeHandler}

// NodePoolTemplate holds the labels and taints applied to the pool's
// nodes, as Karpenter's spec.template does.
type NodePoolTemplate struct {
	Metadata NodePoolTemplateMetadata `json:"metadata,omitempty"`
	Spec     NodePoolTemplateSpec     `json:"spec,omitempty"`
}

// NodePoolTemplateMetadata are the labels of the pool's nodes.
type NodePoolTemplateMetadata struct {
	Labels map[string]string `json:"labels,omitempty"`
}

// NodePoolTemplateSpec are the taints of the pool's nodes.
type NodePoolTemplateSpec struct {
	Taints []corev1.Taint `json:"taints,omitempty"`
}

// NodePoolStatus is what the scheduler observed.
type NodePoolStatus struct {
	Nodes       int32               `json:"nodes"`
	Allocatable corev1.ResourceList `json:"allocatable,omitempty"`
	Requested   corev1.ResourceList `json:"requested,omitempty"`
	// SandboxedNodes counts the pool's nodes that have the runtime handler
	// of the pool's sandbox (every node when it needs none).
	SandboxedNodes int32 `json:"sandboxedNodes,omitempty"`
	// Conditions: SandboxReady is false when the pool requires a sandbox
	// that none of its nodes have.
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NodePoolList is a list of NodePools.
type NodePoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodePool `json:"items"`
}

// TenantQuota bounds what one tenant's pods may request per pool. Its
// name is the tenant's; a tenant without one is bounded only by its pools.
type TenantQuota struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TenantQuotaSpec   `json:"spec"`
	Status TenantQuotaStatus `json:"status,omitempty"`
}

// TenantQuotaSpec is the quota, per pool and resource.
type TenantQuotaSpec struct {
	// Pools are the quotas per pool; a resource not listed for a pool is
	// not bounded by the quota.
	Pools []PoolQuota `json:"pools,omitempty"`
	// FairSharing weighs the tenant's share against the other tenants'
	// when pods of several wait for the same pool.
	FairSharing *FairSharing `json:"fairSharing,omitempty"`
}

// PoolQuota is a tenant's quota in one pool.
type PoolQuota struct {
	// Name names the NodePool.
	Name      string          `json:"name"`
	Resources []ResourceQuota `json:"resources"`
}

// ResourceQuota is one resource's quota, as Kueue's ClusterQueue has it.
type ResourceQuota struct {
	Name corev1.ResourceName `json:"name"`
	// NominalQuota is what the tenant is guaranteed.
	NominalQuota resource.Quantity `json:"nominalQuota"`
	// BorrowingLimit is how much more the tenant may use while other
	// tenants leave their nominal quota in the pool unused; none means
	// no bound but theirs. Borrowed quota is reclaimed when its lender
	// needs it.
	BorrowingLimit *resource.Quantity `json:"borrowingLimit,omitempty"`
}

// FairSharing is Kueue's: a tenant's share of what it uses is divided by
// its weight.
type FairSharing struct {
	Weight *resource.Quantity `json:"weight,omitempty"`
}

// TenantQuotaStatus is the tenant's usage, per pool.
type TenantQuotaStatus struct {
	Pools []PoolUsage `json:"pools,omitempty"`
}

// PoolUsage is what the tenant's pods request in one pool, and how much
// of it is borrowed beyond the nominal quota.
type PoolUsage struct {
	Name     string              `json:"name"`
	Used     corev1.ResourceList `json:"used,omitempty"`
	Borrowed corev1.ResourceList `json:"borrowed,omitempty"`
}

// TenantQuotaList is a list of TenantQuotas.
type TenantQuotaList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TenantQuota `json:"items"`
}

// ConditionSandboxReady is a NodePool condition: whether any of its nodes
// can run its pods under the pool's sandbox.
const ConditionSandboxReady = "SandboxReady"
