package e2e

import (
	"strings"
	"testing"
)

// alpha's widgets: namespaced, v1, an integer size shown as a column, a
// defaulted color, and a status subresource.
const widgetsAlpha = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: alpha's widget spec
            properties:
              size: {type: integer, description: how big alpha's widget is}
              color: {type: string, default: red}
              tags: {type: array, items: {type: string}}
`

// beta's widgets: the same name, cluster-scoped, v2, a required name.
const widgetsBeta = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  scope: Cluster
  versions:
  - name: v2
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Owner, type: string, jsonPath: .spec.owner}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: beta's widget spec
            required: [owner]
            properties:
              owner: {type: string, description: who owns beta's widget}
`

// TestE2ECRDsArePerTenant has two tenants define the same CRD with
// conflicting schemas and drives both with kubectl: discovery, explain,
// client- and server-side apply, columns and deletion stay each tenant's.
func TestE2ECRDsArePerTenant(t *testing.T) {
	m := newMachine(t)
	m.up()
	for name, crd := range map[string]string{"alpha": widgetsAlpha, "beta": widgetsBeta} {
		m.must(m.kplex("create", "cluster", name))
		ctx := "--context=kplex-" + name
		m.must(m.runStdin(crd, "kubectl", ctx, "apply", "-f", "-"))
		m.must(m.kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/widgets.example.com"))
	}
	alpha, beta := "--context=kplex-alpha", "--context=kplex-beta"

	// Discovery: each tenant its own version and scope; root's kplex.io is no tenant's.
	if out := m.must(m.kubectl(alpha, "api-resources", "--api-group=example.com", "--no-headers")); !hasFields(out, "widgets", "example.com/v1", "true", "Widget") {
		t.Errorf("alpha's api-resources for example.com:\n%s", out)
	}
	if out := m.must(m.kubectl(beta, "api-resources", "--api-group=example.com", "--no-headers")); !hasFields(out, "widgets", "example.com/v2", "false", "Widget") {
		t.Errorf("beta's api-resources for example.com:\n%s", out)
	}
	if out := m.must(m.kubectl(alpha, "api-resources", "--no-headers")); strings.Contains(out, "kplex.io") {
		t.Errorf("alpha's api-resources list root's kplex.io:\n%s", out)
	}
	if out := m.must(m.kubectl("--context=kplex-root", "api-resources", "--no-headers")); strings.Contains(out, "example.com") {
		t.Errorf("root's api-resources list a tenant's example.com:\n%s", out)
	}

	// explain reads each tenant's own schema.
	if out := m.must(m.kubectl(alpha, "explain", "widgets.spec")); !strings.Contains(out, "how big alpha's widget is") || strings.Contains(out, "owner") {
		t.Errorf("kubectl explain widgets.spec in alpha:\n%s", out)
	}
	if out := m.must(m.kubectl(beta, "explain", "widgets.spec")); !strings.Contains(out, "who owns beta's widget") || strings.Contains(out, "size") {
		t.Errorf("kubectl explain widgets.spec in beta:\n%s", out)
	}

	// Client-side apply, twice (the second is a three-way merge), and the column.
	widget := "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3, tags: [a, b]}\n"
	m.must(m.runStdin(widget, "kubectl", alpha, "apply", "-f", "-"))
	m.must(m.runStdin(strings.Replace(widget, "size: 3", "size: 5", 1), "kubectl", alpha, "apply", "-f", "-"))
	if out := m.must(m.kubectl(alpha, "get", "widgets", "w1", "--no-headers")); !hasFields(out, "w1", "5") {
		t.Errorf("alpha's widget after a second apply, with its Size column:\n%s", out)
	}
	if got := m.must(m.kubectl(alpha, "get", "widget", "w1", "-o", "jsonpath={.spec.color}")); got != "red" {
		t.Errorf("alpha's widget spec.color = %q, want alpha's default red", got)
	}
	// alpha's schema rejects what beta's would take, and the other way round.
	if errOut := m.mustFail(m.runStdin("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2, namespace: default}\nspec: {size: big}\n", "kubectl", alpha, "apply", "-f", "-")); !strings.Contains(errOut, "spec.size") {
		t.Errorf("alpha's widget with size=big: %s", errOut)
	}
	if errOut := m.mustFail(m.runStdin("apiVersion: example.com/v2\nkind: Widget\nmetadata: {name: b0}\nspec: {}\n", "kubectl", beta, "apply", "--server-side", "-f", "-")); !strings.Contains(errOut, "spec.owner") {
		t.Errorf("beta's widget without an owner: %s", errOut)
	}

	// Server-side apply of beta's cluster-scoped widget, and of a built-in.
	m.must(m.runStdin("apiVersion: example.com/v2\nkind: Widget\nmetadata: {name: b1}\nspec: {owner: beta}\n", "kubectl", beta, "apply", "--server-side", "-f", "-"))
	if out := m.must(m.kubectl(beta, "get", "widgets", "--no-headers")); !hasFields(out, "b1", "beta") || strings.Contains(out, "w1") {
		t.Errorf("beta's widgets:\n%s", out)
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: default}\ndata: {k: v}\n"
	m.must(m.runStdin(cm, "kubectl", alpha, "apply", "-f", "-"))
	m.must(m.runStdin(strings.Replace(cm, "k: v", "k: w", 1), "kubectl", alpha, "apply", "--server-side", "--force-conflicts", "-f", "-"))
	if got := m.must(m.kubectl(alpha, "get", "configmap", "settings", "-o", "jsonpath={.data.k}")); got != "w" {
		t.Errorf("alpha's configmap after client- then server-side apply: k=%q", got)
	}

	// Deleting alpha's CRD takes alpha's widgets with it, not beta's.
	m.must(m.kubectl(alpha, "delete", "crd", "widgets.example.com", "--timeout=60s"))
	if _, errOut, err := m.kubectl(alpha, "get", "widgets"); err == nil || !strings.Contains(errOut, "widgets") {
		t.Errorf("alpha gets widgets after deleting its CRD: err=%v %s", err, errOut)
	}
	if out := m.must(m.kubectl(beta, "get", "widgets", "--no-headers")); !hasFields(out, "b1", "beta") {
		t.Errorf("beta's widgets after alpha deleted its CRD:\n%s", out)
	}
}

// hasFields reports whether some line of out holds every field, in order.
func hasFields(out string, fields ...string) bool {
	for _, line := range lines(out) {
		got := strings.Fields(line)
		i := 0
		for _, f := range got {
			if i < len(fields) && f == fields[i] {
				i++
			}
		}
		if i == len(fields) {
			return true
		}
	}
	return false
}
