// Package v1alpha1 is the scheduling.kplex.io/v1alpha1 API of the
// management plane: NodePools, which group the shared nodes and say which
// tenants may use them, and TenantQuotas, which bound what a tenant's pods
// may request in each pool.
//
// Names follow Karpenter's NodePool (template, limits, weight) and Kueue's
// ClusterQueue (nominalQuota, borrowingLimit, fairSharing.weight) where
// the concepts match.
package v1alpha1
