package manager_test

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kplex/kplex/apiserver/server/servertest"
)

func service(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// readyPod creates a pod of app on node, with tolerations, then reports
// it running and ready at ip, as a kubelet would.
func readyPod(t *testing.T, c kubernetes.Interface, name, app, node, ip string, tolerations ...corev1.Toleration) {
	t.Helper()
	ctx := context.Background()
	want := pod(name)
	want.Labels = map[string]string{"app": app}
	want.Spec.NodeName = node
	want.Spec.Tolerations = tolerations
	p, err := createAdmitted(ctx, c, want)
	if err != nil {
		t.Fatal(err)
	}
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
	}
	if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// addresses returns the ready addresses of Service name's Endpoints and
// EndpointSlices in c.
func addresses(ctx context.Context, c kubernetes.Interface, name string) (endpoints, slices []string, err error) {
	ep, err := c.CoreV1().Endpoints("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	for _, s := range ep.Subsets {
		for _, a := range s.Addresses {
			endpoints = append(endpoints, a.IP)
		}
	}
	list, err := c.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		return nil, nil, err
	}
	if len(list.Items) == 0 {
		return nil, nil, nil
	}
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				slices = append(slices, e.Addresses...)
			}
		}
	}
	if slices == nil {
		slices = []string{}
	}
	return endpoints, slices, nil
}

func TestIntegrationEndpointsPerTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts etcd and an apiserver")
	}
	e := servertest.Start(t, "")
	root := servertest.Client(t, e.Admin)
	a := servertest.Client(t, e.CreateTenant(t, "ep-a"))
	b := servertest.Client(t, e.CreateTenant(t, "ep-b"))
	runManager(t, e)
	ctx := context.Background()
	// A node of the management plane, as the node agent will register it.
	if _, err := root.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The same Service in both tenants; pods of that app in each, at
	// different addresses.
	for _, c := range []kubernetes.Interface{a, b} {
		if _, err := c.CoreV1().Services("default").Create(ctx, service("web"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	readyPod(t, a, "web-1", "web", "n1", "10.1.0.1")
	readyPod(t, a, "web-2", "web", "n1", "10.1.0.2")
	readyPod(t, b, "web-1", "web", "n1", "10.2.0.1")
	want := map[string][]string{"ep-a": {"10.1.0.1", "10.1.0.2"}, "ep-b": {"10.2.0.1"}}
	for name, c := range map[string]kubernetes.Interface{"ep-a": a, "ep-b": b} {
		eventually(t, 60*time.Second, name+"'s endpoints of web", func(ctx context.Context) (bool, error) {
			eps, sl, err := addresses(ctx, c, "web")
			if err != nil {
				return false, nil
			}
			slices.Sort(eps)
			slices.Sort(sl)
			return slices.Equal(eps, want[name]) && slices.Equal(sl, want[name]), nil
		})
	}

	// A pod that goes away leaves its tenant's endpoints only.
	if err := a.CoreV1().Pods("default").Delete(ctx, "web-2", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "ep-a's endpoints without web-2", func(ctx context.Context) (bool, error) {
		eps, sl, err := addresses(ctx, a, "web")
		return err == nil && slices.Equal(eps, []string{"10.1.0.1"}) && slices.Equal(sl, []string{"10.1.0.1"}), nil
	})
	eps, sl, err := addresses(ctx, b, "web")
	if err != nil || !slices.Equal(eps, want["ep-b"]) || !slices.Equal(sl, want["ep-b"]) {
		t.Errorf("ep-b's endpoints after a pod went in ep-a: %v, %v, %v", eps, sl, err)
	}
}
