// Package resourcemetrics serves metrics.k8s.io (what `kubectl top` and
// the horizontal pod autoscaler read) in every tenant, from the apiserver
// itself: no metrics-server per tenant.
//
// A Scraper reads the node agents' resource metrics (the kubelet's
// /metrics/resource, every sample naming its tenant) over the apiserver's
// own connections to nodes, as the management plane, every resolution; it
// turns cumulative CPU time into rates, as metrics-server does, and keeps
// the latest figures in memory. The API's storage answers a tenant from
// its own pods only, and with the nodes its node view lets it read.
package resourcemetrics
