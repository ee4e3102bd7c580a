package isolation

import (
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplex/kplex/tenant"
)

func TestSnapshotFrom(t *testing.T) {
	t.Parallel()
	meta := func(t, name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": name}, Annotations: map[string]string{tenant.Annotation: t}}
	}
	running := corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.2", PodIPs: []corev1.PodIP{{IP: "10.244.1.2"}, {IP: "fd00::2"}}}
	http := corev1.ContainerPort{Name: "http", ContainerPort: 8080}
	sidecar := corev1.ContainerPort{Name: "metrics", ContainerPort: 9090}
	pods := []*corev1.Pod{
		{ObjectMeta: meta("acme", "web"), Status: running, Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "sidecar", Ports: []corev1.ContainerPort{sidecar}}},
			Containers:     []corev1.Container{{Name: "web", Ports: []corev1.ContainerPort{http}}},
		}},
		{ObjectMeta: meta("acme", "host"), Status: running, Spec: corev1.PodSpec{HostNetwork: true}},
		{ObjectMeta: meta("acme", "pending"), Status: corev1.PodStatus{Phase: corev1.PodPending}},
		{ObjectMeta: meta("acme", "done"), Status: corev1.PodStatus{Phase: corev1.PodSucceeded, PodIP: "10.244.1.3"}},
		{ObjectMeta: meta("acme", "failed"), Status: corev1.PodStatus{Phase: corev1.PodFailed, PodIP: "10.244.1.4"}},
		{ObjectMeta: meta("beta", "old-kubelet"), Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "::ffff:10.244.1.5"}},
	}
	namespaces := []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"a": "b"}, Annotations: map[string]string{tenant.Annotation: "acme"}}}}
	policies := []*networkingv1.NetworkPolicy{testPolicy("acme", "default", "p", networkingv1.NetworkPolicySpec{})}

	got := SnapshotFrom(pods, namespaces, policies)
	want := Snapshot{
		Pods: []Pod{
			{Tenant: "acme", Namespace: "default", Name: "web", IPs: []netip.Addr{netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("fd00::2")},
				Labels: map[string]string{"app": "web"}, Ports: []corev1.ContainerPort{sidecar, http}},
			{Tenant: "beta", Namespace: "default", Name: "old-kubelet", IPs: []netip.Addr{netip.MustParseAddr("10.244.1.5")},
				Labels: map[string]string{"app": "old-kubelet"}},
		},
		Namespaces: []Namespace{{Tenant: "acme", Name: "default", Labels: map[string]string{"a": "b"}}},
		Policies:   policies,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SnapshotFrom =\n%+v\nwant\n%+v", got, want)
	}
}
