// Package schedulingapi serves scheduling.kplex.io in the management plane:
// the NodePool and TenantQuota CRDs, whose schemas and validation rules
// refuse malformed specs with the field named, and an admission plugin for
// what a schema cannot see: a TenantQuota naming a pool that does not
// exist.
package schedulingapi
