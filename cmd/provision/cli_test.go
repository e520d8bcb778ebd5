package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"provision/plan"
	"provision/providers/httpstep/httpfake"
	"provision/providers/sandbox"
	"provision/runner"
	"provision/state"
)

var update = flag.Bool("update", false, "rewrite golden files")

// cli runs the command in-process and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	code := exitCode(err, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const widgetsPlan = `version: 1
name: widgets
vars:
  api: http://127.0.0.1:1
endpoints:
  api:
    kind: http
    url: ${var.api}
    auth: {type: oauth2-client-credentials, token_url: /oauth/token, client_id: cli-test, client_secret: "${env.CLI_TEST_SECRET}"}
http:
  defaults: {endpoint: api}
  items:
    - name: widget-${row.value}
      foreach: {range: {from: 1, to: 3}}
      path: /v1/widgets
      body: {name: "widget-${row.value}"}
      expect: [201]
      outputs: {id: id}
      lookup: {path: /v1/widgets, query: {name: "widget-${row.value}"}, match: "items[0].id", outputs: {id: "items[0].id"}}
    - name: label-${row.value}
      foreach: {range: {from: 1, to: 3}}
      method: PUT
      path: /v1/labels/${outputs.widget-${row.value}.id}
      body: {name: "label-${row.value}"}
