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
	resourceinformers "k8s.io/client-go/informers/resource"
	resourcev1informers "k8s.io/client-go/informers/resource/v1"
	admissionregistrationv1listers "k8s.io/client-go/listers/admissionregistration/v1"
	appsv1listers "k8s.io/client-go/listers/apps/v1"
	batchv1listers "k8s.io/client-go/listers/batch/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	discoveryv1listers "k8s.io/client-go/listers/discovery/v1"
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
	Services               *crosstenant.Cache
	PersistentVolumeClaims *crosstenant.Cache
	ResourceQuotas         *crosstenant.Cache
	ResourceClaims         *crosstenant.Cache
	Endpoints              *crosstenant.Cache
	EndpointSlices         *crosstenant.Cache
	// DeviceClasses and Nodes are the management plane's, read by every
	// tenant.
	DeviceClasses      *crosstenant.Cache
	Nodes              *crosstenant.Cache
	Namespaces         *crosstenant.Cache
	LimitRanges        *crosstenant.Cache
	MutatingWebhooks   *crosstenant.Cache
	ValidatingWebhooks *crosstenant.Cache
	Policies           *crosstenant.Cache
	PolicyBindings     *crosstenant.Cache
	ServiceAccounts    *crosstenant.Cache
	ConfigMaps         *crosstenant.Cache
}

// HasSynced reports whether every cache has synced.
func (c *Caches) HasSynced() bool {
	for _, x := range []*crosstenant.Cache{c.Pods, c.ReplicaSets, c.Deployments, c.Jobs, c.CronJobs, c.StatefulSets, c.ControllerRevisions, c.Services, c.PersistentVolumeClaims, c.ResourceQuotas, c.ResourceClaims, c.Endpoints, c.EndpointSlices, c.DeviceClasses, c.Nodes, c.Namespaces, c.LimitRanges, c.MutatingWebhooks, c.ValidatingWebhooks, c.Policies, c.PolicyBindings, c.ServiceAccounts, c.ConfigMaps} {
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

// whole returns the cache of whole objects of r; the ServiceAccounts and
// ConfigMaps caches hold selected objects only and are never one.
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
	return jobs{inf: v.f.informer(v.f.caches.Jobs)}
}

func (v batchV1) CronJobs() batchv1informers.TypedCronJobInformer {
	return cronJobs{inf: v.f.informer(v.f.caches.CronJobs)}
}

type cronJobs struct {
	batchv1informers.TypedCronJobInformer
	inf *Informer
}

func (n cronJobs) Informer() cache.SharedIndexInformer { return n.inf }
func (n cronJobs) Lister() batchv1listers.CronJobLister {
	return batchv1listers.NewCronJobLister(n.inf.idx)
}

type jobs struct {
	batchv1informers.TypedJobInformer
	inf *Informer
}

func (n jobs) Informer() cache.SharedIndexInformer { return n.inf }
func (n jobs) Lister() batchv1listers.JobLister    { return batchv1listers.NewJobLister(n.inf.idx) }

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
	return deviceClasses{inf: NewInformer(v.f.caches.DeviceClasses, tenant.Root)}
}

func (v resourceV1) ResourceClaims() resourcev1informers.TypedResourceClaimInformer {
	return resourceClaims{inf: v.f.informer(v.f.caches.ResourceClaims)}
}

type deviceClasses struct {
	resourcev1informers.TypedDeviceClassInformer
	inf *Informer
}

func (n deviceClasses) Informer() cache.SharedIndexInformer { return n.inf }
func (n deviceClasses) Lister() resourcev1listers.DeviceClassLister {
	return resourcev1listers.NewDeviceClassLister(n.inf.idx)
}

type resourceClaims struct {
	resourcev1informers.TypedResourceClaimInformer
	inf *Informer
}

func (n resourceClaims) Informer() cache.SharedIndexInformer { return n.inf }
func (n resourceClaims) Lister() resourcev1listers.ResourceClaimLister {
	return resourcev1listers.NewResourceClaimLister(n.inf.idx)
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
	return namespaces{inf: v.f.informer(v.f.caches.Namespaces)}
}

func (v coreV1) LimitRanges() corev1informers.TypedLimitRangeInformer {
	return limitRanges{inf: v.f.informer(v.f.caches.LimitRanges)}
}

func (v coreV1) Pods() corev1informers.TypedPodInformer {
	return pods{inf: v.f.informer(v.f.caches.Pods)}
}

// Nodes are root's: a tenant's pods run on the management plane's nodes.
func (v coreV1) Nodes() corev1informers.TypedNodeInformer {
	return nodes{inf: NewInformer(v.f.caches.Nodes, tenant.Root)}
}

