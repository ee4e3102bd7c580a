package tenancy

import (
	corev1 "k8s.io/api/core/v1"

	schedulingv1alpha1 "github.com/kplex/kplex/apis/scheduling/v1alpha1"
)

// resourceQuota is the tenant's quota for resource in pool, if it has one.
func resourceQuota(q *schedulingv1alpha1.TenantQuota, pool string, resource corev1.ResourceName) *schedulingv1alpha1.ResourceQuota {
	if q == nil {
		return nil
	}
	for i := range q.Spec.Pools {
		if q.Spec.Pools[i].Name != pool {
			continue
		}
		for j := range q.Spec.Pools[i].Resources {
			if q.Spec.Pools[i].Resources[j].Name == resource {
				return &q.Spec.Pools[i].Resources[j]
			}
		}
	}
	return nil
}

// weight is the tenant's fair-sharing weight, 1 unless its quota says.
func weight(q *schedulingv1alpha1.TenantQuota) float64 {
	if q == nil || q.Spec.FairSharing == nil || q.Spec.FairSharing.Weight == nil {
		return 1
	}
	return q.Spec.FairSharing.Weight.AsApproximateFloat64()
}