`

func TestCLI_ApplyThenResume_EndToEnd(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	v := "api=" + ts.URL

	code, out, errs := cli(t, "plan", p, "--var", v)
	if code != ExitOK || !strings.Contains(out, "total: 6 tasks: 6 to create") {
		t.Fatalf("plan: code %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, ".provision")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dry run created state: %v", err)
	}
	code, out, errs = cli(t, "apply", p, "--var", v, "--log-level", "debug")
	if code != ExitOK || !strings.Contains(out, "applied      6") {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = cli(t, "apply", p, "--var", v)
	if code != ExitOK || !strings.Contains(out, "up to date   6") || !strings.Contains(out, "applied      0") {
		t.Fatalf("rerun: code %d\n%s", code, out)
	}
	code, out, _ = cli(t, "plan", p, "--var", v, "--json")
	var dr dryRun
	if code != ExitOK || json.Unmarshal([]byte(out), &dr) != nil || dr.Totals.Skip != 6 {
		t.Fatalf("plan --json after apply: code %d\n%s", code, out)
	}
	code, out, _ = cli(t, "status", p, "--var", v)
	if code != ExitOK || !strings.Contains(out, "done         6") {
		t.Fatalf("status: code %d\n%s", code, out)
	}
	for name, n := range srv.Creates() {
		if n != 1 {
			t.Errorf("%s created %d times", name, n)
		}
	}
	sp := filepath.Join(dir, ".provision", "widgets.db")
	raw, err := os.ReadFile(sp)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("cli-secret-canary-93")) {
		t.Fatal("secret in the state file")
	}
	if fi, _ := os.Stat(sp); fi.Mode().Perm() != 0o600 {
		t.Errorf("state mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestCLI_EditedItemShowsAsUpdate(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	v := "api=" + ts.URL
	if code, out, errs := cli(t, "apply", p, "--var", v); code != ExitOK {
		t.Fatalf("apply: %d\n%s\n%s", code, out, errs)
	}
	writeFile(t, dir, "widgets.yaml", strings.Replace(widgetsPlan, "body: {name: \"label-${row.value}\"}", "body: {name: \"label-${row.value}\", color: red}", 1))
	code, out, _ := cli(t, "plan", p, "--var", v)
	if code != ExitOK || !strings.Contains(out, "total: 6 tasks: 0 to create, 3 to update, 0 to retry, 3 done (skip)") {
		t.Fatalf("plan after edit: %d\n%s", code, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "update") && !strings.Contains(l, "label-") {
			t.Errorf("unexpected update: %s", l)
		}
	}
}

func TestCLI_BadInputExitsTwoWithPositions(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		plan string
		want string
	}{
		{name: "no command", args: []string{}, want: "Usage:"},
		{name: "unknown command", args: []string{"deploy"}, want: `unknown command "deploy"`},
		{name: "missing plan", args: []string{"apply"}, want: "want exactly one PLAN"},
		{name: "unknown flag", args: []string{"apply", "x.yaml", "--paralel", "3"}, want: "flag provided but not defined: -paralel"},
		{name: "bad parallel", args: []string{"apply", "PLAN", "--parallel", "0"}, plan: widgetsPlan, want: "--parallel 0: want at least 1"},
		{name: "bad shard", args: []string{"apply", "PLAN", "--shard", "4/4"}, plan: widgetsPlan, want: `--shard "4/4"`},
		{name: "bad log format", args: []string{"apply", "PLAN", "--log-format", "xml"}, plan: widgetsPlan, want: `--log-format "xml"`},
		{name: "missing plan file", args: []string{"validate", filepath.Join(dir, "nope.yaml")}, want: "nope.yaml"},
		{name: "unknown field", args: []string{"validate", "PLAN"}, plan: strings.Replace(widgetsPlan, "expect: [201]", "expect: [201]\n      expekt: 1", 1), want: `bad.yaml:18:7: unknown field "expekt"`},
		{name: "unknown endpoint", args: []string{"validate", "PLAN"}, plan: strings.Replace(widgetsPlan, "defaults: {endpoint: api}", "defaults: {endpoint: apj}", 1), want: `endpoint "apj": no such endpoint`},
		{name: "bad method", args: []string{"validate", "PLAN"}, plan: strings.Replace(widgetsPlan, "method: PUT", "method: PUTT", 1), want: `method: "PUTT"`},
		{name: "unknown --only", args: []string{"plan", "PLAN", "--only", "ghost-*"}, plan: widgetsPlan, want: `--only "ghost-*" matches no task`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
			args := append([]string(nil), tc.args...)
			if tc.plan != "" {
				p := writeFile(t, dir, "bad.yaml", tc.plan)
				for i, a := range args {
					if a == "PLAN" {
						args[i] = p
					}
				}
			}
			code, out, errs := cli(t, args...)
			if code != ExitBadInput {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitBadInput, out, errs)
			}
			if !strings.Contains(out+errs, tc.want) {
				t.Fatalf("output does not contain %q:\n%s\n%s", tc.want, out, errs)
			}
			if _, err := os.Stat(filepath.Join(dir, ".provision")); err == nil {
				t.Fatal("bad input created a state directory")
			}
		})
	}
}

func TestCLI_HelpForEveryCommand(t *testing.T) {
	for _, cmd := range []string{"validate", "plan", "apply", "status", "graph", "sandbox"} {
		t.Run(cmd, func(t *testing.T) {
			code, out, errs := cli(t, cmd, "--help")
			if code != ExitOK || !strings.Contains(out+errs, "Usage: provision "+cmd) {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
		})
	}
	code, out, _ := cli(t, "help", "sections")
	if code != ExitOK || !strings.Contains(out, "http:") || !strings.Contains(out, "milestones:") {
		t.Fatalf("help sections: %d\n%s", code, out)
	}
}

func TestCLI_StateProblemsAreClearAndLeaveFileUntouched(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	sp := writeFile(t, dir, "garbage.db", strings.Repeat("not a database ", 400))
	before := sha256.Sum256([]byte(strings.Repeat("not a database ", 400)))
	for _, cmd := range []string{"apply", "plan", "status"} {
		code, out, errs := cli(t, cmd, p, "--state", sp)
		if cmd == "status" {
			code, out, errs = cli(t, "status", "--state", sp)
		}
		if code != ExitBadInput || !strings.Contains(errs, "corrupt") {
			t.Fatalf("%s: exit %d\n%s%s", cmd, code, out, errs)
		}
	}
	raw, _ := os.ReadFile(sp)
	if sha256.Sum256(raw) != before {
		t.Fatal("corrupt state file was modified")
	}
}

func TestCLI_GraphIsDOT(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	p := writeFile(t, t.TempDir(), "widgets.yaml", widgetsPlan)
	code, out, errs := cli(t, "graph", p)
	if code != ExitOK {
		t.Fatalf("exit %d %s", code, errs)
	}
	if !strings.HasPrefix(out, `digraph "widgets"`) || !regexp.MustCompile(`"label-1" -> "widget-1";`).MatchString(out) {
		t.Fatalf("graph:\n%s", out)
	}
}

// TestCLI_PlanOutput_Golden pins the dry-run text and JSON for a plan with one task
// of every verb: done (skip), edited (update), failed (retry), in doubt (retry) and new.
func TestCLI_PlanOutput_Golden(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	dir := t.TempDir()
	p := writeFile(t, dir, "golden.yaml", goldenPlan)
	sp := filepath.Join(dir, "golden.db")
	seedGoldenState(t, p, sp)
	for _, tc := range []struct {
		name, golden string
		args         []string
	}{
		{"text", "plan.golden", []string{"plan", p, "--state", sp}},
		{"json", "plan.json.golden", []string{"plan", p, "--state", sp, "--json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := cli(t, tc.args...)
			if code != ExitOK {
				t.Fatalf("exit %d\n%s", code, errs)
			}
			out = strings.ReplaceAll(out, dir, "DIR")
			out = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(out, "TIME")
			golden := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if out != string(want) {
				t.Errorf("output differs from %s (run with -update after checking):\n%s", golden, out)
			}
		})
	}
}

const goldenPlan = `version: 1
name: golden
endpoints:
  api: {kind: http, url: "http://127.0.0.1:1"}
