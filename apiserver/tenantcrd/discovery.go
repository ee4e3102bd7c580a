package tenantcrd

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiextensionshelpers "k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsapiserver "k8s.io/apiextensions-apiserver/pkg/apiserver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/version"
	apidiscoveryv2conversion "k8s.io/apiserver/pkg/apis/apidiscovery/v2"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	"k8s.io/apiserver/pkg/endpoints/discovery/aggregated"
	"k8s.io/apiserver/pkg/endpoints/handlers/negotiation"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"

	"github.com/kplex/kplex/apiserver/routing"
)

// A tenant's discovery is root's built-in groups, without root's CRD groups,
// plus the groups of the tenant's own Established CRDs. Root's document is
// fetched from the server itself (revalidated by ETag), so built-in and
// aggregated groups stay exactly upstream's; the tenant's part is built as
// upstream's CRD discovery controller builds it.

const aggregatedV2JSON = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

// discoveryCodecs encode aggregated discovery in every version and format
// upstream serves it in.
var discoveryCodecs = func() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	utilruntime.Must(apidiscoveryv2.AddToScheme(scheme))
	utilruntime.Must(apidiscoveryv2beta1.AddToScheme(scheme))
	utilruntime.Must(apidiscoveryv2conversion.RegisterConversions(scheme))
	return serializer.NewCodecFactory(scheme)
}()

// legacyCodecs encode the unversioned discovery types.
var legacyCodecs = serializer.WithoutConversionCodecFactory{CodecFactory: apiextensionsapiserver.Codecs}

// discoveryCache holds root's document and the tenants' documents built on it.
type discoveryCache struct {
	mu       sync.Mutex
	baseETag string
	base     *apidiscoveryv2.APIGroupDiscoveryList
	// checked is when base was last revalidated.
	checked time.Time
	// docs are keyed by what a document is built from; tenants with the
	// same CRDs share one.
	docs map[string]*tenantDoc
}

// baseRecheck is how often root's document is revalidated: its groups
// change when root's APIs do, rarely, and revalidating serializes requests.
const baseRecheck = time.Second

type tenantDoc struct {
	doc  *apidiscoveryv2.APIGroupDiscoveryList
	etag string
}

// maxCachedDocs bounds the cache; it is emptied when full.
const maxCachedDocs = 256

// serveDiscovery answers /apis, /apis/<group> and /apis/<group>/<version>
// for tenant t. It returns false for paths that are not its own, such as a
// built-in group's.
func (m *Manager) serveDiscovery(w http.ResponseWriter, req *http.Request, t string, next http.Handler) bool {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	if parts[0] != "apis" || len(parts) > 3 || !m.HasSynced() {
		return false
	}
	if len(parts) == 1 {
		m.serveGroups(w, req, t, next)
		return true
	}
	group := parts[1]
	if m.builtin.Has(group) {
		return false
	}
	var mine *crdGroup
	for _, g := range groupsOf(m.crdsOf(t)) {
		if g.name == group {
			mine = &g
		}
	}
	switch {
	case mine == nil && m.rootGroups().Has(group):
		notFound(w, req)
	case mine == nil:
		return false
	case len(parts) == 2:
		discovery.NewAPIGroupHandler(legacyCodecs, mine.apiGroup()).ServeHTTP(w, req)
	default:
		resources, ok := mine.resources[parts[2]]
		if !ok {
			notFound(w, req)
			return true
		}
		gv := schema.GroupVersion{Group: group, Version: parts[2]}
		discovery.NewAPIVersionHandler(legacyCodecs, gv, discovery.APIResourceListerFunc(func() []metav1.APIResource {
			return resources
		})).ServeHTTP(w, req)
	}
	return true
}

// serveGroups answers /apis, aggregated or not, as the client asked.
func (m *Manager) serveGroups(w http.ResponseWriter, req *http.Request, t string, next http.Handler) {
	doc, err := m.tenantDiscovery(req, t, next)
	if err != nil {
		routing.WriteStatus(w, apierrors.NewInternalError(err))
		return
	}
	mediaType, _ := negotiation.NegotiateMediaTypeOptions(req.Header.Get("Accept"), discoveryCodecs.SupportedMediaTypes(), aggregated.DiscoveryEndpointRestrictions)
	if aggregated.IsAggregatedDiscoveryGVK(mediaType.Convert) {
		aggregated.ServeHTTPWithETag(doc.doc, doc.etag, mediaType.Convert.GroupVersion(), discoveryCodecs, w, req)
		return
	}
	list := &metav1.APIGroupList{}
	for _, g := range doc.doc.Items {
		group := metav1.APIGroup{Name: g.Name}
		for _, v := range g.Versions {
			group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: g.Name + "/" + v.Version, Version: v.Version})
		}
		if len(group.Versions) > 0 {
			group.PreferredVersion = group.Versions[0]
		}
		list.Groups = append(list.Groups, group)
	}
	responsewriters.WriteObjectNegotiated(legacyCodecs, negotiation.DefaultEndpointRestrictions, schema.GroupVersion{}, w, req, http.StatusOK, list, false)
}

