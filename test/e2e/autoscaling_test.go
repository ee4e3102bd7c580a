package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// webWithAutoscaler is a Deployment whose (simulated) pods each use cpu of
// their 100m request, and an autoscaler holding them at 50%, 1 to 3 pods.
func webWithAutoscaler(cpu string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {kplex.io/simulate-cpu: %q, kplex.io/simulate-memory: 32Mi}
    spec:
      containers:
      - name: web
        image: busybox
        resources: {requests: {cpu: 100m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
`, cpu)
}

// TestE2EHorizontalPodAutoscalerPerTenant: `kubectl top` shows a tenant its
// own pods' usage (read from the node agent's runtime), and the tenant's
// autoscaler scales its Deployment on it; tenant B's same-named Deployment
// and autoscaler, whose pods are idle, stay at one pod, and B's `kubectl
// top` shows B's pod only.
func TestE2EHorizontalPodAutoscalerPerTenant(t *testing.T) {
	m := newMachine(t)
	m.up("--runtime=simulated", "--metrics-resolution=2s", "--horizontal-pod-autoscaler-sync-period=2s")
	a, b := "--context=kplex-hpa-a", "--context=kplex-hpa-b"
	m.must(m.kplex("create", "cluster", "hpa-a"))
	m.must(m.kplex("create", "cluster", "hpa-b"))
	m.eventuallyWithin(30*time.Second, "hpa-a's default ServiceAccount", a, "get", "serviceaccount", "default")
	m.eventuallyWithin(30*time.Second, "hpa-b's default ServiceAccount", b, "get", "serviceaccount", "default")
	m.must(m.runStdin(webWithAutoscaler("400m"), "kubectl", a, "apply", "-f", "-"))
	m.must(m.runStdin(webWithAutoscaler("10m"), "kubectl", b, "apply", "-f", "-"))

	// 400m of 100m is 400% of the request, 8 times the target: a's
	// Deployment goes to its maximum.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		replicas := m.must(m.kubectl(a, "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"))
		if replicas == "3" {
			break
		}
		if time.Now().After(deadline) {
			hpa, _, _ := m.kubectl(a, "describe", "hpa", "web")
			t.Fatalf("hpa-a's web has %s replicas, want 3\n%s", replicas, hpa)
		}
		time.Sleep(time.Second)
	}
	m.must(m.kubectl(a, "wait", "--for=condition=available", "deployment/web", "--timeout=60s"))

	top := m.eventuallyWithin(30*time.Second, "kubectl top pod in hpa-b", b, "top", "pod", "--no-headers")
	if rows := lines(top); len(rows) != 1 || !strings.HasPrefix(rows[0], "web-") {
		t.Errorf("hpa-b's kubectl top pod shows\n%s\nwant its one web pod", top)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		top = m.must(m.kubectl(a, "top", "pod", "--no-headers"))
		rows := lines(top)
		ok := len(rows) == 3
		for _, r := range rows {
			// NAME CPU MEMORY: each pod of a's uses about 400m and 32Mi.
			f := strings.Fields(r)
			ok = ok && len(f) == 3 && strings.HasPrefix(f[0], "web-") && strings.HasPrefix(f[1], "4") && f[2] == "32Mi"
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hpa-a's kubectl top pod shows\n%s\nwant its three web pods at about 400m and 32Mi", top)
		}
		time.Sleep(time.Second)
	}
	if got := m.must(m.kubectl(b, "get", "deployment", "web", "-o", "jsonpath={.spec.replicas}")); got != "1" {
		t.Errorf("hpa-b's idle web has %s replicas, want 1 (its autoscaler saw a's load?)", got)
	}
	// 10m of 100m; rates are rounded up to the millicore.
	if got := m.must(m.kubectl(b, "get", "hpa", "web", "-o", "jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}")); got != "10" && got != "11" {
		t.Errorf("hpa-b's autoscaler sees %q%% utilization, want 10", got)
	}
}
