// Package metrics is where kplex's Prometheus metrics meet: every
// component registers its own in k8s.io/component-base's legacyregistry,
// so that each component's /metrics serves them (and `kplex up`'s single
// process serves them all, at the apiserver's /metrics):
//
//   - capacity/metrics: kplex_nodepool_* and kplex_tenant_pool_*,
//     kplex_tenant_quota_*, kplex_tenant_pending_pods, from the node pools
//     controller's capacity reports (controller manager);
//   - scheduler/tenancy: kplex_scheduler_pod_scheduling_duration_seconds
//     (scheduler);
//   - apiserver/tenantmetrics: kplex_apiserver_tenant_requests_total,
//     kplex_tenants, kplex_tenant_provisioning_duration_seconds,
//     kplex_tenant_objects, kplex_tenant_storage_bytes (apiserver).
//
// Per-tenant series are bounded by package bounded. The Grafana dashboard
// manifests/grafana/kplex-dashboard.json queries them; this package's
// test checks that it queries nothing else. docs/notes/metrics.md
// describes each metric.
package metrics