func (v coreV1) Endpoints() corev1informers.TypedEndpointsInformer {
	return endpoints{inf: v.f.informer(v.f.caches.Endpoints)}
}

type nodes struct {
	corev1informers.TypedNodeInformer
	inf *Informer
}

func (n nodes) Informer() cache.SharedIndexInformer { return n.inf }
func (n nodes) Lister() corev1listers.NodeLister    { return corev1listers.NewNodeLister(n.inf.idx) }

type endpoints struct {
	corev1informers.TypedEndpointsInformer
	inf *Informer
}

func (n endpoints) Informer() cache.SharedIndexInformer { return n.inf }
func (n endpoints) Lister() corev1listers.EndpointsLister {
	return corev1listers.NewEndpointsLister(n.inf.idx)
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
	return endpointSlices{inf: v.f.informer(v.f.caches.EndpointSlices)}
}

type endpointSlices struct {
	discoveryv1informers.TypedEndpointSliceInformer
	inf *Informer
}

func (n endpointSlices) Informer() cache.SharedIndexInformer { return n.inf }
func (n endpointSlices) Lister() discoveryv1listers.EndpointSliceLister {
	return discoveryv1listers.NewEndpointSliceLister(n.inf.idx)
}

func (v coreV1) Services() corev1informers.TypedServiceInformer {
	return services{inf: v.f.informer(v.f.caches.Services)}
}

func (v coreV1) PersistentVolumeClaims() corev1informers.TypedPersistentVolumeClaimInformer {
	return pvcs{inf: v.f.informer(v.f.caches.PersistentVolumeClaims)}
}

func (v coreV1) ResourceQuotas() corev1informers.TypedResourceQuotaInformer {
	return resourceQuotas{inf: v.f.informer(v.f.caches.ResourceQuotas)}
}

type services struct {
	corev1informers.TypedServiceInformer
	inf *Informer
}

func (n services) Informer() cache.SharedIndexInformer { return n.inf }
func (n services) Lister() corev1listers.ServiceLister {
	return corev1listers.NewServiceLister(n.inf.idx)
}

type pvcs struct {
	corev1informers.TypedPersistentVolumeClaimInformer
	inf *Informer
}

func (n pvcs) Informer() cache.SharedIndexInformer { return n.inf }
func (n pvcs) Lister() corev1listers.PersistentVolumeClaimLister {
	return corev1listers.NewPersistentVolumeClaimLister(n.inf.idx)
}

type resourceQuotas struct {
	corev1informers.TypedResourceQuotaInformer
	inf *Informer
}

func (n resourceQuotas) Informer() cache.SharedIndexInformer { return n.inf }
func (n resourceQuotas) Lister() corev1listers.ResourceQuotaLister {
	return corev1listers.NewResourceQuotaLister(n.inf.idx)
}

func (v coreV1) ServiceAccounts() corev1informers.TypedServiceAccountInformer {
	return serviceAccounts{inf: v.f.informer(v.f.caches.ServiceAccounts)}
}

func (v coreV1) ConfigMaps() corev1informers.TypedConfigMapInformer {
	return configMaps{inf: v.f.informer(v.f.caches.ConfigMaps)}
}

type serviceAccounts struct {
	corev1informers.TypedServiceAccountInformer
	inf *Informer
}

func (n serviceAccounts) Informer() cache.SharedIndexInformer { return n.inf }
func (n serviceAccounts) Lister() corev1listers.ServiceAccountLister {
	return corev1listers.NewServiceAccountLister(n.inf.idx)
}

type configMaps struct {
	corev1informers.TypedConfigMapInformer
	inf *Informer
}

func (n configMaps) Informer() cache.SharedIndexInformer { return n.inf }
func (n configMaps) Lister() corev1listers.ConfigMapLister {
	return corev1listers.NewConfigMapLister(n.inf.idx)
}

type namespaces struct {
	corev1informers.TypedNamespaceInformer
	inf *Informer
}

func (n namespaces) Informer() cache.SharedIndexInformer { return n.inf }
func (n namespaces) Lister() corev1listers.NamespaceLister {
	return corev1listers.NewNamespaceLister(n.inf.idx)
}

type limitRanges struct {
	corev1informers.TypedLimitRangeInformer
	inf *Informer
}

func (n limitRanges) Informer() cache.SharedIndexInformer { return n.inf }
func (n limitRanges) Lister() corev1listers.LimitRangeLister {
	return corev1listers.NewLimitRangeLister(n.inf.idx)
}

type pods struct {
	corev1informers.TypedPodInformer
	inf *Informer
}

