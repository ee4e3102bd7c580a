package isolation_test

import (
	"context"
	"fmt"
	"net/netip"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/knftables"

	"github.com/kplex/kplex/dataplane/isolation"
	"github.com/kplex/kplex/tenant"
)

func pod(t, name, ip string) isolation.Pod {
	return isolation.Pod{Tenant: t, Namespace: "default", Name: name, IPs: []netip.Addr{netip.MustParseAddr(ip)}}
}

func ExampleSyncer_Sync() {
	nft := knftables.NewFake(knftables.InetFamily, isolation.Table)
	s := isolation.New(nft) // in production: isolation.NewInterface()
	snap := isolation.Snapshot{Pods: []isolation.Pod{pod("acme", "web", "10.244.1.2"), pod("beta", "web", "10.244.1.3")}}
	if err := s.Sync(context.Background(), snap); err != nil {
		fmt.Println(err)
	}
	for _, r := range nft.Table.Chains["tenant-acme"].Rules {
		fmt.Println(r.Rule)
	}
	for _, e := range nft.Table.Maps["tenants4"].Elements {
		fmt.Println(e.Key[0], ":", e.Value[0])
	}
	// Output:
	// ip daddr @pods4 ip daddr != @tenant-acme-pods4 drop
	// 10.244.1.2 : jump tenant-acme
	// 10.244.1.3 : jump tenant-beta
}

func ExampleInertRules() {
	policy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "from-cluster", Annotations: map[string]string{tenant.Annotation: "acme"}},
		Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.244.0.0/16"}}},
			}},
		},
	}
	for _, msg := range isolation.InertRules(policy, []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}) {
		fmt.Println(msg)
	}
	// Output:
	// spec.ingress[0].from[0].ipBlock 10.244.0.0/16 overlaps the pod network, where other tenants' pods may run: it opens nothing to them, kplex never lets traffic between tenants
}
