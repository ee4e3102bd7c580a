package main

import (
	"strings"
	"testing"
)

const sample = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5" disabled="1" errors="1" failures="1" time="12">
  <testsuite name="Kubernetes e2e suite" tests="5">
    <testcase name="[SynchronizedBeforeSuite]" status="passed"></testcase>
    <testcase name="[SynchronizedAfterSuite]" status="failed"><failure message="cleanup failed" type="failed"></failure></testcase>
    <testcase name="[It] [sig-api-machinery] Namespaces should patch a Namespace [Conformance]" status="passed"></testcase>
    <testcase name="[It] [sig-apps] ReplicationController should serve a basic image [Conformance]" status="failed">
      <failure message="Expected&#xA;    &lt;int&gt;: 0&#xA;to equal 1" type="failed">details</failure>
    </testcase>
    <testcase name="[It] [sig-apps] Job should hang [Conformance]" status="interrupted">
      <error message="Interrupted by Timeout" type="interrupted">progress</error>
    </testcase>
    <testcase name="[It] [sig-node] Pods should run on windows [Conformance]" status="skipped"><skipped message="skipped - Only supported for node OS distro [windows]"></skipped></testcase>
    <testcase name="[It] [sig-storage] not focused" status="skipped"><skipped message="skipped"></skipped></testcase>
  </testsuite>
</testsuites>`

func TestParseAndSummary(t *testing.T) {
	t.Parallel()
	results, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Result{
		"[SynchronizedAfterSuite]": {Status: Failed, Cause: "cleanup failed"},
		"[sig-api-machinery] Namespaces should patch a Namespace [Conformance]":     {SIG: "api-machinery", Status: Passed},
		"[sig-apps] ReplicationController should serve a basic image [Conformance]": {SIG: "apps", Status: Failed, Cause: "Expected"},
		"[sig-apps] Job should hang [Conformance]":                                  {SIG: "apps", Status: Failed, Cause: "interrupted: Interrupted by Timeout"},
		"[sig-node] Pods should run on windows [Conformance]":                       {SIG: "node", Status: Skipped, Cause: "Only supported for node OS distro [windows]"},
	}
	if len(results) != len(want) {
		t.Fatalf("got %d results, want %d: %+v", len(results), len(want), results)
	}
	for _, r := range results {
		w, ok := want[r.Name]
		w.Name = r.Name
		if !ok || r != w {
			t.Errorf("result %+v, want %+v", r, w)
		}
	}

	var b strings.Builder
	writeSummary(&b, results)
	for _, line := range []string{
		"(suite)                      0       1        0",
		"apps                         0       2        0",
		"TOTAL                        1       3        1",
		"Failures (3):",
		"- [sig-apps] Job should hang [Conformance]\n    interrupted: Interrupted by Timeout",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("summary lacks %q:\n%s", line, b.String())
		}
	}
}