// tenantDiscovery returns t's aggregated discovery document.
func (m *Manager) tenantDiscovery(req *http.Request, t string, next http.Handler) (*tenantDoc, error) {
	c := &m.discovery
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.refreshBase(req, next); err != nil {
		return nil, err
	}
	rootGroups := sets.List(m.rootGroups())
	groups := groupsOf(m.crdsOf(t))
	// Tenants whose CRDs discover alike share a document.
	var aggregatedGroups []apidiscoveryv2.APIGroupDiscovery
	for _, g := range groups {
		aggregatedGroups = append(aggregatedGroups, g.aggregated)
	}
	own, err := json.Marshal(aggregatedGroups)
	if err != nil {
		return nil, fmt.Errorf("encoding a tenant's discovery: %w", err)
	}
	key := fmt.Sprintf("%s|%s|%x", c.baseETag, strings.Join(rootGroups, ","), sha512.Sum512(own))
	if doc, ok := c.docs[key]; ok {
		return doc, nil
	}
	out := &apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: c.base.TypeMeta}
	for _, g := range c.base.Items {
		if !slices.Contains(rootGroups, g.Name) {
			out.Items = append(out.Items, g)
		}
	}
	out.Items = append(out.Items, aggregatedGroups...)
	serialized, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encoding a tenant's discovery: %w", err)
	}
	doc := &tenantDoc{doc: out, etag: fmt.Sprintf("%X", sha512.Sum512(serialized))}
	if len(c.docs) >= maxCachedDocs || c.docs == nil {
		c.docs = map[string]*tenantDoc{}
	}
	c.docs[key] = doc
	return doc, nil
}

// refreshBase revalidates root's aggregated discovery document, asking the
// server behind the filter for it.
func (c *discoveryCache) refreshBase(req *http.Request, next http.Handler) error {
	if c.base != nil && time.Since(c.checked) < baseRecheck {
		return nil
	}
	c.checked = time.Now()
	r := req.Clone(req.Context())
	// Aggregated discovery is served at /apis alone: /apis/ is the legacy
	// handler, which refuses the aggregated media type.
	r.URL.Path, r.URL.RawPath, r.RequestURI = "/apis", "", "/apis"
	r.Header = http.Header{"Accept": {aggregatedV2JSON}}
	if c.base != nil {
		r.Header.Set("If-None-Match", strconv.Quote(c.baseETag))
	}
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	next.ServeHTTP(rec, r)
	switch rec.code {
	case http.StatusNotModified:
		return nil
	case http.StatusOK:
	default:
		return fmt.Errorf("root's discovery answered %d: %s", rec.code, rec.body.String())
	}
	base := &apidiscoveryv2.APIGroupDiscoveryList{}
	if err := json.Unmarshal(rec.body.Bytes(), base); err != nil {
		return fmt.Errorf("decoding root's discovery: %w", err)
	}
	etag, err := strconv.Unquote(rec.header.Get("ETag"))
	if err != nil {
		etag = rec.header.Get("ETag")
	}
	c.base, c.baseETag, c.docs = base, etag, nil
	return nil
}

// crdsOf returns tenant t's CRDs, sorted by name.
func (m *Manager) crdsOf(t string) []*apiextensionsv1.CustomResourceDefinition {
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, obj := range m.crds.InTenant(t) {
		out = append(out, obj.(*apiextensionsv1.CustomResourceDefinition))
	}
	slices.SortFunc(out, func(a, b *apiextensionsv1.CustomResourceDefinition) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// crdGroup is the discovery of one group of a tenant's CRDs.
type crdGroup struct {
	name       string
	aggregated apidiscoveryv2.APIGroupDiscovery
	// resources are the legacy discovery's, by version.
	resources map[string][]metav1.APIResource
}

func (g crdGroup) apiGroup() metav1.APIGroup {
	group := metav1.APIGroup{Name: g.name}
	for _, v := range g.aggregated.Versions {
		group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: g.name + "/" + v.Version, Version: v.Version})
	}
	if len(group.Versions) > 0 {
		group.PreferredVersion = group.Versions[0]
	}
	return group
}

