// Package podsecurity is the management plane's Pod Security floor: the
// Pod Security Standard a Tenant's pods must meet whatever its namespaces'
// labels say (Tenant.spec.podSecurity), and the one a NodePool requires of
// the pods placed on it (NodePool.spec.podSecurity). Pods are judged with
// upstream's pod-security-admission checks, so a refusal reads as
// upstream's does, plus who set the level.
package podsecurity

import (
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	api "k8s.io/kubernetes/pkg/apis/core"
	k8sv1 "k8s.io/kubernetes/pkg/apis/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// Levels a Tenant or NodePool may name, loosest last.
const (
	Restricted = string(psaapi.LevelRestricted)
	Baseline   = string(psaapi.LevelBaseline)
	Privileged = string(psaapi.LevelPrivileged)
)

// Levels lists the valid levels, strictest first.
var Levels = []string{Restricted, Baseline, Privileged}

// DefaultTenantLevel applies to a Tenant whose spec names none: baseline
// keeps a tenant's admin off the node (no privileged, host namespaces,
// hostPath, added capabilities beyond the default set) while running
// ordinary images unchanged.
const DefaultTenantLevel = Baseline

// TenantLevel is the level a Tenant's spec sets, the default if empty.
func TenantLevel(spec string) string {
	if spec == "" {
		return DefaultTenantLevel
	}
	return spec
}

var (
	evaluatorOnce sync.Once
	evaluator     policy.Evaluator
	evaluatorErr  error
)

func defaultEvaluator() (policy.Evaluator, error) {
	evaluatorOnce.Do(func() {
		evaluator, evaluatorErr = policy.NewEvaluator(policy.DefaultChecks(), nil)
	})
	return evaluator, evaluatorErr
}

// Violation is why a pod does not meet a level.
type Violation struct {
	// Level is the level as upstream names it, e.g. "baseline:latest".
	Level string
	// Detail lists the failed checks in upstream's words, e.g.
	// `privileged (container "c" must not set securityContext.privileged=true)`.
	Detail string
}

// Check judges a pod against level at the latest
// version of the standards; nil means it meets the level. An unknown level
// is judged as restricted: the floor fails closed.
func Check(level string, pod *corev1.Pod) *Violation {
	lvl, err := psaapi.ParseLevel(level)
	if err != nil {
		lvl = psaapi.LevelRestricted
	}
	if lvl == psaapi.LevelPrivileged {
		return nil
	}
	e, err := defaultEvaluator()
	if err != nil {
		// Upstream's own checks failed to register: nothing passes.
		return &Violation{Level: level, Detail: fmt.Sprintf("pod security checks unavailable: %v", err)}
	}
	lv := psaapi.LevelVersion{Level: lvl, Version: psaapi.LatestVersion()}
	result := policy.AggregateCheckResults(e.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec))
	if result.Allowed {
		return nil
	}
	return &Violation{Level: lv.String(), Detail: result.ForbiddenDetail()}
}

// CheckInternal is Check for the apiserver's internal form of a pod, as
// admission plugins see it.
func CheckInternal(level string, pod *api.Pod) (*Violation, error) {
	v1pod := &corev1.Pod{}
	if err := k8sv1.Convert_core_Pod_To_v1_Pod(pod, v1pod, nil); err != nil {
		return nil, fmt.Errorf("converting pod %s for the pod security check: %w", pod.Name, err)
	}
	return Check(level, v1pod), nil
}

// Stricter reports whether level a forbids more than b.
func Stricter(a, b string) bool { return rank(a) < rank(b) }

func rank(level string) int {
	for i, l := range Levels {
		if l == level {
			return i
		}
	}
	return 0 // unknown: as strict as it gets
}
