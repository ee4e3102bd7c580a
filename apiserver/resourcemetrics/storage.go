package resourcemetrics

import (
	"context"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/metadata"
	restclient "k8s.io/client-go/rest"
	"k8s.io/metrics/pkg/apis/metrics"
	"k8s.io/metrics/pkg/apis/metrics/install"

	"github.com/kplex/kplex/tenant"
)

var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
)

func init() {
	install.Install(scheme)
	// Request options (get, list) are meta.k8s.io/v1's.
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
}

// Install serves metrics.k8s.io (v1 and v1beta1) on s from the scraper's
// figures. loopback, the apiserver's own client, reads a tenant's pods (for
// label selectors) and the nodes it may see.
func Install(s *genericapiserver.GenericAPIServer, scraper *Scraper, loopback *restclient.Config) error {
	info := genericapiserver.NewDefaultAPIGroupInfo(metrics.GroupName, scheme, runtime.NewParameterCodec(scheme), codecs)
	l := &lookup{loopback: loopback}
	resources := map[string]rest.Storage{
		"pods":  &podMetrics{scraper: scraper, lookup: l, TableConvertor: rest.NewDefaultTableConvertor(metrics.Resource("pods"))},
		"nodes": &nodeMetrics{scraper: scraper, lookup: l, TableConvertor: rest.NewDefaultTableConvertor(metrics.Resource("nodes"))},
	}
	info.VersionedResourcesStorageMap["v1"] = resources
	info.VersionedResourcesStorageMap["v1beta1"] = resources
	if err := s.InstallAPIGroup(&info); err != nil {
		return fmt.Errorf("installing %s: %w", metrics.GroupName, err)
	}
	return nil
}

// lookup reads, as a tenant's request would, the objects whose metrics
// a tenant may read.
type lookup struct{ loopback *restclient.Config }

func (l *lookup) client(tenantName string) (metadata.Interface, error) {
	cfg := restclient.CopyConfig(l.loopback)
	cfg.Host += tenant.Path(tenantName)
	return metadata.NewForConfig(cfg)
}

// names lists the names of a resource's objects in tenantName (and
// namespace) that opts' selectors match.
func (l *lookup) names(ctx context.Context, tenantName string, gvr schema.GroupVersionResource, namespace string, opts *metainternalversion.ListOptions) (map[string]bool, error) {
	c, err := l.client(tenantName)
	if err != nil {
		return nil, err
	}
	var o metav1.ListOptions
	if opts != nil {
		if opts.LabelSelector != nil {
			o.LabelSelector = opts.LabelSelector.String()
		}
		if opts.FieldSelector != nil {
			o.FieldSelector = opts.FieldSelector.String()
		}
	}
	list, err := c.Resource(gvr).Namespace(namespace).List(ctx, o)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(list.Items))
	for _, m := range list.Items {
		out[m.Namespace+"/"+m.Name] = true
	}
	return out, nil
}

func selective(opts *metainternalversion.ListOptions) bool {
	return opts != nil && ((opts.LabelSelector != nil && !opts.LabelSelector.Empty()) || (opts.FieldSelector != nil && !opts.FieldSelector.Empty()))
}

// podMetrics serves a tenant its pods' usage.
type podMetrics struct {
	scraper *Scraper
	lookup  *lookup
	rest.TableConvertor
}

var (
	_ rest.Getter               = &podMetrics{}
	_ rest.Lister               = &podMetrics{}
	_ rest.Scoper               = &podMetrics{}
	_ rest.SingularNameProvider = &podMetrics{}
	_ rest.KindProvider         = &podMetrics{}
	_ rest.Storage              = &nodeMetrics{}
	_ rest.Lister               = &nodeMetrics{}
	_ rest.Getter               = &nodeMetrics{}
	_ rest.SingularNameProvider = &nodeMetrics{}
	_ rest.KindProvider         = &nodeMetrics{}
)

// The objects whose metrics a tenant may read, as its own requests name them.
var (
	podsResource  = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	nodesResource = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
)

func (p *podMetrics) New() runtime.Object     { return &metrics.PodMetrics{} }
func (p *podMetrics) NewList() runtime.Object { return &metrics.PodMetricsList{} }
func (p *podMetrics) Destroy()                {}
func (p *podMetrics) NamespaceScoped() bool   { return true }
func (p *podMetrics) GetSingularName() string { return "pod" }
func (p *podMetrics) Kind() string            { return "PodMetrics" }

func (p *podMetrics) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	k := podKey{tenant.FromContext(ctx), genericapirequest.NamespaceValue(ctx), name}
	if m := p.scraper.current.Load().pod(k); m != nil {
		return m.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(metrics.Resource("pods"), name)
}

func (p *podMetrics) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	tenantName, namespace := tenant.FromContext(ctx), genericapirequest.NamespaceValue(ctx)
	snap := p.scraper.current.Load()
	var keep map[string]bool
	if selective(opts) {
		var err error
		if keep, err = p.lookup.names(ctx, tenantName, podsResource, namespace, opts); err != nil {
			return nil, err
		}
	}
	list := &metrics.PodMetricsList{}
	for ns, pods := range snap.pods[tenantName] {
		if namespace != "" && ns != namespace {
			continue
		}
		for name, m := range pods {
			if keep == nil || keep[ns+"/"+name] {
				list.Items = append(list.Items, *m.DeepCopy())
			}
		}
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	return list, nil
}

// nodeMetrics serves the usage of the nodes a tenant may read.
type nodeMetrics struct {
	scraper *Scraper
	lookup  *lookup
	rest.TableConvertor
}

func (n *nodeMetrics) New() runtime.Object     { return &metrics.NodeMetrics{} }
func (n *nodeMetrics) NewList() runtime.Object { return &metrics.NodeMetricsList{} }
func (n *nodeMetrics) Destroy()                {}
func (n *nodeMetrics) NamespaceScoped() bool   { return false }
func (n *nodeMetrics) GetSingularName() string { return "node" }
func (n *nodeMetrics) Kind() string            { return "NodeMetrics" }

// visible lists the nodes the request's tenant reads (through its node
// view), all of them for the management plane without selectors.
func (n *nodeMetrics) visible(ctx context.Context, opts *metainternalversion.ListOptions) (map[string]bool, error) {
	tenantName := tenant.FromContext(ctx)
	if tenantName == tenant.Root && !selective(opts) {
		return nil, nil
	}
	return n.lookup.names(ctx, tenantName, nodesResource, "", opts)
}

func (n *nodeMetrics) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	notFound := apierrors.NewNotFound(metrics.Resource("nodes"), name)
	m := n.scraper.current.Load().nodes[name]
	if m == nil {
		return nil, notFound
	}
	visible, err := n.visible(ctx, nil)
	if err != nil {
		return nil, err
	}
	if visible != nil && !visible["/"+name] {
		return nil, notFound
	}
	return m.DeepCopy(), nil
}

func (n *nodeMetrics) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	visible, err := n.visible(ctx, opts)
	if err != nil {
		return nil, err
	}
	list := &metrics.NodeMetricsList{}
	for name, m := range n.scraper.current.Load().nodes {
		if visible == nil || visible["/"+name] {
			list.Items = append(list.Items, *m.DeepCopy())
		}
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list, nil
}
