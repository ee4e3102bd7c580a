package tenantcrd

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"
	apiextensionsfeatures "k8s.io/apiextensions-apiserver/pkg/features"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/kplex/kplex/apiserver/routing"
)

// A tenant's OpenAPI v2 is root's document without root's CRD groups,
// merged with the tenant's CRDs as upstream merges CRDs into it. The
// document is a few MiB: root's is decoded once per version of it, and
// merged documents are kept for the few most recent sets of CRDs.

const protobufV2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"

// maxCachedV2 bounds the merged documents kept.
const maxCachedV2 = 8

type openAPIV2 struct {
	mu       sync.Mutex
	baseETag string
	base     *spec.Swagger
	// baseFor is the root CRD groups base was stripped of.
	baseFor string
	docs    map[string][]byte
	order   []string
}

// serveOpenAPIV2 answers /openapi/v2 for tenant t.
func (m *Manager) serveOpenAPIV2(w http.ResponseWriter, req *http.Request, t string, next http.Handler) bool {
	if strings.Trim(req.URL.Path, "/") != "openapi/v2" || !m.HasSynced() {
		return false
	}
	doc, etag, err := m.openAPIV2For(req, t, next)
	if err != nil {
		routing.WriteStatus(w, apierrors.NewInternalError(err))
		return true
	}
	serveDocument(w, req, doc, etag, protobufV2, handler.ToProtoBinary)
	return true
}

// openAPIV2For returns t's document and its ETag.
func (m *Manager) openAPIV2For(req *http.Request, t string, next http.Handler) ([]byte, string, error) {
	c := &m.openAPIV2
	c.mu.Lock()
	defer c.mu.Unlock()
	rootGroups := m.rootGroups()
	if err := c.refreshBase(req, next, rootGroups); err != nil {
		return nil, "", err
	}
	crds := m.crdsOf(t)
	var established []string
	for _, g := range groupsOf(crds) {
		established = append(established, g.name)
	}
	// Tenants with the same CRDs share a document.
	h := specHash(crds, strings.Join(established, ","), "v2")
	key := c.baseETag + "|" + c.baseFor + "|" + h
	if doc, ok := c.docs[key]; ok {
		return doc, key, nil
	}
	opts := builder.Options{V2: true, IncludeSelectableFields: utilfeature.DefaultFeatureGate.Enabled(apiextensionsfeatures.CustomResourceFieldSelectors)}
	var specs []*spec.Swagger
	for _, crd := range crds {
		if !slices.Contains(established, crd.Spec.Group) {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			s, err := builder.BuildOpenAPIV2(crd, v.Name, opts)
			if err != nil {
				return nil, "", fmt.Errorf("building the OpenAPI v2 of %s: %w", crd.Name, err)
			}
			s.Definitions = handler.PruneDefaults(s.Definitions)
			specs = append(specs, s)
		}
	}
	merged, err := builder.MergeSpecs(c.base, specs...)
	if err != nil {
		return nil, "", fmt.Errorf("merging OpenAPI v2 documents: %w", err)
	}
	doc, err := json.Marshal(merged)
	if err != nil {
		return nil, "", fmt.Errorf("encoding an OpenAPI v2 document: %w", err)
	}
	if c.docs == nil {
		c.docs = map[string][]byte{}
	}
	if len(c.order) >= maxCachedV2 {
		delete(c.docs, c.order[0])
		c.order = c.order[1:]
	}
	c.docs[key] = doc
	c.order = append(c.order, key)
	return doc, key, nil
}

// refreshBase revalidates root's document and strips root's CRD groups.
func (c *openAPIV2) refreshBase(req *http.Request, next http.Handler, rootGroups sets.Set[string]) error {
	r := req.Clone(req.Context())
	r.Header = http.Header{"Accept": {"application/json"}}
	if c.base != nil {
		r.Header.Set("If-None-Match", strconv.Quote(c.baseETag))
	}
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	next.ServeHTTP(rec, r)
	groups := strings.Join(sets.List(rootGroups), ",")
	switch rec.code {
	case http.StatusNotModified:
		if groups == c.baseFor {
			return nil
		}
		// Root's CRD groups changed: fetch the document anew.
		c.base = nil
		return c.refreshBase(req, next, rootGroups)
	case http.StatusOK:
	default:
		return fmt.Errorf("root's OpenAPI v2 answered %d", rec.code)
	}
	base := &spec.Swagger{}
	if err := json.Unmarshal(rec.body.Bytes(), base); err != nil {
		return fmt.Errorf("decoding root's OpenAPI v2: %w", err)
	}
	stripGroups(base, rootGroups)
	etag, err := strconv.Unquote(rec.header.Get("ETag"))
	if err != nil {
		etag = rec.header.Get("ETag")
	}
	c.base, c.baseETag, c.baseFor, c.docs, c.order = base, etag, groups, nil, nil
	return nil
}

// stripGroups removes the paths and the definitions of groups.
func stripGroups(s *spec.Swagger, groups sets.Set[string]) {
	if s.Paths != nil {
		for path := range s.Paths.Paths {
			parts := strings.SplitN(strings.TrimPrefix(path, "/apis/"), "/", 2)
			if strings.HasPrefix(path, "/apis/") && groups.Has(parts[0]) {
				delete(s.Paths.Paths, path)
			}
		}
	}
	for name, def := range s.Definitions {
		gvks, ok := def.Extensions["x-kubernetes-group-version-kind"].([]any)
		if !ok || len(gvks) == 0 {
			continue
		}
		if gvk, ok := gvks[0].(map[string]any); ok && groups.Has(fmt.Sprint(gvk["group"])) {
			delete(s.Definitions, name)
		}
	}
}
