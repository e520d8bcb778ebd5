package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"provision/providers/httpstep/httpfake"
	"provision/state"
)

// lifecyclePlan: N widgets and a label per widget; both know how to delete.
func lifecyclePlan(n string) string {
	return `version: 1
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
      foreach: {range: {from: 1, to: ` + n + `}}
      path: /v1/widgets
      body: {name: "widget-${row.value}"}
      expect: [201]
      outputs: {id: id}
      lookup: {path: /v1/widgets, query: {name: "widget-${row.value}"}, match: "items[0].id", outputs: {id: "items[0].id"}}
      delete: {path: "/v1/widgets/{id}"}
    - name: label-${row.value}
      foreach: {range: {from: 1, to: ` + n + `}}
      method: PUT
      path: /v1/labels/${outputs.widget-${row.value}.id}
      body: {name: "label-${row.value}"}
      outputs: {id: id}
      delete: {path: "/v1/labels/{id}"}
`
}

// deleteLog wraps a fake and records the paths of DELETE requests, in order.
type deleteLog struct {
	h    http.Handler
	mu   sync.Mutex
	dels []string
}

func (d *deleteLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete {
		d.mu.Lock()
		d.dels = append(d.dels, r.URL.Path)
		d.mu.Unlock()
	}
	d.h.ServeHTTP(w, r)
}

func (d *deleteLog) paths() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dels...)
}

func objectNames(srv *httpfake.Server) map[string]bool {
	out := map[string]bool{}
	for _, o := range srv.Objects() {
		out[o.Collection+"/"+o.Name] = true
	}
	return out
}

