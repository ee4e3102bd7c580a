// Package networkpolicies tells a tenant when a NetworkPolicy of its own
// asks for what kplex never grants: an ipBlock over the pod network, where
// other tenants' pods may run. Tenants are isolated before any policy is
// read (dataplane/isolation), so such a rule opens nothing to them; a
// Warning event on the policy says so, once per generation.
package networkpolicies

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/kplex/kplex/client/crosstenant"
	"github.com/kplex/kplex/dataplane/isolation"
	"github.com/kplex/kplex/tenant"
)

// Reason is the Warning event's reason.
const Reason = "InertNetworkPolicyRule"

// Run reports inert rules of every tenant's NetworkPolicies in policies
// until ctx ends. core is a REST client of the management plane's core API
// (events are written on each tenant's path); podNetwork is the cluster
// CIDR.
func Run(ctx context.Context, policies *crosstenant.Cache, core rest.Interface, podNetwork string) error {
	network, err := netip.ParsePrefix(podNetwork)
	if err != nil {
		return fmt.Errorf("network policy warnings: cluster CIDR %q: %w", podNetwork, err)
	}
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	policies.Observe(func(t string, _, obj any) {
		if p, ok := obj.(*networkingv1.NetworkPolicy); ok {
			queue.Add(crosstenant.Key(t, p.Namespace, p.Name))
		}
	})
	var mu sync.Mutex
	told := map[types.UID]int64{} // the generation last reported
	logger := klog.FromContext(ctx).WithName("networkpolicies")
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	for {
		key, quit := queue.Get()
		if quit {
			return nil
		}
		obj, ok, _ := policies.GetByKey(key)
		p, _ := obj.(*networkingv1.NetworkPolicy)
		mu.Lock()
		done := !ok || p == nil || told[p.UID] == p.Generation
		mu.Unlock()
		if !done {
			err = warn(ctx, core, p, isolation.InertRules(p, []netip.Prefix{network}))
			if err != nil {
				logger.Error(err, "Telling a tenant of an inert NetworkPolicy rule", "policy", key)
				queue.AddRateLimited(key)
			} else {
				queue.Forget(key)
				mu.Lock()
				told[p.UID] = p.Generation
				mu.Unlock()
			}
		}
		queue.Done(key)
	}
}

// warn writes one Warning event on policy in its tenant, naming every
// inert rule; nothing when there is none.
func warn(ctx context.Context, core rest.Interface, policy *networkingv1.NetworkPolicy, msgs []string) error {
	if len(msgs) == 0 {
		return nil
	}
	t := crosstenant.TenantOf(policy)
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: policy.Name + ".", Namespace: policy.Namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: "NetworkPolicy", APIVersion: "networking.k8s.io/v1", Namespace: policy.Namespace,
			Name: policy.Name, UID: policy.UID, ResourceVersion: policy.ResourceVersion,
		},
		Reason: Reason, Type: corev1.EventTypeWarning, Message: strings.Join(msgs, "; "),
		Source:         corev1.EventSource{Component: "kplex-controller-manager"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "kplex.io/networkpolicies", ReportingInstance: "kplex-controller-manager",
	}
	return core.Post().AbsPath(tenant.Path(t), "api/v1/namespaces", policy.Namespace, "events").Body(ev).Do(ctx).Error()
}
