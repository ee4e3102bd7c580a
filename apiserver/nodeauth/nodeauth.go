package nodeauth

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/pkg/auth/nodeidentifier"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

const byNode = "node"

// Authorizer decides node agents' requests.
type Authorizer struct {
	pods *crosstenant.Cache
}

// New returns an Authorizer whose pod cache reads through loopback, which
// must be the server's own privileged connection; Run fills it.
func New(loopback *rest.Config) (*Authorizer, error) {
	cross, err := kubernetes.NewForConfig(crosstenant.Config(loopback))
	if err != nil {
		return nil, fmt.Errorf("building the node authorizer's client: %w", err)
	}
	pods := crosstenant.NewCache(crosstenant.NoWatchList(crosstenant.ListWatch(cross.CoreV1().RESTClient(), "pods")), &corev1.Pod{})
	if err := pods.AddIndexers(cache.Indexers{byNode: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("indexing pods by node: %w", err)
	}
	return &Authorizer{pods: pods}, nil
}

// Run fills the pod cache until ctx ends.
func (a *Authorizer) Run(ctx context.Context) { a.pods.Run(ctx) }

// HasSynced reports whether the pod cache holds its first list.
func (a *Authorizer) HasSynced() bool { return a.pods.HasSynced() }

var nodes = nodeidentifier.NewDefaultNodeIdentifier()

// NodeName returns the node u authenticates as (upstream's rule: group
// system:nodes, name system:node:<name>), and whether it is one.
func NodeName(u user.Info) (string, bool) {
	name, ok := nodes.NodeIdentity(u)
	return name, ok && name != ""
}

// Authorize decides a request of node agent node on the path of tenant
// requested (tenant.Root, tenant.Wildcard or a tenant's name). It returns
// allowed, or why not; decided is false when the rules have nothing to
// say about a management-plane request, which root's RBAC then decides.
func (a *Authorizer) Authorize(node, requested string, attrs authorizer.Attributes) (allowed, decided bool, reason string) {
	if !attrs.IsResourceRequest() {
		return false, requested == tenant.Root, ""
	}
	r := request{node: node, attrs: attrs, group: attrs.GetAPIGroup(), resource: attrs.GetResource(), sub: attrs.GetSubresource(), verb: attrs.GetVerb()}
	switch requested {
	case tenant.Wildcard:
		// Pods are read whole only when selected to the node; otherwise
		// WithPodProjection serves them as a projection.
		if r.is("", "pods") && (r.verb == "list" || r.verb == "watch") ||
			r.readOnly() && r.is("", "namespaces", "services") || r.readOnly() && r.is("discovery.k8s.io", "endpointslices") ||
			r.readOnly() && r.is("networking.k8s.io", "networkpolicies") {
			return true, true, ""
		}
		return false, true, fmt.Sprintf("node %s may read across tenants only the pods, namespaces, Services, EndpointSlices and NetworkPolicies its data plane needs", node)
	case tenant.Root:
		if r.managementPlane() {
			return true, true, ""
		}
		if ok, why := a.tenantObjects(r, tenant.Root); ok {
			return true, true, ""
		} else if why != "" {
			return false, true, why
		}
		return false, false, ""
	}
	if ok, why := a.tenantObjects(r, requested); ok {
		return true, true, ""
	} else if why != "" {
		return false, true, why
	}
	return false, true, fmt.Sprintf("node %s may not %s %s in tenant %s", node, r.verb, r.what(), requested)
}

// request is one authorization question of one node.
type request struct {
	node                       string
	attrs                      authorizer.Attributes
	group, resource, sub, verb string
}

func (r request) is(group string, resources ...string) bool {
	return r.group == group && r.sub == "" && slices.Contains(resources, r.resource)
}

func (r request) readOnly() bool {
	return r.verb == "get" || r.verb == "list" || r.verb == "watch"
}

// selectsOwnPods reports whether a list or watch selects the node's pods
// only.
func (r request) selectsOwnPods() bool {
	reqs, err := r.attrs.GetFieldSelector()
	if err != nil {
		return false
	}
	for _, req := range reqs {
		if req.Field == "spec.nodeName" && (req.Operator == selection.Equals || req.Operator == selection.DoubleEquals) && req.Value == r.node {
			return true
		}
	}
	return false
}

func (r request) what() string {
	if r.sub != "" {
		return r.resource + "/" + r.sub
	}
	return r.resource
}

// managementPlane allows what a node does with root's own objects: its
// Node and Lease, the pools and runtime classes, events.
func (r request) managementPlane() bool {
	name := r.attrs.GetName()
	switch {
	case r.group == "" && r.resource == "nodes":
		if r.sub == "" && r.readOnly() {
			return true // every node's pod CIDR and address: the data plane routes to them
		}
		// Create names the node in the object, checked by the NodeIdentity
		// admission plugin; the rest name it in the path.
		if r.sub == "" && r.verb == "create" {
			return true
		}
		return (r.sub == "" || r.sub == "status") && (r.verb == "update" || r.verb == "patch" || r.verb == "get") && name == r.node
	case r.group == "coordination.k8s.io" && r.resource == "leases" && r.attrs.GetNamespace() == corev1.NamespaceNodeLease:
		return r.verb == "create" || name == r.node && (r.readOnly() || r.verb == "update" || r.verb == "patch")
	case r.is(schedulingv1alpha1.GroupName, "nodepools") && r.readOnly():
		return true
	}
	return false
}

// tenantObjects allows what a node does in a tenant (root's own pods
// included): the pods bound to it and what they reference. It returns a
// reason when it denies a request it knows about.
func (a *Authorizer) tenantObjects(r request, tenantName string) (bool, string) {
	ns, name := r.attrs.GetNamespace(), r.attrs.GetName()
	switch {
	case r.group == "" && (r.resource == "events") || r.group == "events.k8s.io" && r.resource == "events":
		return r.verb == "create" || r.verb == "patch" || r.verb == "update", ""
	case r.is("", "services") && r.readOnly(), r.is("node.k8s.io", "runtimeclasses") && r.readOnly():
		return true, ""
	case r.group == "" && r.resource == "pods":
		pod := a.pod(tenantName, ns, name)
		bound := pod != nil && pod.Spec.NodeName == r.node
		switch {
		case r.sub == "" && (r.verb == "get" || r.verb == "delete"), r.sub == "status" && (r.verb == "update" || r.verb == "patch" || r.verb == "get"):
			if bound {
				return true, ""
			}
			return false, fmt.Sprintf("node %s may %s only the pods bound to it; %s/%s is not", r.node, r.verb, ns, name)
		case r.sub == "" && (r.verb == "list" || r.verb == "watch"):
			if r.selectsOwnPods() {
				return true, ""
			}
			return false, fmt.Sprintf("node %s may %s only the pods bound to it: select them with fieldSelector spec.nodeName=%s", r.node, r.verb, r.node)
		}
		return false, fmt.Sprintf("node %s may not %s %s", r.node, r.verb, r.what())
	case r.is("", "secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts") && r.verb == "get",
		r.group == "" && r.resource == "serviceaccounts" && r.sub == "token" && r.verb == "create":
		if a.referenced(r.node, tenantName, ns, r.resource, name) {
			return true, ""
		}
		return false, fmt.Sprintf("node %s may read only the %s of pods bound to it; no such pod references %s/%s", r.node, r.resource, ns, name)
	}
	return false, ""
}

func (a *Authorizer) pod(tenantName, namespace, name string) *corev1.Pod {
	p, _ := a.pods.Get(tenantName, namespace, name).(*corev1.Pod)
	return p
}

// referenced reports whether a pod of tenantName in namespace, bound to
// node, references the named object of resource.
func (a *Authorizer) referenced(node, tenantName, namespace, resource, name string) bool {
	pods, _ := a.pods.ByIndex(byNode, node)
	for _, obj := range pods {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Namespace != namespace || crosstenant.TenantOf(p) != tenantName {
			continue
		}
		if slices.Contains(References(p, resource), name) {
			return true
		}
	}
	return false
}
