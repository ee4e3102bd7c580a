package tenantcrd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	apiextensionshelpers "k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"
	apiextensionsfeatures "k8s.io/apiextensions-apiserver/pkg/features"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"

	"github.com/kplex/kplex/apiserver/routing"
)

// A tenant's OpenAPI v3 is root's documents for built-in groups, never for
// root's CRD groups, plus one document per group version of the tenant's
// CRDs, built as upstream's OpenAPI controller builds them. Documents are
// cached by the CRDs they come from, so tenants with the same CRDs share
// them.

const protobufV3 = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"

// openAPIDocs caches built group-version documents by content hash.
type openAPIDocs struct {
	mu   sync.Mutex
	docs map[string][]byte
}

// maxCachedOpenAPI bounds the cache; it is emptied when full.
const maxCachedOpenAPI = 1024

// serveOpenAPI answers /openapi/v3 and /openapi/v3/apis/<group>/<version>
// for tenant t, and returns false for the paths it leaves to root.
func (m *Manager) serveOpenAPI(w http.ResponseWriter, req *http.Request, t string, next http.Handler) bool {
	path := strings.Trim(req.URL.Path, "/")
	if !m.HasSynced() || !strings.HasPrefix(path, "openapi/v3") {
		return false
	}
	if path == "openapi/v3" {
		m.serveOpenAPIIndex(w, req, t, next)
		return true
	}
	gv, ok := strings.CutPrefix(path, "openapi/v3/apis/")
	group, version, ok2 := strings.Cut(gv, "/")
	if !ok || !ok2 || m.builtin.Has(group) {
		return false
	}
	crds := servedIn(m.crdsOf(t), group, version)
	if len(crds) == 0 {
		if m.rootGroups().Has(group) {
			notFound(w, req)
			return true
		}
		return false
	}
	hash := specHash(crds, group, version)
	doc, err := m.openAPI.get(hash, crds, version)
	if err != nil {
		routing.WriteStatus(w, apierrors.NewInternalError(err))
		return true
	}
	serveDocument(w, req, doc, hash, protobufV3, handler3.ToV3ProtoBinary)
	return true
}

// serveDocument writes an OpenAPI document in JSON, or in protobuf
// (converted by toProto) when the client asks for protobufType, with its
// ETag, or 304 when the client has it.
func serveDocument(w http.ResponseWriter, req *http.Request, doc []byte, etag, protobufType string, toProto func([]byte) ([]byte, error)) {
	quoted := strconv.Quote(etag)
	w.Header().Set("ETag", quoted)
	w.Header().Set("Vary", "Accept")
	if req.Header.Get("If-None-Match") == quoted {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	contentType := "application/json"
	if strings.Contains(req.Header.Get("Accept"), protobufType) {
		var err error
		if doc, err = toProto(doc); err != nil {
			routing.WriteStatus(w, apierrors.NewInternalError(err))
			return
		}
		contentType = protobufType
	}
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(doc)
}

// serveOpenAPIIndex lists root's group versions but root's CRD groups, and
// the tenant's CRD group versions.
func (m *Manager) serveOpenAPIIndex(w http.ResponseWriter, req *http.Request, t string, next http.Handler) {
	r := req.Clone(req.Context())
	r.Header = http.Header{"Accept": {"application/json"}}
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	next.ServeHTTP(rec, r)
	if rec.code != http.StatusOK {
		routing.WriteStatus(w, apierrors.NewInternalError(fmt.Errorf("root's OpenAPI index answered %d", rec.code)))
		return
	}
	index := &handler3.OpenAPIV3Discovery{}
	if err := json.Unmarshal(rec.body.Bytes(), index); err != nil {
		routing.WriteStatus(w, apierrors.NewInternalError(fmt.Errorf("decoding root's OpenAPI index: %w", err)))
		return
	}
	for group := range m.rootGroups() {
		for path := range index.Paths {
			if strings.HasPrefix(path, "apis/"+group+"/") {
				delete(index.Paths, path)
			}
		}
	}
	crds := m.crdsOf(t)
	for _, g := range groupsOf(crds) {
		for _, v := range g.aggregated.Versions {
			hash := specHash(servedIn(crds, g.name, v.Version), g.name, v.Version)
			index.Paths["apis/"+g.name+"/"+v.Version] = handler3.OpenAPIV3DiscoveryGroupVersion{
				ServerRelativeURL: "/openapi/v3/apis/" + g.name + "/" + v.Version + "?hash=" + hash,
			}
		}
	}
	out, err := json.Marshal(index)
	if err != nil {
		routing.WriteStatus(w, apierrors.NewInternalError(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// servedIn returns the Established CRDs of group that serve version.
func servedIn(crds []*apiextensionsv1.CustomResourceDefinition, group, version string) []*apiextensionsv1.CustomResourceDefinition {
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, crd := range crds {
		if crd.Spec.Group == group && apiextensionshelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) &&
			apiextensionshelpers.HasServedCRDVersion(crd, version) {
			out = append(out, crd)
		}
	}
	return out
}

// specHash names a group version's document by everything it is built from.
func specHash(crds []*apiextensionsv1.CustomResourceDefinition, group, version string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s\n", group, version)
	for _, crd := range crds {
		spec, _ := json.Marshal(crd.Spec)
		names, _ := json.Marshal(crd.Status.AcceptedNames)
		fmt.Fprintf(h, "%s\n%s\n%s\n", crd.Name, spec, names)
	}
	return strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}

// get returns the JSON document of crds at version, built once per hash.
func (c *openAPIDocs) get(hash string, crds []*apiextensionsv1.CustomResourceDefinition, version string) ([]byte, error) {
	c.mu.Lock()
	doc, ok := c.docs[hash]
	c.mu.Unlock()
	if ok {
		return doc, nil
	}
	opts := builder.Options{IncludeSelectableFields: utilfeature.DefaultFeatureGate.Enabled(apiextensionsfeatures.CustomResourceFieldSelectors)}
	var specs []*spec3.OpenAPI
	for _, crd := range crds {
		s, err := builder.BuildOpenAPIV3(crd, version, opts)
		if err != nil {
			return nil, fmt.Errorf("building the OpenAPI of %s: %w", crd.Name, err)
		}
		specs = append(specs, s)
	}
	merged, err := builder.MergeSpecsV3(specs...)
	if err != nil {
		return nil, fmt.Errorf("merging OpenAPI documents: %w", err)
	}
	if doc, err = json.Marshal(merged); err != nil {
		return nil, fmt.Errorf("encoding an OpenAPI document: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.docs) >= maxCachedOpenAPI || c.docs == nil {
		c.docs = map[string][]byte{}
	}
	c.docs[hash] = doc
	return doc, nil
}
