package main

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"provision/providers/httpstep/httpfake"
)

// A plan of many done tasks reads as its changes: grouped by section, skips counted
// (listed with --show-skips), while --json lists every task.
func TestCLI_Plan_GroupsBySectionAndCountsSkips(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	big := strings.ReplaceAll(widgetsPlan, "to: 3}", "to: 150}") + `    - {name: extra, method: PUT, path: /v1/labels/extra, body: {n: 1}}
`
	p := writeFile(t, dir, "widgets.yaml", big)
	v := "api=" + ts.URL
	if code, out, errs := cli(t, "apply", p, "--var", v, "--parallel", "8"); code != ExitOK {
		t.Fatalf("apply: %d\n%s%s", code, out, errs)
	}
	// One edited item, one new widget (and its label).
	edited := strings.Replace(big, "body: {n: 1}", "body: {n: 2}", 1)
	edited = strings.ReplaceAll(edited, "to: 150}", "to: 151}")
	writeFile(t, dir, "widgets.yaml", edited)

	code, out, errs := cli(t, "plan", p, "--var", v)
	if code != ExitOK {
		t.Fatalf("plan: %d\n%s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > 12 {
		t.Fatalf("plan printed %d lines:\n%s", len(lines), out)
	}
	for _, want := range []string{
		"http: create 2, update 1, skip 300, retry 0",
		"  create  widget-151",
		"  create  label-151",
		"  update  extra",
		"body.n: 1 -> 2",
		"  skip    300 done and unchanged (--show-skips lists them)",
		"total: 303 tasks: 2 to create, 1 to update, 0 to retry, 300 done (skip)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "skip    widget-") {
		t.Error("skips listed without --show-skips")
	}
	// Creates come before updates within the section.
	if strings.Index(out, "create  widget-151") > strings.Index(out, "update  extra") {
		t.Error("creates not listed first")
	}
	_, out, _ = cli(t, "plan", p, "--var", v, "--show-skips")
	if n := strings.Count(out, "\n  skip    widget-"); n != 150 {
		t.Errorf("--show-skips listed %d skipped widgets, want 150", n)
	}
	_, out, _ = cli(t, "plan", p, "--var", v, "--summary")
	if strings.Contains(out, "  create  ") || !strings.Contains(out, "total: 303 tasks") {
		t.Errorf("--summary:\n%s", out)
	}
	_, out, _ = cli(t, "plan", p, "--var", v, "--json")
	var dr dryRun
	if err := json.Unmarshal([]byte(out), &dr); err != nil || len(dr.Tasks) != 303 || dr.Totals.Total != 303 {
		t.Fatalf("--json: %v, %d tasks", err, len(dr.Tasks))
	}
}

// --log-level debug shows each request of the API clients: method, route, status,
// duration and the task's attempt; never a secret or a query string value.
func TestCLI_DebugLogShowsEachRequest(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	code, out, errs := cli(t, "apply", p, "--var", "api="+ts.URL, "--log-level", "debug", "--log-format", "json")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	n := 0
	for _, l := range strings.Split(errs, "\n") {
		if !strings.Contains(l, `"message":"request"`) {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if e["method"] == nil || e["route"] == nil || e["status"] == nil || e["took_ms"] == nil || e["attempt"] == nil || e["task"] == nil {
			t.Errorf("request line lacks a field: %s", l)
		}
		n++
	}
	if n < 6 {
		t.Fatalf("%d request lines:\n%s", n, errs)
	}
	for _, bad := range []string{"cli-secret-canary-93", "name=widget", `"took":`, `"retry_in":`} {
		if strings.Contains(errs, bad) {
			t.Errorf("log holds %q", bad)
		}
	}
}
