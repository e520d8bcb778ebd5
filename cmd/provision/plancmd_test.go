package main

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"provision/providers/httpstep/httpfake"
)

func widgetsFixture(t *testing.T, n string) (*httpfake.Server, string, string, string) {
	t.Helper()
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	return srv, dir, writeFile(t, dir, "widgets.yaml", lifecyclePlan(n)), "api=" + ts.URL
}

func TestCLI_Plan_ShowsChangedFieldsOldToNew(t *testing.T) {
	_, dir, p, v := widgetsFixture(t, "2")
	if code, out, errs := cli(t, "apply", p, "--var", v); code != ExitOK {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errs)
	}
	text := strings.Replace(lifecyclePlan("2"), `body: {name: "label-${row.value}"}`, `body: {name: "label-${row.value}", color: blue}`, 1)
	writeFile(t, dir, "widgets.yaml", text)
	code, out, errs := cli(t, "plan", p, "--var", v)
	if code != ExitOK || strings.Count(out, "update  label-") != 2 || strings.Count(out, "body.color: (none) -> blue") != 2 {
		t.Fatalf("plan should show the changed field: code %d\n%s\n%s", code, out, errs)
	}
	if strings.Contains(out, "path:") {
		t.Errorf("a path from another task's output is not a change:\n%s", out)
	}
	code, out, _ = cli(t, "plan", p, "--var", v, "--json")
	var dr dryRun
	if code != ExitOK || json.Unmarshal([]byte(out), &dr) != nil {
		t.Fatalf("plan --json: code %d\n%s", code, out)
	}
	found := false
	for _, d := range dr.Tasks {
		if d.ID == "label-1" && len(d.Changes) == 1 && d.Changes[0].Field == "body.color" && d.Changes[0].New == "blue" {
			found = true
		}
	}
	if !found {
		t.Errorf("plan --json: label-1 should carry its change:\n%s", out)
	}
}

func TestCLI_Plan_ExitCode(t *testing.T) {
	_, _, p, v := widgetsFixture(t, "2")
	if code, out, _ := cli(t, "plan", p, "--var", v, "--exit-code"); code != ExitChanges {
		t.Fatalf("plan --exit-code with work to do: code %d, want %d\n%s", code, ExitChanges, out)
	}
	if code, out, errs := cli(t, "apply", p, "--var", v); code != ExitOK {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errs)
	}
	if code, out, _ := cli(t, "plan", p, "--var", v, "--exit-code"); code != ExitOK {
		t.Fatalf("plan --exit-code with nothing to do: code %d\n%s", code, out)
	}
}

func TestCLI_Plan_RefreshFindsDriftAndApplyPutsItBack(t *testing.T) {
	srv, _, p, v := widgetsFixture(t, "2")
	if code, out, errs := cli(t, "apply", p, "--var", v); code != ExitOK {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errs)
	}
	if code, out, _ := cli(t, "plan", p, "--var", v, "--refresh", "--exit-code"); code != ExitOK || strings.Contains(out, "drift") {
		t.Fatalf("plan --refresh with nothing changed: code %d\n%s", code, out)
	}
	if !srv.Remove("widgets", "widget-2") {
		t.Fatal("no widget-2 to remove")
	}
	code, out, errs := cli(t, "plan", p, "--var", v, "--refresh", "--exit-code")
	if code != ExitChanges || !strings.Contains(out, "update  widget-2") || !strings.Contains(out, "drift") || !strings.Contains(out, "(object): (missing) -> (exists)") {
		t.Fatalf("plan --refresh after a hand removal: code %d\n%s\n%s", code, out, errs)
	}
	if code, out, _ = cli(t, "plan", p, "--var", v); code != ExitOK || strings.Contains(out, "drift") {
		t.Errorf("plan without --refresh reads nothing remote:\n%s", out)
	}
	if code, out, errs = cli(t, "apply", p, "--var", v, "--refresh"); code != ExitOK || !strings.Contains(out, "applied      1") {
		t.Fatalf("apply --refresh: code %d\n%s\n%s", code, out, errs)
	}
	if !objectNames(srv)["widgets/widget-2"] {
		t.Fatal("apply --refresh did not put widget-2 back")
	}
	if code, out, _ := cli(t, "plan", p, "--var", v, "--refresh", "--exit-code"); code != ExitOK {
		t.Fatalf("plan --refresh after the repair: code %d\n%s", code, out)
	}
}

