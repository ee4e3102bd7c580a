package tenantview

import (
	"context"
	"fmt"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	admissionregistrationinformers "k8s.io/client-go/informers/admissionregistration"
	admissionregistrationv1informers "k8s.io/client-go/informers/admissionregistration/v1"
	appsinformers "k8s.io/client-go/informers/apps"
	appsv1informers "k8s.io/client-go/informers/apps/v1"
	batchinformers "k8s.io/client-go/informers/batch"
	batchv1informers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core"
	corev1informers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery"
	discoveryv1informers "k8s.io/client-go/informers/discovery/v1"
	policyinformers "k8s.io/client-go/informers/policy"
	policyv1informers "k8s.io/client-go/informers/policy/v1"
	resourceinformers "k8s.io/client-go/informers/resource"
	resourcev1informers "k8s.io/client-go/informers/resource/v1"
	admissionregistrationv1listers "k8s.io/client-go/listers/admissionregistration/v1"
	appsv1listers "k8s.io/client-go/listers/apps/v1"
	batchv1listers "k8s.io/client-go/listers/batch/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	discoveryv1listers "k8s.io/client-go/listers/discovery/v1"
	policyv1listers "k8s.io/client-go/listers/policy/v1"
	resourcev1listers "k8s.io/client-go/listers/resource/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

// Caches are the cross-tenant caches views are made of. A nil cache is
// seen as empty (Pods, for admission: no plugin there needs more than a
// lister that may come up empty).
type Caches struct {
	// Metadata are caches of objects' metadata
	// (metav1.PartialObjectMetadata) by resource, for ForResource.
	Metadata map[schema.GroupVersionResource]*crosstenant.Cache

	Pods                   *crosstenant.Cache
	ReplicaSets            *crosstenant.Cache
	Deployments            *crosstenant.Cache
	Jobs                   *crosstenant.Cache
	CronJobs               *crosstenant.Cache
	StatefulSets           *crosstenant.Cache
	ControllerRevisions    *crosstenant.Cache
	DaemonSets             *crosstenant.Cache
	ReplicationControllers *crosstenant.Cache
	PodDisruptionBudgets   *crosstenant.Cache
	Services               *crosstenant.Cache
	PersistentVolumeClaims *crosstenant.Cache
	ResourceQuotas         *crosstenant.Cache
	ResourceClaims         *crosstenant.Cache
	Endpoints              *crosstenant.Cache
	EndpointSlices         *crosstenant.Cache
	// DeviceClasses and Nodes are the management plane's, read by every
	// tenant.
	DeviceClasses *crosstenant.Cache
	Nodes         *crosstenant.Cache
	// MayUseNode, if set, tells which of root's nodes a tenant's view
	// shows: those its pods may use (its node pools').
	MayUseNode         func(tenantName string, nodeLabels map[string]string) bool
	Namespaces         *crosstenant.Cache
	LimitRanges        *crosstenant.Cache
	MutatingWebhooks   *crosstenant.Cache
	ValidatingWebhooks *crosstenant.Cache
	Policies           *crosstenant.Cache
	PolicyBindings     *crosstenant.Cache
	// MutatingPolicies and MutatingPolicyBindings are
	// MutatingAdmissionPolicies and their bindings.
	MutatingPolicies       *crosstenant.Cache
	MutatingPolicyBindings *crosstenant.Cache
	ServiceAccounts        *crosstenant.Cache
	ConfigMaps             *crosstenant.Cache
	// Secrets may hold only service-account-token Secrets.
	Secrets *crosstenant.Cache
}

// HasSynced reports whether every cache has synced.
func (c *Caches) HasSynced() bool {
	for _, x := range []*crosstenant.Cache{c.Pods, c.ReplicaSets, c.Deployments, c.Jobs, c.CronJobs, c.StatefulSets, c.ControllerRevisions, c.DaemonSets, c.ReplicationControllers, c.PodDisruptionBudgets, c.Services, c.PersistentVolumeClaims, c.ResourceQuotas, c.ResourceClaims, c.Endpoints, c.EndpointSlices, c.DeviceClasses, c.Nodes, c.Namespaces, c.LimitRanges, c.MutatingWebhooks, c.ValidatingWebhooks, c.Policies, c.PolicyBindings, c.MutatingPolicies, c.MutatingPolicyBindings, c.ServiceAccounts, c.ConfigMaps, c.Secrets} {
		if x != nil && !x.HasSynced() {
			return false
		}
	}
	for _, x := range c.Metadata {
		if !x.HasSynced() {
			return false
		}
	}
	return true
}

// Factory is an informers.SharedInformerFactory of one tenant's view. It
// offers the informers of Caches; any other accessor panics.
type Factory struct {
	informers.SharedInformerFactory // nil
	caches                          *Caches
	tenant                          string
	regs                            registrations
}

// NewFactory returns tenant t's view of caches. Handlers hear of the
// tenant's objects as soon as they are added.
func NewFactory(caches *Caches, t string) *Factory {
	return &Factory{caches: caches, tenant: t}
}

// NewDeferredFactory is NewFactory whose handlers hear of nothing before
// Start, as with client-go's factory, whose informers deliver nothing
// before they run: upstream constructors register their handlers before
// they finish setting themselves up.
func NewDeferredFactory(caches *Caches, t string) *Factory {
	f := NewFactory(caches, t)
	f.regs.deferred = true
	return f
}

// InformerOf returns the factory's informer of the tenant's objects in c,
// for a cache Caches has no field for: its handlers are held and closed
// with the factory's.
func (f *Factory) InformerOf(c *crosstenant.Cache) *Informer { return f.informer(c) }

func (f *Factory) informer(c *crosstenant.Cache) *Informer {
	inf := NewInformer(c, f.tenant)
	inf.regs = &f.regs
	return inf
}

// Close removes every event handler registered through the factory's
// informers, which upstream controllers never remove themselves; handlers
// registered later are never added. The views stay readable.
func (f *Factory) Close() { f.regs.close() }

// Start lets the handlers of a deferred factory hear of the tenant's
// objects. The caches run elsewhere: starting and waiting are the
// server's.
func (f *Factory) Start(<-chan struct{})            { f.regs.start() }
func (f *Factory) StartWithContext(context.Context) { f.regs.start() }
func (f *Factory) Shutdown()                        {}

func (f *Factory) WaitForCacheSync(<-chan struct{}) map[reflect.Type]bool { return nil }

func (f *Factory) WaitForCacheSyncWithContext(context.Context) cache.SyncResult {
	return cache.SyncResult{}
}

// ForResource returns the view of a cache of whole objects of r where
// there is one (upstream's quota evaluators read pods, services and
// claims whole), else of a Metadata cache (objects are
// *metav1.PartialObjectMetadata).
func (f *Factory) ForResource(r schema.GroupVersionResource) (informers.GenericInformer, error) {
	c, ok := f.whole(r)
	if !ok {
		c, ok = f.caches.Metadata[r]
	}
	if !ok || c == nil {
		return nil, fmt.Errorf("a tenant view has no generic informer for %s", r)
	}
	return generic{inf: f.informer(c), resource: r.GroupResource()}, nil
}

// whole returns the cache of whole objects of r; the ConfigMaps and
// Secrets caches hold selected objects only and are never one.
func (f *Factory) whole(r schema.GroupVersionResource) (*crosstenant.Cache, bool) {
	c := f.caches
	var out *crosstenant.Cache
	switch r {
	case corev1.SchemeGroupVersion.WithResource("pods"):
		out = c.Pods
	case corev1.SchemeGroupVersion.WithResource("services"):
		out = c.Services
	case corev1.SchemeGroupVersion.WithResource("persistentvolumeclaims"):
		out = c.PersistentVolumeClaims
	case corev1.SchemeGroupVersion.WithResource("resourcequotas"):
		out = c.ResourceQuotas
	case appsv1.SchemeGroupVersion.WithResource("replicasets"):
		out = c.ReplicaSets
	case appsv1.SchemeGroupVersion.WithResource("deployments"):
		out = c.Deployments
	case batchv1.SchemeGroupVersion.WithResource("jobs"):
		out = c.Jobs
	}
	return out, out != nil
}

// typed is a view's Typed<Kind>Informer: I is upstream's typed informer
// of the kind, which a view does not offer (nil), L its lister.
type typed[I, L any] struct {
	inf    *Informer
	lister L
}

func newTyped[I, L any](inf *Informer, lister func(cache.Indexer) L) typed[I, L] {
	return typed[I, L]{inf: inf, lister: lister(inf.idx)}
}

func (t typed[I, L]) Informer() cache.SharedIndexInformer { return t.inf }
func (t typed[I, L]) Lister() L                           { return t.lister }

// TypedInformer is not offered: the upstream code built on views uses
// Informer.
func (t typed[I, L]) TypedInformer() I {
	var none I
	return none
}

type generic struct {
	inf      *Informer
	resource schema.GroupResource
}

func (g generic) Informer() cache.SharedIndexInformer { return g.inf }
func (g generic) Lister() cache.GenericLister         { return cache.NewGenericLister(g.inf.idx, g.resource) }

func (f *Factory) Core() coreinformers.Interface { return coreGroup{f: f} }

func (f *Factory) Apps() appsinformers.Interface { return appsGroup{f: f} }

func (f *Factory) Resource() resourceinformers.Interface { return resourceGroup{f: f} }

func (f *Factory) Batch() batchinformers.Interface { return batchGroup{f: f} }

type batchGroup struct {
	batchinformers.Interface
	f *Factory
}

func (g batchGroup) V1() batchv1informers.Interface { return batchV1{f: g.f} }

type batchV1 struct {
	batchv1informers.Interface
	f *Factory
}

func (v batchV1) Jobs() batchv1informers.TypedJobInformer {
	return newTyped[batchv1informers.JobIndexInformer](v.f.informer(v.f.caches.Jobs), batchv1listers.NewJobLister)
}

func (v batchV1) CronJobs() batchv1informers.TypedCronJobInformer {
	return newTyped[batchv1informers.CronJobIndexInformer](v.f.informer(v.f.caches.CronJobs), batchv1listers.NewCronJobLister)
}

type resourceGroup struct {
	resourceinformers.Interface
	f *Factory
}

func (g resourceGroup) V1() resourcev1informers.Interface { return resourceV1{f: g.f} }

type resourceV1 struct {
	resourcev1informers.Interface
	f *Factory
}

// DeviceClasses are the management plane's, shared by every tenant.
func (v resourceV1) DeviceClasses() resourcev1informers.TypedDeviceClassInformer {
	return newTyped[resourcev1informers.DeviceClassIndexInformer](NewInformer(v.f.caches.DeviceClasses, tenant.Root), resourcev1listers.NewDeviceClassLister)
}

func (v resourceV1) ResourceClaims() resourcev1informers.TypedResourceClaimInformer {
	return newTyped[resourcev1informers.ResourceClaimIndexInformer](v.f.informer(v.f.caches.ResourceClaims), resourcev1listers.NewResourceClaimLister)
}

func (f *Factory) Admissionregistration() admissionregistrationinformers.Interface {
	return admissionGroup{f: f}
}

type coreGroup struct {
	coreinformers.Interface
	f *Factory
}

func (g coreGroup) V1() corev1informers.Interface { return coreV1{f: g.f} }

type coreV1 struct {
	corev1informers.Interface
	f *Factory
}

func (v coreV1) Namespaces() corev1informers.TypedNamespaceInformer {
	return newTyped[corev1informers.NamespaceIndexInformer](v.f.informer(v.f.caches.Namespaces), corev1listers.NewNamespaceLister)
}

func (v coreV1) LimitRanges() corev1informers.TypedLimitRangeInformer {
	return newTyped[corev1informers.LimitRangeIndexInformer](v.f.informer(v.f.caches.LimitRanges), corev1listers.NewLimitRangeLister)
}

func (v coreV1) Pods() corev1informers.TypedPodInformer {
	return newTyped[corev1informers.PodIndexInformer](v.f.informer(v.f.caches.Pods), corev1listers.NewPodLister)
}

// Nodes are root's: a tenant's pods run on the management plane's nodes,
// those Caches.MayUseNode lets through.
func (v coreV1) Nodes() corev1informers.TypedNodeInformer {
	inf := NewInformer(v.f.caches.Nodes, tenant.Root)
	inf.regs = &v.f.regs
	if may := v.f.caches.MayUseNode; may != nil {
		t := v.f.tenant
		inf.idx.keep = func(obj any) bool {
			n, ok := crosstenant.Unwrap(obj).(*corev1.Node)
			return ok && may(t, n.Labels)
		}
	}
	return newTyped[corev1informers.NodeIndexInformer](inf, corev1listers.NewNodeLister)
}

func (v coreV1) Endpoints() corev1informers.TypedEndpointsInformer {
	return newTyped[corev1informers.EndpointsIndexInformer](v.f.informer(v.f.caches.Endpoints), corev1listers.NewEndpointsLister)
}

func (f *Factory) Discovery() discoveryinformers.Interface { return discoveryGroup{f: f} }

type discoveryGroup struct {
	discoveryinformers.Interface
	f *Factory
}

func (g discoveryGroup) V1() discoveryv1informers.Interface { return discoveryV1{f: g.f} }

type discoveryV1 struct {
	discoveryv1informers.Interface
	f *Factory
}

func (v discoveryV1) EndpointSlices() discoveryv1informers.TypedEndpointSliceInformer {
	return newTyped[discoveryv1informers.EndpointSliceIndexInformer](v.f.informer(v.f.caches.EndpointSlices), discoveryv1listers.NewEndpointSliceLister)
}

func (v coreV1) ReplicationControllers() corev1informers.TypedReplicationControllerInformer {
	return newTyped[corev1informers.ReplicationControllerIndexInformer](v.f.informer(v.f.caches.ReplicationControllers), corev1listers.NewReplicationControllerLister)
}

func (f *Factory) Policy() policyinformers.Interface { return policyGroup{f: f} }

type policyGroup struct {
	policyinformers.Interface
	f *Factory
}

func (g policyGroup) V1() policyv1informers.Interface { return policyV1{f: g.f} }

type policyV1 struct {
	policyv1informers.Interface
	f *Factory
}

func (v policyV1) PodDisruptionBudgets() policyv1informers.TypedPodDisruptionBudgetInformer {
	return newTyped[policyv1informers.PodDisruptionBudgetIndexInformer](v.f.informer(v.f.caches.PodDisruptionBudgets), policyv1listers.NewPodDisruptionBudgetLister)
}

func (v coreV1) Services() corev1informers.TypedServiceInformer {
	return newTyped[corev1informers.ServiceIndexInformer](v.f.informer(v.f.caches.Services), corev1listers.NewServiceLister)
}

func (v coreV1) PersistentVolumeClaims() corev1informers.TypedPersistentVolumeClaimInformer {
	return newTyped[corev1informers.PersistentVolumeClaimIndexInformer](v.f.informer(v.f.caches.PersistentVolumeClaims), corev1listers.NewPersistentVolumeClaimLister)
}

func (v coreV1) ResourceQuotas() corev1informers.TypedResourceQuotaInformer {
	return newTyped[corev1informers.ResourceQuotaIndexInformer](v.f.informer(v.f.caches.ResourceQuotas), corev1listers.NewResourceQuotaLister)
}

func (v coreV1) ServiceAccounts() corev1informers.TypedServiceAccountInformer {
	return newTyped[corev1informers.ServiceAccountIndexInformer](v.f.informer(v.f.caches.ServiceAccounts), corev1listers.NewServiceAccountLister)
}

func (v coreV1) Secrets() corev1informers.TypedSecretInformer {
	return newTyped[corev1informers.SecretIndexInformer](v.f.informer(v.f.caches.Secrets), corev1listers.NewSecretLister)
}

func (v coreV1) ConfigMaps() corev1informers.TypedConfigMapInformer {
	return newTyped[corev1informers.ConfigMapIndexInformer](v.f.informer(v.f.caches.ConfigMaps), corev1listers.NewConfigMapLister)
}

type appsGroup struct {
	appsinformers.Interface
	f *Factory
}

func (g appsGroup) V1() appsv1informers.Interface { return appsV1{f: g.f} }

type appsV1 struct {
	appsv1informers.Interface
	f *Factory
}

func (v appsV1) Deployments() appsv1informers.TypedDeploymentInformer {
	return newTyped[appsv1informers.DeploymentIndexInformer](v.f.informer(v.f.caches.Deployments), appsv1listers.NewDeploymentLister)
}

func (v appsV1) ReplicaSets() appsv1informers.TypedReplicaSetInformer {
	return newTyped[appsv1informers.ReplicaSetIndexInformer](v.f.informer(v.f.caches.ReplicaSets), appsv1listers.NewReplicaSetLister)
}

func (v appsV1) DaemonSets() appsv1informers.TypedDaemonSetInformer {
	return newTyped[appsv1informers.DaemonSetIndexInformer](v.f.informer(v.f.caches.DaemonSets), appsv1listers.NewDaemonSetLister)
}

func (v appsV1) StatefulSets() appsv1informers.TypedStatefulSetInformer {
	return newTyped[appsv1informers.StatefulSetIndexInformer](v.f.informer(v.f.caches.StatefulSets), appsv1listers.NewStatefulSetLister)
}

func (v appsV1) ControllerRevisions() appsv1informers.TypedControllerRevisionInformer {
	return newTyped[appsv1informers.ControllerRevisionIndexInformer](v.f.informer(v.f.caches.ControllerRevisions), appsv1listers.NewControllerRevisionLister)
}

type admissionGroup struct {
	admissionregistrationinformers.Interface
	f *Factory
}

func (g admissionGroup) V1() admissionregistrationv1informers.Interface { return admissionV1{f: g.f} }

type admissionV1 struct {
	admissionregistrationv1informers.Interface
	f *Factory
}

func (v admissionV1) MutatingWebhookConfigurations() admissionregistrationv1informers.TypedMutatingWebhookConfigurationInformer {
	return newTyped[admissionregistrationv1informers.MutatingWebhookConfigurationIndexInformer](v.f.informer(v.f.caches.MutatingWebhooks), admissionregistrationv1listers.NewMutatingWebhookConfigurationLister)
}

func (v admissionV1) ValidatingWebhookConfigurations() admissionregistrationv1informers.TypedValidatingWebhookConfigurationInformer {
	return newTyped[admissionregistrationv1informers.ValidatingWebhookConfigurationIndexInformer](v.f.informer(v.f.caches.ValidatingWebhooks), admissionregistrationv1listers.NewValidatingWebhookConfigurationLister)
}

func (v admissionV1) ValidatingAdmissionPolicies() admissionregistrationv1informers.TypedValidatingAdmissionPolicyInformer {
	return newTyped[admissionregistrationv1informers.ValidatingAdmissionPolicyIndexInformer](v.f.informer(v.f.caches.Policies), admissionregistrationv1listers.NewValidatingAdmissionPolicyLister)
}

func (v admissionV1) ValidatingAdmissionPolicyBindings() admissionregistrationv1informers.TypedValidatingAdmissionPolicyBindingInformer {
	return newTyped[admissionregistrationv1informers.ValidatingAdmissionPolicyBindingIndexInformer](v.f.informer(v.f.caches.PolicyBindings), admissionregistrationv1listers.NewValidatingAdmissionPolicyBindingLister)
}

func (v admissionV1) MutatingAdmissionPolicies() admissionregistrationv1informers.TypedMutatingAdmissionPolicyInformer {
	return newTyped[admissionregistrationv1informers.MutatingAdmissionPolicyIndexInformer](v.f.informer(v.f.caches.MutatingPolicies), admissionregistrationv1listers.NewMutatingAdmissionPolicyLister)
}

func (v admissionV1) MutatingAdmissionPolicyBindings() admissionregistrationv1informers.TypedMutatingAdmissionPolicyBindingInformer {
	return newTyped[admissionregistrationv1informers.MutatingAdmissionPolicyBindingIndexInformer](v.f.informer(v.f.caches.MutatingPolicyBindings), admissionregistrationv1listers.NewMutatingAdmissionPolicyBindingLister)
}