// groupsOf builds the discovery of Established CRDs' served versions, as
// upstream's discovery controller does, groups sorted by name and versions
// by Kubernetes version order.
func groupsOf(crds []*apiextensionsv1.CustomResourceDefinition) []crdGroup {
	byName := map[string]*crdGroup{}
	versions := map[string]map[string]*apidiscoveryv2.APIVersionDiscovery{}
	for _, crd := range crds {
		if !apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) {
			continue
		}
		group := crd.Spec.Group
		g := byName[group]
		if g == nil {
			g = &crdGroup{name: group, resources: map[string][]metav1.APIResource{}}
			g.aggregated.Name = group
			byName[group] = g
			versions[group] = map[string]*apidiscoveryv2.APIVersionDiscovery{}
		}
		names := crd.Status.AcceptedNames
		namespaced := crd.Spec.Scope == apiextensionsv1.NamespaceScoped
		scope := apidiscoveryv2.ScopeCluster
		if namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		verbs := metav1.Verbs{"delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"}
		if apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.Terminating) {
			verbs = metav1.Verbs{"delete", "deletecollection", "get", "list", "watch"}
		}
		var storageVersionHash string
		for _, v := range crd.Spec.Versions {
			if v.Storage {
				storageVersionHash = discovery.StorageVersionHash(group, v.Name, names.Kind)
			}
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			kind := &metav1.GroupVersionKind{Group: group, Version: v.Name, Kind: names.Kind}
			resource := apidiscoveryv2.APIResourceDiscovery{
				Resource: names.Plural, SingularResource: names.Singular, Scope: scope, ResponseKind: kind,
				Verbs: verbs, ShortNames: names.ShortNames, Categories: names.Categories,
			}
			legacy := []metav1.APIResource{{
				Name: names.Plural, SingularName: names.Singular, Namespaced: namespaced, Kind: names.Kind,
				Verbs: verbs, ShortNames: names.ShortNames, Categories: names.Categories, StorageVersionHash: storageVersionHash,
			}}
			subresources, _ := apiextensionshelpers.GetSubresourcesForVersion(crd, v.Name)
			subVerbs := metav1.Verbs{"get", "patch", "update"}
			if subresources != nil && subresources.Status != nil {
				resource.Subresources = append(resource.Subresources, apidiscoveryv2.APISubresourceDiscovery{Subresource: "status", ResponseKind: kind, Verbs: subVerbs})
				legacy = append(legacy, metav1.APIResource{Name: names.Plural + "/status", Namespaced: namespaced, Kind: names.Kind, Verbs: subVerbs})
			}
			if subresources != nil && subresources.Scale != nil {
				scale := &metav1.GroupVersionKind{Group: autoscalingv1.GroupName, Version: "v1", Kind: "Scale"}
				resource.Subresources = append(resource.Subresources, apidiscoveryv2.APISubresourceDiscovery{Subresource: "scale", ResponseKind: scale, Verbs: subVerbs})
				legacy = append(legacy, metav1.APIResource{Name: names.Plural + "/scale", Group: scale.Group, Version: scale.Version, Kind: scale.Kind, Namespaced: namespaced, Verbs: subVerbs})
			}
			vd := versions[group][v.Name]
			if vd == nil {
				vd = &apidiscoveryv2.APIVersionDiscovery{Version: v.Name, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
				versions[group][v.Name] = vd
			}
			vd.Resources = append(vd.Resources, resource)
			g.resources[v.Name] = append(g.resources[v.Name], legacy...)
		}
	}
	var out []crdGroup
	for name, g := range byName {
		for _, vd := range versions[name] {
			slices.SortFunc(vd.Resources, func(a, b apidiscoveryv2.APIResourceDiscovery) int { return strings.Compare(a.Resource, b.Resource) })
			g.aggregated.Versions = append(g.aggregated.Versions, *vd)
		}
		slices.SortFunc(g.aggregated.Versions, func(a, b apidiscoveryv2.APIVersionDiscovery) int {
			return -version.CompareKubeAwareVersionStrings(a.Version, b.Version)
		})
		if len(g.aggregated.Versions) > 0 {
			out = append(out, *g)
		}
	}
	slices.SortFunc(out, func(a, b crdGroup) int { return strings.Compare(a.name, b.name) })
	return out
}

// recorder keeps a response in memory.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }
