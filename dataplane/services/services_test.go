package services

import (
	"net"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplex/kplex/tenant"
)

func service(t, ns, name string, externalIPs ...string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{tenant.Annotation: t}},
		Spec:       v1.ServiceSpec{ClusterIP: "10.96.5.5", ExternalIPs: externalIPs},
	}
}

func TestTransformJoinsNamespacesAndDropsClaimsOnTheClusterRanges(t *testing.T) {
	t.Parallel()
	o := Options{ClusterCIDR: "10.244.0.0/16", ServiceCIDRs: []string{"10.96.0.0/12"}, NodeIP: net.ParseIP("192.0.2.10")}
	f := transform(unsafeRanges(o), nil)
	a, err := f(service("a", "default", "web", "10.244.3.4", "10.100.0.1", "192.0.2.10", "203.0.113.7"))
	if err != nil {
		t.Fatal(err)
	}
	s := a.(*v1.Service)
	if s.Namespace != "a.default" || len(s.Spec.ExternalIPs) != 1 || s.Spec.ExternalIPs[0] != "203.0.113.7" {
		t.Errorf("a's web: namespace %q, external IPs %v", s.Namespace, s.Spec.ExternalIPs)
	}
	if tn, ns, ok := Split(s.Namespace); !ok || tn != "a" || ns != "default" {
		t.Errorf("Split(%q) = %q %q %v", s.Namespace, tn, ns, ok)
	}
	// Two tenants' same-named Services stay two Services.
	b, _ := f(service("b", "default", "web"))
	if b.(*v1.Service).Namespace == s.Namespace {
		t.Error("a's and b's default/web collide")
	}
	if _, err := f(service("", "default", "web")); err == nil {
		t.Error("a Service without a tenant was accepted")
	}
}

func TestTransformKeepsOnlyRootsSharedAPIServerService(t *testing.T) {
	t.Parallel()
	f := transform(nil, map[string]bool{"kube-system/kube-dns": true})
	k, _ := f(service(tenant.Root, "default", "kubernetes"))
	if k.(*v1.Service).Namespace != "default" || k.(*v1.Service).Spec.ClusterIP == v1.ClusterIPNone {
		t.Errorf("default/kubernetes: %+v", k)
	}
	other, _ := f(service(tenant.Root, "default", "admin-only"))
	if s := other.(*v1.Service); s.Namespace == "default" || s.Spec.ClusterIP != v1.ClusterIPNone {
		t.Errorf("root's own Service reached the proxier: %+v", s)
	}
	dns, _ := f(service(tenant.Root, "kube-system", "kube-dns"))
	if s := dns.(*v1.Service); s.Spec.ClusterIP != v1.ClusterIPNone {
		t.Errorf("kube-dns, which the node serves itself, reached the proxier: %+v", s)
	}
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes",
		Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}, Annotations: map[string]string{tenant.Annotation: tenant.Root}}}
	if s, _ := f(slice); s.(*discoveryv1.EndpointSlice).Namespace != "default" {
		t.Error("default/kubernetes's slice hidden")
	}
}
