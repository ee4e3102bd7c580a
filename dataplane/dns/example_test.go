package dns_test

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/kplex/kplex/dataplane/dns"
)

func ExampleResolvConf() {
	host := []byte("nameserver 192.0.2.53\nsearch corp.example\n")
	conf, err := dns.ResolvConf(corev1.DNSClusterFirst, nil, false, "shop", "cluster.local", "10.96.0.10", host)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(conf))

	_, err = dns.ResolvConf(corev1.DNSNone, &corev1.PodDNSConfig{Nameservers: []string{"dns.example"}}, false, "shop", "cluster.local", "10.96.0.10", host)
	fmt.Println(err)
	// Output:
	// search shop.svc.cluster.local svc.cluster.local cluster.local corp.example
	// nameserver 10.96.0.10
	// options ndots:5
	// spec.dnsConfig.nameservers[0]: Invalid value: "dns.example": must be a valid IP address
}
