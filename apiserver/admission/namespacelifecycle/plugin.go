package namespacelifecycle

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

// PluginName is the name the plugin is registered and enabled by.
const PluginName = "TenantNamespaceLifecycle"

// missingNamespaceWait gives the cache time to see a namespace created just
// before an object in it, before the live lookup.
const missingNamespaceWait = 50 * time.Millisecond

var namespaceKind = corev1.SchemeGroupVersion.WithKind("Namespace").GroupKind()

// immortal are the namespaces every tenant keeps.
var immortal = sets.New(metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic)

// Plugin implements admission.MutationInterface, as upstream's does, so
// that it runs before the plugins that would do work for a doomed request.
type Plugin struct {
	*admission.Handler
	namespaces atomic.Pointer[crosstenant.Cache]
	loopback   atomic.Pointer[rest.RESTClient]
}

var _ admission.MutationInterface = &Plugin{}

// New returns a plugin that admits nothing until Start has given it a way
// to the namespaces.
func New() *Plugin {
	return &Plugin{Handler: admission.NewHandler(admission.Create, admission.Delete)}
}

// Register adds p to plugins as PluginName.
func (p *Plugin) Register(plugins *admission.Plugins) {
	plugins.Register(PluginName, func(io.Reader) (admission.Interface, error) { return p, nil })
}

// Start fills the cross-tenant namespace cache through loopback, a
// privileged config of this apiserver, until ctx ends.
func (p *Plugin) Start(ctx context.Context, loopback *rest.Config) error {
	cross, err := kubernetes.NewForConfig(crosstenant.Config(loopback))
	if err != nil {
		return err
	}
	direct, err := kubernetes.NewForConfig(loopback)
	if err != nil {
		return err
	}
	cache := crosstenant.NewCache(crosstenant.ListWatch(cross.CoreV1().RESTClient(), "namespaces"), &corev1.Namespace{})
	go cache.Run(ctx)
	p.namespaces.Store(cache)
	p.loopback.Store(direct.CoreV1().RESTClient().(*rest.RESTClient))
	return nil
}

// Namespaces is the cross-tenant namespace cache, nil before Start.
func (p *Plugin) Namespaces() *crosstenant.Cache { return p.namespaces.Load() }

// HasSynced reports whether the namespace cache is filled.
func (p *Plugin) HasSynced() bool {
	c := p.namespaces.Load()
	return c != nil && c.HasSynced()
}

// Admit implements admission.MutationInterface.
func (p *Plugin) Admit(ctx context.Context, a admission.Attributes, _ admission.ObjectInterfaces) error {
	isNamespace := a.GetKind().GroupKind() == namespaceKind
	if isNamespace {
		if a.GetOperation() == admission.Delete && immortal.Has(a.GetName()) {
			return apierrors.NewForbidden(a.GetResource().GroupResource(), a.GetName(), fmt.Errorf("this namespace may not be deleted"))
		}
		return nil
	}
	// Cluster-scoped objects, deletions, and access reviews (which would
	// tell whether a namespace exists) go through.
	if a.GetNamespace() == "" || a.GetOperation() != admission.Create || a.GetResource().GroupResource() == localSubjectAccessReviews {
		return nil
	}
	t := tenant.FromContext(ctx)
	ns, err := p.lookup(ctx, t, a.GetNamespace())
	if err != nil {
		return err
	}
	if ns.Status.Phase != corev1.NamespaceTerminating {
		return nil
	}
	forbidden := admission.NewForbidden(a, fmt.Errorf("unable to create new content in namespace %s because it is being terminated", a.GetNamespace()))
	if status, ok := forbidden.(*apierrors.StatusError); ok {
		status.ErrStatus.Details.Causes = append(status.ErrStatus.Details.Causes, metav1.StatusCause{
			Type:    corev1.NamespaceTerminatingCause,
			Message: fmt.Sprintf("namespace %s is being terminated", a.GetNamespace()),
			Field:   "metadata.namespace",
		})
	}
	return forbidden
}

var localSubjectAccessReviews = schema.GroupResource{Group: "authorization.k8s.io", Resource: "localsubjectaccessreviews"}

// lookup finds namespace name of tenant t: in the cache, in it again a
// moment later, and at last on the tenant's own path.
func (p *Plugin) lookup(ctx context.Context, t, name string) (*corev1.Namespace, error) {
	cache := p.namespaces.Load()
	if cache != nil && cache.HasSynced() {
		if obj := cache.Get(t, "", name); obj != nil {
			return obj.(*corev1.Namespace), nil
		}
		time.Sleep(missingNamespaceWait)
		if obj := cache.Get(t, "", name); obj != nil {
			return obj.(*corev1.Namespace), nil
		}
	}
	client := p.loopback.Load()
	if client == nil {
		return nil, apierrors.NewServiceUnavailable("namespace lifecycle admission is not ready yet")
	}
	ns := &corev1.Namespace{}
	if err := client.Get().AbsPath(tenant.Path(t), "api/v1/namespaces", name).Do(ctx).Into(ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, apierrors.NewNotFound(corev1.Resource("namespaces"), name)
		}
		return nil, apierrors.NewInternalError(fmt.Errorf("looking up namespace %q: %w", name, err))
	}
	return ns, nil
}
