package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// Status is a spec's outcome, as the table counts it.
type Status string

const (
	Passed  Status = "passed"
	Failed  Status = "failed" // failed, timed out, interrupted, aborted or panicked
	Skipped Status = "skipped"
)

// Result is one spec that ran.
type Result struct {
	Name   string
	SIG    string // "api-machinery"; "" for the suite's own nodes
	Status Status
	// Cause is a failure's first line, or a skip's reason.
	Cause string
}

// The parts of ginkgo's JUnit report read here.
type junitSuites struct {
	Suites []struct {
		Cases []junitCase `xml:"testcase"`
	} `xml:"testsuite"`
}

type junitCase struct {
	Name    string `xml:"name,attr"`
	Status  string `xml:"status,attr"`
	Skipped *struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
	Failure *junitProblem `xml:"failure"`
	Error   *junitProblem `xml:"error"`
}

type junitProblem struct {
	Message     string `xml:"message,attr"`
	Type        string `xml:"type,attr"`
	Description string `xml:",chardata"`
}

var sigPattern = regexp.MustCompile(`\[sig-([a-z0-9-]+)\]`)

// parse reads the specs that ran, sorted by name. A spec skipped with no
// reason was filtered out by focus or skip and is left out; so are the
// suite's own nodes ([SynchronizedBeforeSuite]...) unless they failed.
func parse(r io.Reader) ([]Result, error) {
	var doc junitSuites
	if err := xml.NewDecoder(r).Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse JUnit XML: %w", err)
	}
	var results []Result
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			name, spec := strings.CutPrefix(c.Name, "[It] ")
			if !spec && c.Failure == nil && c.Error == nil {
				continue
			}
			res := Result{Name: name}
			if m := sigPattern.FindStringSubmatch(c.Name); m != nil {
				res.SIG = m[1]
			}
			switch {
			case c.Skipped != nil:
				reason, ok := strings.CutPrefix(c.Skipped.Message, "skipped - ")
				if !ok {
					continue // not selected, or pending
				}
				res.Status, res.Cause = Skipped, oneLine(reason)
			case c.Failure != nil:
				res.Status, res.Cause = Failed, cause(c.Failure)
			case c.Error != nil:
				res.Status, res.Cause = Failed, cause(c.Error)
			case c.Status == "passed":
				res.Status = Passed
			default:
				res.Status, res.Cause = Failed, c.Status
			}
			results = append(results, res)
		}
	}
	sort.Slice(results, func(i, j int) bool { return results[i].Name < results[j].Name })
	return results, nil
}

// cause is a failure's one-line reason: its message's first line, with
// how it ended when that was not a plain failure (timedout, interrupted).
func cause(p *junitProblem) string {
	msg := oneLine(p.Message)
	if msg == "" {
		msg = oneLine(p.Description)
	}
	if p.Type != "" && p.Type != "failed" {
		msg = p.Type + ": " + msg
	}
	return msg
}

// oneLine is the first non-empty line of s, at most 200 characters.
func oneLine(s string) string {
	for _, line := range strings.Split(s, "\n") {
		if line = strings.Join(strings.Fields(line), " "); line != "" {
			if len(line) > 200 {
				line = line[:197] + "..."
			}
			return line
		}
	}
	return ""
}

// writeSummary writes the table by SIG and the failures.
func writeSummary(w io.Writer, results []Result) {
	type counts struct{ passed, failed, skipped int }
	bySIG := map[string]*counts{}
	var total counts
	for _, r := range results {
		sig := r.SIG
		if sig == "" {
			sig = "(suite)"
		}
		c := bySIG[sig]
		if c == nil {
			c = &counts{}
			bySIG[sig] = c
		}
		for _, cc := range []*counts{c, &total} {
			switch r.Status {
			case Passed:
				cc.passed++
			case Failed:
				cc.failed++
			case Skipped:
				cc.skipped++
			}
		}
	}
	sigs := make([]string, 0, len(bySIG))
	for s := range bySIG {
		sigs = append(sigs, s)
	}
	sort.Strings(sigs)
	fmt.Fprintf(w, "%-22s %7s %7s %8s\n", "SIG", "PASSED", "FAILED", "SKIPPED")
	for _, s := range sigs {
		c := bySIG[s]
		fmt.Fprintf(w, "%-22s %7d %7d %8d\n", s, c.passed, c.failed, c.skipped)
	}
	fmt.Fprintf(w, "%-22s %7d %7d %8d\n", "TOTAL", total.passed, total.failed, total.skipped)
	if total.failed == 0 {
		return
	}
	fmt.Fprintf(w, "\nFailures (%d):\n", total.failed)
	for _, r := range results {
		if r.Status == Failed {
			fmt.Fprintf(w, "- %s\n    %s\n", r.Name, r.Cause)
		}
	}
}
