// Package clusterdns keeps root's kube-system/kube-dns Service, which every
// tenant reads as its own: one cluster IP for all tenants (the address
// every node's DNS server answers on, telling each pod's tenant by its IP),
// so that pods' resolv.conf and tools that look for kube-dns agree.
package clusterdns

import (
	"context"
	"fmt"
	"net"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// DefaultClusterIP is kube-dns's address, as kubeadm gives it: the tenth
// of the default service range.
const DefaultClusterIP = "10.96.0.10"

// Service is the kube-dns Service with cluster IP ip.
func Service(ip string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: metav1.NamespaceSystem,
			Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true"}},
		Spec: v1.ServiceSpec{
			ClusterIP: ip, ClusterIPs: []string{ip},
			Ports: []v1.ServicePort{
				{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
			},
		},
	}
}

// Ensure creates root's kube-dns Service with cluster IP ip unless it
// exists, retrying until ctx ends. loopback addresses the management plane.
func Ensure(ctx context.Context, loopback *rest.Config, ip string) error {
	if net.ParseIP(ip) == nil {
		return fmt.Errorf("cluster DNS address %q: not an IP address", ip)
	}
	client, err := kubernetes.NewForConfig(loopback)
	if err != nil {
		return fmt.Errorf("kube-dns Service: %w", err)
	}
	logger := klog.FromContext(ctx)
	return wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Services(metav1.NamespaceSystem).Create(ctx, Service(ip), metav1.CreateOptions{})
		switch {
		case err == nil:
			logger.Info("Created the kube-dns Service every tenant reads", "clusterIP", ip)
			return true, nil
		case apierrors.IsAlreadyExists(err):
			return true, nil
		default:
			logger.Error(err, "Creating the kube-dns Service; retrying", "clusterIP", ip)
			return false, nil
		}
	})
}
