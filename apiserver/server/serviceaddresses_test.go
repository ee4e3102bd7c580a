package server_test

import (
	"context"
	"errors"
	"k8s.io/client-go/util/retry"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/apiserver/server/servertest"
)

func addressedService(name string, externalIPs []string, loadBalancerIP string) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Ports:       []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
			Selector:    map[string]string{"app": name},
			ExternalIPs: externalIPs,
		},
	}
	if loadBalancerIP != "" {
		svc.Spec.Type = corev1.ServiceTypeLoadBalancer
		svc.Spec.LoadBalancerIP = loadBalancerIP
		svc.Spec.AllocateLoadBalancerNodePorts = ptrTo(false)
	}
	return svc
}

// wantRefused checks err is a 422 naming field, and that nothing named
// name was stored.
func wantRefused(ctx context.Context, t *testing.T, c kubernetes.Interface, name, field string, err error) {
	t.Helper()
	var status *apierrors.StatusError
	if !errors.As(err, &status) || status.ErrStatus.Code != http.StatusUnprocessableEntity || !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), "kplex never routes") {
		t.Errorf("Service %s: %v, want 422 Invalid naming %s", name, err, field)
	}
	if _, err := c.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused Service %s was stored: %v", name, err)
	}
}

// TestIntegrationTenantServicesMayNotClaimKplexAddresses: a tenant's
// Service naming a pod IP, a cluster IP or a node's IP as an external or
// load balancer IP is refused with the field named, and nothing is stored;
// addresses outside every range are taken, and root may name any.
func TestIntegrationTenantServicesMayNotClaimKplexAddresses(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	a := servertest.Client(t, e.CreateTenant(t, "svcaddr-a"))
	root := servertest.Client(t, e.Admin)
	services := a.CoreV1().Services("default")

	_, err := services.Create(ctx, addressedService("pod-ip", []string{"10.244.3.4"}, ""), metav1.CreateOptions{})
	wantRefused(ctx, t, a, "pod-ip", "spec.externalIPs[0]", err)
	if err == nil || !strings.Contains(err.Error(), `Invalid value: "10.244.3.4": must not be an address of the cluster's pod network (10.244.0.0/16)`) {
		t.Errorf("the refusal does not say why: %v", err)
	}
	_, err = services.Create(ctx, addressedService("cluster-ip", nil, "10.96.200.200"), metav1.CreateOptions{})
	wantRefused(ctx, t, a, "cluster-ip", "spec.loadBalancerIP", err)

	if _, err := services.Create(ctx, addressedService("outside", []string{"203.0.113.7"}, ""), metav1.CreateOptions{}); err != nil {
		t.Errorf("a Service with an external IP outside every range: %v", err)
	}
	ok, err := services.Create(ctx, addressedService("outside-lb", nil, "203.0.113.8"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a Service with a load balancer IP outside every range: %v", err)
	}
	ok.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "10.244.7.7"}}
	if _, err := services.UpdateStatus(ctx, ok, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "status.loadBalancer.ingress[0].ip") {
		t.Errorf("a tenant's status naming a pod IP: %v, want Invalid naming status.loadBalancer.ingress[0].ip", err)
	}

	// A node's address, as the server's node informer sees it.
	node, err := root.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "svcaddr-node",
		Labels: map[string]string{schedulingv1alpha1.PoolLabel: "svcaddr-no-such-pool"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	// The node IPAM controller may give the Node its pod CIDR meanwhile.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := root.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.77"}}
		_, err = root.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := services.Create(ctx, addressedService("node-ip", []string{"192.0.2.77"}, ""), metav1.CreateOptions{})
		if err == nil {
			_ = services.Delete(ctx, "node-ip", metav1.DeleteOptions{})
		}
		return err != nil, nil
	})
	if err != nil {
		t.Errorf("a tenant's Service naming a node's InternalIP was still taken after 30s")
	}
	_, err = services.Create(ctx, addressedService("node-ip", []string{"192.0.2.77"}, ""), metav1.CreateOptions{})
	wantRefused(ctx, t, a, "node-ip", "a node's address", err)

	// Root's operators may do what they want.
	rootSvc, err := root.CoreV1().Services("default").Create(ctx, addressedService("svcaddr-root", []string{"10.244.3.4"}, "10.96.200.201"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("root's Service with a pod IP and a cluster IP: %v", err)
	}
	_ = root.CoreV1().Services("default").Delete(ctx, rootSvc.Name, metav1.DeleteOptions{})
}

// TestIntegrationTenantNodePortServices: a tenant's NodePort Service gets
// a port from the nodes' range, which every tenant shares (a node port is
// opened on every node): another tenant asking for the same port is
// refused with the field named, and gets its own when it asks for none;
// a port freed by one tenant's deletion is free again.
func TestIntegrationTenantNodePortServices(t *testing.T) {
	e := startEnv(t)
	ctx := ctxT(t)
	a := servertest.Client(t, e.CreateTenant(t, "nodeport-a"))
	b := servertest.Client(t, e.CreateTenant(t, "nodeport-b"))
	nodePort := func(name string, port int32) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Port: 80, NodePort: port}}},
		}
	}
	got, err := a.CoreV1().Services("default").Create(ctx, nodePort("web", 0), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("tenant nodeport-a creating a NodePort Service: %v", err)
	}
	port := got.Spec.Ports[0].NodePort
	if port < 30000 || port > 32767 {
		t.Fatalf("tenant nodeport-a's Service got node port %d, want one of 30000-32767", port)
	}
	_, err = b.CoreV1().Services("default").Create(ctx, nodePort("web", port), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.ports[0].nodePort") {
		t.Errorf("tenant nodeport-b taking nodeport-a's node port %d: %v, want 422 naming spec.ports[0].nodePort", port, err)
	}
	other, err := b.CoreV1().Services("default").Create(ctx, nodePort("web", 0), metav1.CreateOptions{})
	if err != nil || other.Spec.Ports[0].NodePort == port || other.Spec.Ports[0].NodePort == 0 {
		t.Fatalf("tenant nodeport-b's own NodePort Service: %v, %+v", err, other)
	}
	if err := a.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "nodeport-a's freed node port is free for nodeport-b", func() bool {
		_, err := b.CoreV1().Services("default").Create(ctx, nodePort("taken-over", port), metav1.CreateOptions{})
		return err == nil
	})
}