http:
  defaults: {endpoint: api, path: /v1/things, method: PUT}
  items:
    - {name: done-item, body: {n: 1}}
    - {name: edited-item, body: {n: 2}}
    - {name: failed-item, body: {n: 3}}
    - {name: in-doubt-item, body: {n: 4}}
    - {name: new-item, body: {n: 5}}
milestones:
  items:
    - {name: all, depends_on: ["*-item"]}
`

// TestCLI_PlanProbe_ReportsWhatExistsRemotely: with --probe, the dry run asks the
// APIs (read-only) whether each object to create exists already.
func TestCLI_PlanProbe_ReportsWhatExistsRemotely(t *testing.T) {
	for k, v := range demoEnv(t) {
		t.Setenv(k, v)
	}
	p := "../../examples/plans/edge.yaml"
	sb, err := sandbox.Start("127.0.0.1:0", sandbox.Options{}, sandboxExtensions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	pl, err := plan.Load(p, plan.LoadOptions{Sections: registry().Sections(), EndpointKinds: registry().EndpointKinds()})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Attach(pl); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(t.TempDir(), "first.db")
	seedState(t, p, first, demoEnv(t)[state.KeyEnv])
	if code, out, errs := cli(t, "apply", p, "--sandbox-url", sb.URL(), "--state", first, "--only", "retail-admin"); code != ExitOK {
		t.Fatalf("apply --only: %d\n%s%s", code, out, errs)
	}
	// A fresh state (as after losing the file): the probe finds what exists.
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	code, out, errs := cli(t, "plan", p, "--sandbox-url", sb.URL(), "--state", fresh, "--probe")
	if code != ExitOK {
		t.Fatalf("plan --probe: %d\n%s%s", code, out, errs)
	}
	var admin, app string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(l, " retail-admin "):
			admin = l
		case strings.Contains(l, " people-counter "):
			app = l
		}
	}
	if !strings.Contains(admin, "exists remotely") || !strings.Contains(app, "not found") {
		t.Fatalf("probe lines:\n%s\n%s\nfull output:\n%s", admin, app, out)
	}
	// What exists is adopted, not created, and counted apart.
	if !strings.HasPrefix(admin, "  adopt ") || !strings.HasPrefix(app, "  create ") || !strings.Contains(out, "; 1 to adopt (exist remotely, taken over)") || !strings.Contains(out, "adopt 1") {
		t.Fatalf("adopt not shown:\n%s", out)
	}
	code, out, _ = cli(t, "plan", p, "--sandbox-url", sb.URL(), "--state", fresh, "--probe", "--json")
	var dr dryRun
	if code != ExitOK || json.Unmarshal([]byte(out), &dr) != nil || dr.Totals.Adopt != 1 || dr.ByKind["edge_users"] == nil || dr.ByKind["edge_users"].Adopt != 1 {
		t.Fatalf("--probe --json: %d\n%s", code, out)
	}
	for _, d := range dr.Tasks {
		if (d.ID == "retail-admin") != (d.Verb == runner.Adopt) {
			t.Errorf("%s: %s", d.ID, d.Verb)
		}
	}
	if _, err := os.Stat(fresh); err == nil {
		t.Error("the dry run created a state file")
	}
}