func TestCLI_SavedPlan_AppliesExactlyOrRefuses(t *testing.T) {
	srv, dir, p, v := widgetsFixture(t, "2")
	saved := filepath.Join(dir, "rollout.plan")
	code, out, errs := cli(t, "plan", p, "--var", v, "--out", saved)
	if code != ExitOK || !strings.Contains(out, "saved to "+saved) {
		t.Fatalf("plan --out: code %d\n%s\n%s", code, out, errs)
	}
	raw, _ := os.ReadFile(saved)
	if strings.Contains(string(raw), "cli-secret-canary-93") {
		t.Fatal("the saved plan holds a secret")
	}
	if fi, _ := os.Stat(saved); fi.Mode().Perm() != 0o600 {
		t.Errorf("saved plan mode %v, want 0600", fi.Mode().Perm())
	}
	// The plan changes after it was saved: refused, nothing sent.
	writeFile(t, dir, "widgets.yaml", lifecyclePlan("3"))
	code, _, errs = cli(t, "apply", saved, "--var", v)
	if code != ExitBadInput || !strings.Contains(errs, "out of date") || !strings.Contains(errs, "the plan or its inputs") || len(srv.Objects()) != 0 {
		t.Fatalf("apply of a stale saved plan: code %d, objects %d\n%s", code, len(srv.Objects()), errs)
	}
	writeFile(t, dir, "widgets.yaml", lifecyclePlan("2"))
	if code, _, errs = cli(t, "apply", saved, "--var", v, "--only", "widget-1"); code != ExitBadInput {
		t.Fatalf("apply of a saved plan with --only: code %d\n%s", code, errs)
	}
	code, out, errs = cli(t, "apply", saved, "--var", v)
	if code != ExitOK || !strings.Contains(out, "applied      4") {
		t.Fatalf("apply of the saved plan: code %d\n%s\n%s", code, out, errs)
	}
	// Applied once: the state changed, so the same saved plan is now refused.
	code, _, errs = cli(t, "apply", saved, "--var", v)
	if code != ExitBadInput || !strings.Contains(errs, "the state changed") {
		t.Fatalf("second apply of the saved plan: code %d\n%s", code, errs)
	}
	writeFile(t, dir, "bad.plan", `{"provision_saved_plan": "9", "plan_file": "x"}`)
	if code, _, errs = cli(t, "apply", filepath.Join(dir, "bad.plan")); code != ExitBadInput || !strings.Contains(errs, "unknown format") {
		t.Errorf("a saved plan of another format: code %d\n%s", code, errs)
	}
	writeFile(t, dir, "broken.plan", `{"provision_saved_plan": "1", "plan_file": `)
	if code, _, errs = cli(t, "apply", filepath.Join(dir, "broken.plan")); code != ExitBadInput || !strings.Contains(errs, "damaged") {
		t.Errorf("a damaged saved plan: code %d\n%s", code, errs)
	}
}

// asTerminal makes the CLI believe a person sits at a terminal typing answer.
func asTerminal(t *testing.T, answer string) {
	t.Helper()
	oldIn, oldI := stdin, interactive
	stdin = strings.NewReader(answer)
	interactive = func(io.Writer) bool { return true }
	t.Cleanup(func() { stdin, interactive = oldIn, oldI })
}

func TestCLI_ApplyAndDestroy_AskOnATerminal(t *testing.T) {
	srv, _, p, v := widgetsFixture(t, "2")
	asTerminal(t, "no\n")
	code, _, errs := cli(t, "apply", p, "--var", v)
	if code != ExitBadInput || !strings.Contains(errs, "4 to create") || !strings.Contains(errs, "Type yes") || !strings.Contains(errs, "not confirmed") || len(srv.Objects()) != 0 {
		t.Fatalf("apply answered no: code %d, objects %d\n%s", code, len(srv.Objects()), errs)
	}
	asTerminal(t, "yes\n")
	if code, out, errs := cli(t, "apply", p, "--var", v); code != ExitOK || len(srv.Objects()) != 4 {
		t.Fatalf("apply answered yes: code %d\n%s\n%s", code, out, errs)
	}
	// Nothing to change: no question.
	asTerminal(t, "")
	if code, out, errs := cli(t, "apply", p, "--var", v); code != ExitOK || strings.Contains(errs, "Type yes") {
		t.Fatalf("apply with nothing to do asked: code %d\n%s\n%s", code, out, errs)
	}
	asTerminal(t, "nope\n")
	if code, _, errs := cli(t, "destroy", p, "--var", v); code != ExitBadInput || !strings.Contains(errs, "4 objects will be deleted") || len(srv.Objects()) != 4 {
		t.Fatalf("destroy answered no: code %d\n%s", code, errs)
	}
	asTerminal(t, "yes\n")
	if code, out, errs := cli(t, "destroy", p, "--var", v); code != ExitOK || len(srv.Objects()) != 0 {
		t.Fatalf("destroy answered yes: code %d\n%s\n%s", code, out, errs)
	}
}
