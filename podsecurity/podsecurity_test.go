package podsecurity

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func podWith(mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func TestCheck(t *testing.T) {
	restrictedPod := podWith(func(p *corev1.Pod) {
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: new(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: new(false),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	})
	hostPID := podWith(func(p *corev1.Pod) { p.Spec.HostPID = true })
	for _, tc := range []struct {
		name, level string
		pod         *corev1.Pod
		want        string // "" meets the level
	}{
		{"plain pod meets baseline", Baseline, podWith(nil), ""},
		{"plain pod fails restricted", Restricted, podWith(nil), `allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false)`},
		{"restricted pod meets restricted", Restricted, restrictedPod, ""},
		{"hostPID fails baseline", Baseline, hostPID, "host namespaces (hostPID=true)"},
		{"hostPID meets privileged", Privileged, hostPID, ""},
		{"unknown level fails closed", "lenient", podWith(nil), "allowPrivilegeEscalation != false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Check(tc.level, tc.pod)
			switch {
			case tc.want == "" && v != nil:
				t.Errorf("Check(%s) = %+v, want none", tc.level, v)
			case tc.want != "" && (v == nil || !strings.Contains(v.Detail, tc.want)):
				t.Errorf("Check(%s) = %+v, want a violation containing %q", tc.level, v, tc.want)
			}
		})
	}
}

func TestLevels(t *testing.T) {
	if TenantLevel("") != Baseline || TenantLevel(Restricted) != Restricted {
		t.Errorf("TenantLevel: %q, %q", TenantLevel(""), TenantLevel(Restricted))
	}
	if !Stricter(Restricted, Baseline) || Stricter(Privileged, Baseline) || !Stricter("bogus", Privileged) {
		t.Error("Stricter does not order restricted < baseline < privileged, unknown strictest")
	}
}
