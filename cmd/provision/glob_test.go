package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// One glob dialect for depends_on and --only (path.Match: * stops at "/"); --only
// also selects an item's sub-tasks ("site-1" and "site-*" select "site-1/cams").
const globPlan = `version: 1
name: globs
milestones:
  items:
    - {name: site-1}
    - {name: site-1/cams}
    - {name: site-2}
    - {name: all-sites, depends_on: ["site-*"]}
`

func TestCLI_Globs_OneDialectForDependsOnAndOnly(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "globs.yaml", globPlan)
	state := filepath.Join(dir, "globs.db")

	// depends_on: "site-*" does not reach past the "/" of site-1/cams.
	code, out, errs := cli(t, "graph", p)
	if code != ExitOK {
		t.Fatalf("graph: %d %s", code, errs)
	}
	for _, want := range []string{`"all-sites" -> "site-1";`, `"all-sites" -> "site-2";`} {
		if !strings.Contains(out, want) {
			t.Errorf("graph lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"all-sites" -> "site-1/cams"`) {
		t.Errorf(`depends_on "site-*" matched site-1/cams:\n%s`, out)
	}

	only := func(pattern string) ([]string, int, string) {
		t.Helper()
		code, out, errs := cli(t, "plan", p, "--state", state, "--json", "--only", pattern)
		if code != ExitOK {
			return nil, code, errs
		}
		var dr struct {
			Tasks []struct{ ID string } `json:"tasks"`
		}
		if err := json.Unmarshal([]byte(out), &dr); err != nil {
			t.Fatalf("plan --json: %v\n%s", err, out)
		}
		var ids []string
		for _, d := range dr.Tasks {
			ids = append(ids, d.ID)
		}
		slices.Sort(ids)
		return ids, code, errs
	}
	for _, c := range []struct {
		pattern string
		want    []string
	}{
		{"site-*", []string{"site-1", "site-1/cams", "site-2"}}, // site-1/cams as site-1's sub-task
		{"site-1", []string{"site-1", "site-1/cams"}},
		{"*/cams", []string{"site-1/cams"}},
		{"all-*", []string{"all-sites", "site-1", "site-2"}}, // and what it depends on
	} {
		if got, code, errs := only(c.pattern); code != ExitOK || !slices.Equal(got, c.want) {
			t.Errorf("--only %q: exit %d %s, selected %v, want %v", c.pattern, code, errs, got, c.want)
		}
	}
	// A star does not cross "/" in --only either; a malformed pattern names the flag.
	if _, code, errs := only("*cams"); code != ExitBadInput || !strings.Contains(errs, `--only "*cams" matches no task`) {
		t.Errorf(`--only "*cams": exit %d, %s`, code, errs)
	}
	if _, code, errs := only("site-[1"); code != ExitBadInput || !strings.Contains(errs, `--only "site-[1"`) {
		t.Errorf(`--only "site-[1": exit %d, %s`, code, errs)
	}
}
