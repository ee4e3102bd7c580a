package nodeauth

import (
	corev1 "k8s.io/api/core/v1"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
)

// References lists the names of the objects of resource (secrets,
// configmaps, persistentvolumeclaims, serviceaccounts) a pod needs from
// its namespace to run, as the kubelet reads them.
func References(p *corev1.Pod, resource string) []string {
	var out []string
	collect := func(name string) bool {
		out = append(out, name)
		return true
	}
	switch resource {
	case "secrets":
		podutil.VisitPodSecretNames(p, collect)
	case "configmaps":
		podutil.VisitPodConfigmapNames(p, collect)
	case "persistentvolumeclaims":
		for _, v := range p.Spec.Volumes {
			switch {
			case v.PersistentVolumeClaim != nil:
				out = append(out, v.PersistentVolumeClaim.ClaimName)
			case v.Ephemeral != nil:
				out = append(out, p.Name+"-"+v.Name) // the claim upstream's ephemeral volume controller makes
			}
		}
	case "serviceaccounts":
		name := p.Spec.ServiceAccountName
		if name == "" {
			name = "default"
		}
		out = append(out, name)
	}
	return out
}
