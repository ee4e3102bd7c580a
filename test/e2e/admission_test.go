package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const noDenyPolicy = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: no-deny
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE"]
      resources: ["configmaps"]
  validations:
  - expression: "!object.metadata.name.startsWith('deny-')"
    message: "alpha's policy says no"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: no-deny
spec:
  policyName: no-deny
  validationActions: [Deny]
`

// TestE2EAdmissionPolicyIsPerTenant applies a ValidatingAdmissionPolicy in
// one tenant with kubectl; a second tenant does what it forbids.
func TestE2EAdmissionPolicyIsPerTenant(t *testing.T) {
	m := newMachine(t)
	m.up()
	for _, name := range []string{"alpha", "beta"} {
		m.must(m.kplex("create", "cluster", name))
	}
	manifest := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(manifest, []byte(noDenyPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	m.must(m.kubectl("--context=kplex-alpha", "apply", "-f", manifest))

	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		_, errOut, err := m.kubectl("--context=kplex-alpha", "create", "configmap", fmt.Sprintf("deny-%d", i))
		if err != nil {
			if !strings.Contains(errOut, "alpha's policy says no") {
				t.Fatalf("alpha's create failed for another reason: %s", errOut)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alpha's policy never took effect in alpha")
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.must(m.kubectl("--context=kplex-beta", "create", "configmap", "deny-me"))
	if out := m.must(m.kubectl("--context=kplex-beta", "get", "validatingadmissionpolicies", "-o", "name")); strings.TrimSpace(out) != "" {
		t.Errorf("beta sees alpha's policies: %q", out)
	}
}