func (n pods) Informer() cache.SharedIndexInformer { return n.inf }
func (n pods) Lister() corev1listers.PodLister     { return corev1listers.NewPodLister(n.inf.idx) }

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
	return deployments{inf: v.f.informer(v.f.caches.Deployments)}
}

func (v appsV1) ReplicaSets() appsv1informers.TypedReplicaSetInformer {
	return replicaSets{inf: v.f.informer(v.f.caches.ReplicaSets)}
}

func (v appsV1) StatefulSets() appsv1informers.TypedStatefulSetInformer {
	return statefulSets{inf: v.f.informer(v.f.caches.StatefulSets)}
}

func (v appsV1) ControllerRevisions() appsv1informers.TypedControllerRevisionInformer {
	return controllerRevisions{inf: v.f.informer(v.f.caches.ControllerRevisions)}
}

type statefulSets struct {
	appsv1informers.TypedStatefulSetInformer
	inf *Informer
}

func (n statefulSets) Informer() cache.SharedIndexInformer { return n.inf }
func (n statefulSets) Lister() appsv1listers.StatefulSetLister {
	return appsv1listers.NewStatefulSetLister(n.inf.idx)
}

type controllerRevisions struct {
	appsv1informers.TypedControllerRevisionInformer
	inf *Informer
}

func (n controllerRevisions) Informer() cache.SharedIndexInformer { return n.inf }
func (n controllerRevisions) Lister() appsv1listers.ControllerRevisionLister {
	return appsv1listers.NewControllerRevisionLister(n.inf.idx)
}

type deployments struct {
	appsv1informers.TypedDeploymentInformer
	inf *Informer
}

func (n deployments) Informer() cache.SharedIndexInformer { return n.inf }
func (n deployments) Lister() appsv1listers.DeploymentLister {
	return appsv1listers.NewDeploymentLister(n.inf.idx)
}

type replicaSets struct {
	appsv1informers.TypedReplicaSetInformer
	inf *Informer
}

func (n replicaSets) Informer() cache.SharedIndexInformer { return n.inf }
func (n replicaSets) Lister() appsv1listers.ReplicaSetLister {
	return appsv1listers.NewReplicaSetLister(n.inf.idx)
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
	return mutatingWebhooks{inf: v.f.informer(v.f.caches.MutatingWebhooks)}
}

func (v admissionV1) ValidatingWebhookConfigurations() admissionregistrationv1informers.TypedValidatingWebhookConfigurationInformer {
	return validatingWebhooks{inf: v.f.informer(v.f.caches.ValidatingWebhooks)}
}

func (v admissionV1) ValidatingAdmissionPolicies() admissionregistrationv1informers.TypedValidatingAdmissionPolicyInformer {
	return policies{inf: v.f.informer(v.f.caches.Policies)}
}

func (v admissionV1) ValidatingAdmissionPolicyBindings() admissionregistrationv1informers.TypedValidatingAdmissionPolicyBindingInformer {
	return policyBindings{inf: v.f.informer(v.f.caches.PolicyBindings)}
}

type mutatingWebhooks struct {
	admissionregistrationv1informers.TypedMutatingWebhookConfigurationInformer
	inf *Informer
}

func (n mutatingWebhooks) Informer() cache.SharedIndexInformer { return n.inf }
func (n mutatingWebhooks) Lister() admissionregistrationv1listers.MutatingWebhookConfigurationLister {
	return admissionregistrationv1listers.NewMutatingWebhookConfigurationLister(n.inf.idx)
}

type validatingWebhooks struct {
	admissionregistrationv1informers.TypedValidatingWebhookConfigurationInformer
	inf *Informer
}

func (n validatingWebhooks) Informer() cache.SharedIndexInformer { return n.inf }
func (n validatingWebhooks) Lister() admissionregistrationv1listers.ValidatingWebhookConfigurationLister {
	return admissionregistrationv1listers.NewValidatingWebhookConfigurationLister(n.inf.idx)
}

type policies struct {
	admissionregistrationv1informers.TypedValidatingAdmissionPolicyInformer
	inf *Informer
}

func (n policies) Informer() cache.SharedIndexInformer { return n.inf }
func (n policies) Lister() admissionregistrationv1listers.ValidatingAdmissionPolicyLister {
	return admissionregistrationv1listers.NewValidatingAdmissionPolicyLister(n.inf.idx)
}

type policyBindings struct {
	admissionregistrationv1informers.TypedValidatingAdmissionPolicyBindingInformer
	inf *Informer
}

func (n policyBindings) Informer() cache.SharedIndexInformer { return n.inf }
func (n policyBindings) Lister() admissionregistrationv1listers.ValidatingAdmissionPolicyBindingLister {
	return admissionregistrationv1listers.NewValidatingAdmissionPolicyBindingLister(n.inf.idx)
}