func recordIDs(t *testing.T, path string) map[string]*state.Record {
	t.Helper()
	st, err := state.Open(path, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestCLI_RemovedItems_PlanApplyPruneStatus(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	dl := &deleteLog{h: srv}
	ts := httptest.NewServer(dl)
	defer ts.Close()
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", lifecyclePlan("3"))
	v := "api=" + ts.URL
	sp := filepath.Join(dir, ".provision", "widgets.db")
	if code, out, errs := cli(t, "apply", p, "--var", v); code != ExitOK {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errs)
	}
	// The third store leaves the plan.
	writeFile(t, dir, "widgets.yaml", lifecyclePlan("2"))
	code, out, errs := cli(t, "plan", p, "--var", v)
	if code != ExitOK || !strings.Contains(out, "remove  label-3") || !strings.Contains(out, "remove  widget-3") || !strings.Contains(out, "2 to remove") {
		t.Fatalf("plan should list the removed tasks: code %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = cli(t, "plan", p, "--var", v, "--json")
	var dr dryRun
	if code != ExitOK || json.Unmarshal([]byte(out), &dr) != nil || dr.Totals.Remove != 2 {
		t.Fatalf("plan --json: code %d totals %+v\n%s\n%s", code, dr.Totals, out, errs)
	}
	code, out, errs = cli(t, "apply", p, "--var", v)
	if code != ExitOK || !strings.Contains(out, "removed      2 no longer in the plan, left alone") || !strings.Contains(errs, "removed from the plan") {
		t.Fatalf("apply without --prune should say it leaves them: code %d\n%s\n%s", code, out, errs)
	}
	if names := objectNames(srv); !names["widgets/widget-3"] || !names["labels/label-3"] || len(dl.paths()) != 0 {
		t.Fatalf("apply without --prune deleted something: %v %v", names, dl.paths())
	}
	code, out, _ = cli(t, "status", p, "--var", v)
	if code != ExitOK || !strings.Contains(out, "label-3") || !strings.Contains(out, "widget-3") || !strings.Contains(out, "no longer in the plan") {
		t.Fatalf("status should name the removed tasks: code %d\n%s", code, out)
	}
	code, out, errs = cli(t, "apply", p, "--var", v, "--prune")
	if code != ExitOK || !strings.Contains(out, "deleted      2") {
		t.Fatalf("apply --prune: code %d\n%s\n%s", code, out, errs)
	}
	if got := dl.paths(); len(got) != 2 || !strings.HasPrefix(got[0], "/v1/labels/") || !strings.HasPrefix(got[1], "/v1/widgets/") {
		t.Fatalf("deletes %v: want the label before the widget it depends on", got)
	}
	names := objectNames(srv)
	if names["widgets/widget-3"] || names["labels/label-3"] || len(names) != 4 {
		t.Fatalf("after prune the server holds %v, want widgets and labels 1-2", names)
	}
	recs := recordIDs(t, sp)
	if recs["widget-3"] != nil || recs["label-3"] != nil || len(recs) != 4 {
		t.Fatalf("after prune the state holds %d records (%v), want 4", len(recs), recs)
	}
	code, out, _ = cli(t, "plan", p, "--var", v)
	if code != ExitOK || strings.Contains(out, "remove") {
		t.Fatalf("plan after prune: code %d\n%s", code, out)
	}
}

func TestCLI_Destroy_PartThenAll(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	dl := &deleteLog{h: srv}
	ts := httptest.NewServer(dl)
	defer ts.Close()
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", lifecyclePlan("3"))
	v := "api=" + ts.URL
	sp := filepath.Join(dir, ".provision", "widgets.db")
	if code, out, errs := cli(t, "destroy", p, "--var", v, "--yes"); code != ExitBadInput || !strings.Contains(errs, "no state") {
		t.Fatalf("destroy before any apply: code %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := cli(t, "apply", p, "--var", v); code != ExitOK {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errs)
	}
	code, out, errs := cli(t, "destroy", p, "--var", v, "--dry-run")
	if code != ExitOK || strings.Count(out, "delete  ") != 6 || !strings.Contains(out, "6 to delete, 0 kept") {
		t.Fatalf("destroy --dry-run: code %d\n%s\n%s", code, out, errs)
	}
	if code2, out2, _ := cli(t, "plan", p, "--var", v, "--destroy"); code2 != ExitOK || out2 != out {
		t.Errorf("plan --destroy differs from destroy --dry-run:\n%s\n---\n%s", out2, out)
	}
	// No terminal to confirm on: refused without --yes, nothing deleted.
	code, _, errs = cli(t, "destroy", p, "--var", v)
	if code != ExitBadInput || !strings.Contains(errs, "--yes") || len(dl.paths()) != 0 {
		t.Fatalf("destroy without --yes: code %d, deletes %v\n%s", code, dl.paths(), errs)
	}
	// Part of it: a widget and what depends on it (its label).
	code, out, errs = cli(t, "destroy", p, "--var", v, "--yes", "--only", "widget-1")
	if code != ExitOK || !strings.Contains(out, "deleted      2") {
		t.Fatalf("destroy --only widget-1: code %d\n%s\n%s", code, out, errs)
	}
	names := objectNames(srv)
	if names["widgets/widget-1"] || names["labels/label-1"] || len(names) != 4 {
		t.Fatalf("after destroying widget-1 the server holds %v", names)
	}
	if got := dl.paths(); len(got) != 2 || !strings.HasPrefix(got[0], "/v1/labels/") {
		t.Fatalf("deletes %v: want the label first", got)
	}
	// The plan now says widget-1 and label-1 are to be created again.
	if code, out, _ := cli(t, "plan", p, "--var", v); code != ExitOK || !strings.Contains(out, "2 to create") {
		t.Fatalf("plan after a partial destroy: code %d\n%s", code, out)
	}
	code, out, errs = cli(t, "destroy", p, "--var", v, "--yes")
	if code != ExitOK || !strings.Contains(out, "deleted      4") {
		t.Fatalf("destroy: code %d\n%s\n%s", code, out, errs)
	}
	if n := len(srv.Objects()); n != 0 {
		t.Fatalf("after destroy the server holds %d objects, want none", n)
	}
	if recs := recordIDs(t, sp); len(recs) != 0 {
		t.Fatalf("after destroy the state holds %d records", len(recs))
	}
	if code, out, errs = cli(t, "destroy", p, "--var", v, "--yes"); code != ExitOK || !strings.Contains(out, "deleted      0") {
		t.Fatalf("destroy again: code %d\n%s\n%s", code, out, errs)
	}
}

func TestCLI_Destroy_LeavesAdoptedObjects(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", lifecyclePlan("2"))
	v := "api=" + ts.URL
	// widget-2 exists before the rollout: the apply adopts it.
	if code, out, errs := cli(t, "apply", p, "--var", v, "--only", "widget-2"); code != ExitOK {
		t.Fatalf("seed: code %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := cli(t, "destroy", p, "--var", v, "--yes", "--only", "widget-2", "--include-adopted"); code != ExitOK {
		t.Fatalf("unseed: code %d\n%s\n%s", code, out, errs)
	}
	// Now seed it outside this state, then apply: found on the first attempt.
	seed := filepath.Join(dir, "seed.db")
	if code, out, errs := cli(t, "apply", p, "--var", v, "--only", "widget-2", "--state", seed); code != ExitOK {
		t.Fatalf("seed outside: code %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := cli(t, "apply", p, "--var", v); code != ExitOK {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errs)
	}
	code, out, errs := cli(t, "destroy", p, "--var", v, "--dry-run")
	if code != ExitOK || !strings.Contains(out, "keep    widget-2") || !strings.Contains(out, "adopted") || !strings.Contains(out, "3 to delete, 1 kept") {
		t.Fatalf("dry run should keep the adopted widget: code %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = cli(t, "destroy", p, "--var", v, "--yes")
	if code != ExitOK || !strings.Contains(out, "deleted      3") || !strings.Contains(out, "widget-2: adopted") {
		t.Fatalf("destroy: code %d\n%s\n%s", code, out, errs)
	}
	if names := objectNames(srv); len(names) != 1 || !names["widgets/widget-2"] {
		t.Fatalf("after destroy the server holds %v, want only the adopted widget-2", names)
	}
}
