package nodeauth

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/tools/cache"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/tenant"
)

func testAuthorizer(t *testing.T, pods ...*corev1.Pod) *Authorizer {
	t.Helper()
	c := crosstenant.NewCache(&cache.ListWatch{}, &corev1.Pod{})
	if err := c.AddIndexers(cache.Indexers{byNode: func(obj any) ([]string, error) { return []string{obj.(*corev1.Pod).Spec.NodeName}, nil }}); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if err := c.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	return &Authorizer{pods: c}
}

func podOn(tenantName, ns, name, node string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{tenant.Annotation: tenantName}}, Spec: corev1.PodSpec{NodeName: node}}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func TestNodeRules(t *testing.T) {
	withSecret := func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}}}
		p.Spec.Containers = []corev1.Container{{Name: "c", EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}}}
		p.Spec.ServiceAccountName = "runner"
	}
	a := testAuthorizer(t,
		podOn("a", "default", "web", "node-1", withSecret),
		podOn("b", "default", "web", "node-2", withSecret),
	)
	node1 := &user.DefaultInfo{Name: "system:node:node-1", Groups: []string{user.NodesGroup, user.AllAuthenticated}}
	attrs := func(verb, group, resource, sub, ns, name string) authorizer.AttributesRecord {
		return authorizer.AttributesRecord{User: node1, Verb: verb, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name, ResourceRequest: true}
	}
	for _, tc := range []struct {
		what      string
		requested string
		attrs     authorizer.AttributesRecord
		allowed   bool
		decided   bool
		reasonHas string
	}{
		{"its pod", "a", attrs("get", "", "pods", "", "default", "web"), true, true, ""},
		{"its pod's status", "a", attrs("patch", "", "pods", "status", "default", "web"), true, true, ""},
		{"its pod's Secret", "a", attrs("get", "", "secrets", "", "default", "db"), true, true, ""},
		{"its pod's ConfigMap", "a", attrs("get", "", "configmaps", "", "default", "settings"), true, true, ""},
		{"its pod's ServiceAccount token", "a", attrs("create", "", "serviceaccounts", "token", "default", "runner"), true, true, ""},
		{"a Secret no pod of its uses", "a", attrs("get", "", "secrets", "", "default", "other"), false, true, "may read only the secrets of pods bound to it"},
		{"another tenant's pod's Secret of the same name", "b", attrs("get", "", "secrets", "", "default", "db"), false, true, "no such pod"},
		{"another node's pod", "b", attrs("get", "", "pods", "", "default", "web"), false, true, "only the pods bound to it"},
		{"another node's pod's status", "b", attrs("update", "", "pods", "status", "default", "web"), false, true, "only the pods bound to it"},
		{"listing a tenant's Secrets", "a", attrs("list", "", "secrets", "", "default", ""), false, true, "may not list secrets"},
		{"creating a pod", "a", attrs("create", "", "pods", "", "default", ""), false, true, "may not create pods"},
		{"a tenant's RBAC", "a", attrs("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", ""), false, true, "may not create"},
		{"its Node", tenant.Root, attrs("patch", "", "nodes", "status", "", "node-1"), true, true, ""},
		{"another Node", tenant.Root, attrs("patch", "", "nodes", "", "", "node-2"), false, false, ""},
		{"another Node's status", tenant.Root, attrs("update", "", "nodes", "status", "", "node-2"), false, false, ""},
		{"its Lease", tenant.Root, attrs("update", "coordination.k8s.io", "leases", "", corev1.NamespaceNodeLease, "node-1"), true, true, ""},
		{"another node's Lease", tenant.Root, attrs("update", "coordination.k8s.io", "leases", "", corev1.NamespaceNodeLease, "node-2"), false, false, ""},
		{"root's Secrets: left to root's RBAC", tenant.Root, attrs("list", "", "secrets", "", "kube-system", ""), false, false, ""},
		{"every tenant's pods, read-only", tenant.Wildcard, attrs("watch", "", "pods", "", "", ""), true, true, ""},
		{"every tenant's Secrets", tenant.Wildcard, attrs("list", "", "secrets", "", "", ""), false, true, "may read across tenants only"},
		{"every tenant's pods, written", tenant.Wildcard, attrs("delete", "", "pods", "", "", ""), false, true, "may read across tenants only"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			allowed, decided, reason := a.Authorize("node-1", tc.requested, tc.attrs)
			if allowed != tc.allowed || decided != tc.decided || !strings.Contains(reason, tc.reasonHas) {
				t.Errorf("Authorize = %t, %t, %q; want %t, %t, containing %q", allowed, decided, reason, tc.allowed, tc.decided, tc.reasonHas)
			}
		})
	}
	if _, ok := NodeName(&user.DefaultInfo{Name: "system:node:x"}); ok {
		t.Error("a user named system:node:x outside group system:nodes is a node")
	}
}
