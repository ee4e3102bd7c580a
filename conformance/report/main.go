// Command report summarizes a conformance run's JUnit report (the e2e
// suite's junit_01.xml):
// a table of passed, failed and skipped specs by SIG, then each failure
// with a one-line cause. It prints the summary and writes it to
// <out>/summary.txt, with every run spec's result in <out>/results.tsv
// (status, then name, sorted by name) for comparing runs.
//
// Specs the focus did not select are not counted; specs that skipped
// themselves at run time (a missing feature, a provider) are.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	junit := flag.String("junit", "", "the suite's JUnit report (junit_01.xml in its --report-dir)")
	out := flag.String("out", "", "directory to write summary.txt and results.tsv to; empty writes none")
	flag.Parse()
	if err := run(*junit, *out, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(junit, out string, stdout io.Writer) error {
	if junit == "" {
		return fmt.Errorf("--junit is required")
	}
	f, err := os.Open(junit)
	if err != nil {
		return fmt.Errorf("read JUnit report: %w", err)
	}
	defer f.Close()
	results, err := parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", junit, err)
	}
	var summary strings.Builder
	writeSummary(&summary, results)
	fmt.Fprint(stdout, summary.String())
	if out == "" {
		return nil
	}
	if err := os.WriteFile(filepath.Join(out, "summary.txt"), []byte(summary.String()), 0o644); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	var tsv strings.Builder
	for _, r := range results {
		fmt.Fprintf(&tsv, "%s\t%s\n", r.Status, r.Name)
	}
	if err := os.WriteFile(filepath.Join(out, "results.tsv"), []byte(tsv.String()), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
