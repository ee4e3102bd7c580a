// Package dns is the node-local cluster DNS server: one server on each node
// answers the pods of every tenant running there, like NodeLocal DNSCache in
// front of CoreDNS's kubernetes plugin, but with the cluster data read
// straight from the node agent's cross-tenant caches.
//
// # The tenant comes from the source address
//
// Every tenant has its own cluster.local: "web.default.svc.cluster.local" is
// a different Service in each tenant. A query carries no tenant, so the
// server takes it from the only thing a pod cannot choose, the source IP of
// the packet: Records.PodByIP maps it to the asking pod's tenant, and every
// record in the answer is then read from that tenant only. A source that is
// no known pod (the node itself, a hostNetwork pod, anything else that can
// reach the listener) gets REFUSED for names in the cluster domain; names
// outside it are forwarded for everyone, as they hold no tenant data.
//
// Pod IPs are assigned by the node (CNI IPAM), not by the tenant. The
// source address is not yet checked against the sending pod's veth: a pod
// with CAP_NET_RAW can forge one, and its query is then answered to the
// address it forged, not to itself (a one-way packet; the pod security
// floor takes NET_RAW away). Cluster IPs are allocated by one allocator for
// all tenants, so an IP never names two tenants' objects.
//
// # Names
//
// The records follow the Kubernetes DNS specification and CoreDNS's
// kubernetes plugin with "pods verified":
//
//	<svc>.<ns>.svc.<domain>                   A/AAAA: ClusterIPs, or ready endpoints when headless; CNAME for ExternalName
//	<endpoint>.<svc>.<ns>.svc.<domain>        A/AAAA of the endpoint with that hostname (or dashed IP)
//	_<port>._<proto>.<svc>.<ns>.svc.<domain>  SRV of a named port
//	<a-b-c-d>.<ns>.pod.<domain>               A, only when the tenant has that pod IP in that namespace
//	<reverse>.in-addr.arpa, ip6.arpa          PTR of the asking tenant's pods and ClusterIPs (others are forwarded)
//
// A name in the domain that does not exist is NXDOMAIN, one that exists
// without the asked type is NODATA; both carry the zone's SOA. Search-path
// expansion is the client's job: ResolvConf (PodResolver, for CRI) writes
// the pods' resolv.conf as the kubelet would.
//
// # Lifecycle
//
//	srv, err := dns.New(dns.Config{Addresses: []string{"10.96.0.10:53"}, Records: records})
//	if err != nil { ... }
//	if err := srv.Start(ctx); err != nil { ... } // bound and serving on return
//	defer srv.Close()
//	select { case <-ctx.Done(): case err := <-srv.Err(): ... }
//
// Run does the same in one blocking call.
package dns
