package capacity

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
	"github.com/kplex/kplex/client/crosstenant"
)

// unfinished selects the pods that hold resources or wait for them.
const unfinished = "status.phase!=Succeeded,status.phase!=Failed"

// Load reads the management plane root addresses (with the right to list
// every tenant's pods: system:masters) and computes its report.
func Load(ctx context.Context, root *rest.Config) (*Report, error) {
	c, err := kubernetes.NewForConfig(root)
	if err != nil {
		return nil, err
	}
	cross, err := kubernetes.NewForConfig(crosstenant.Config(root))
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(root)
	if err != nil {
		return nil, err
	}
	nodeList, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	podList, err := cross.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: unfinished})
	if err != nil {
		return nil, fmt.Errorf("listing every tenant's pods: %w", err)
	}
	var allPools []*schedulingv1alpha1.NodePool
	if err := list(ctx, dyn, schedulingv1alpha1.NodePoolsResource, &allPools); err != nil {
		return nil, err
	}
	var quotas []*schedulingv1alpha1.TenantQuota
	if err := list(ctx, dyn, schedulingv1alpha1.TenantQuotasResource, &quotas); err != nil {
		return nil, err
	}
	nodes := make([]*corev1.Node, len(nodeList.Items))
	for i := range nodeList.Items {
		nodes[i] = &nodeList.Items[i]
	}
	pods := make([]*corev1.Pod, len(podList.Items))
	for i := range podList.Items {
		pods[i] = &podList.Items[i]
	}
	return Compute(nodes, pods, allPools, quotas), nil
}

// list reads every object of a scheduling resource, typed.
func list[T any](ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, into *[]*T) error {
	l, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing %s: %w", gvr.Resource, err)
	}
	for i := range l.Items {
		obj := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(l.Items[i].Object, obj); err != nil {
			return fmt.Errorf("decoding %s %s: %w", gvr.Resource, l.Items[i].GetName(), err)
		}
		*into = append(*into, obj)
	}
	return nil
}
