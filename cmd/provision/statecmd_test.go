package main

import (
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"provision/providers/httpstep/httpfake"
)

func TestCLI_StateCommands_ListShowForget(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	t.Setenv("PROVISION_STATE_KEY", "c3RhdGUta2V5LWZvci10ZXN0cy0zMi1ieXRlcy0hISE=")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	// The widgets' ids are also kept as a secret output, to see it masked.
	text := strings.Replace(lifecyclePlan("3"), "      outputs: {id: id}\n      lookup:", "      outputs: {id: id, key: {path: id, secret: true}}\n      lookup:", 1)
	text = strings.Replace(text, `outputs: {id: "items[0].id"}}`, `outputs: {id: "items[0].id", key: {path: "items[0].id", secret: true}}}`, 1)
	p := writeFile(t, dir, "widgets.yaml", text)
	v := "api=" + ts.URL
	sp := filepath.Join(dir, ".provision", "widgets.db")
	if code, out, errs := cli(t, "state", "list", p, "--var", v); code != ExitBadInput || !strings.Contains(errs, "no run yet") {
		t.Fatalf("state list before any run: code %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := cli(t, "apply", p, "--var", v); code != ExitOK {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errs)
	}
	code, out, errs := cli(t, "state", "list", p, "--var", v)
	if code != ExitOK || strings.Count(out, " done ") != 6 || !strings.Contains(out, "6 of 6 tasks") {
		t.Fatalf("state list: code %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = cli(t, "state", "list", "--state", sp, "widget-*", "--status", "done", "--json")
	var list struct {
		SchemaVersion int        `json:"schema_version"`
		Tasks         []taskView `json:"tasks"`
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &list) != nil || list.SchemaVersion != jsonSchemaVersion || len(list.Tasks) != 3 || list.Tasks[0].ID != "widget-1" || list.Tasks[0].Kind != "http" {
		t.Fatalf("state list --json widget-*: code %d\n%s", code, out)
	}
	if code, _, errs = cli(t, "state", "list", "--state", sp, "--status", "bogus"); code != ExitBadInput || !strings.Contains(errs, "--status") {
		t.Errorf("bad --status: code %d\n%s", code, errs)
	}
	id := ""
	for _, o := range srv.Objects() {
		if o.Name == "widget-2" {
			id = o.ID
		}
	}
	code, out, errs = cli(t, "state", "show", p, "--var", v, "widget-2")
	if code != ExitOK || !strings.Contains(out, "status     done") || !strings.Contains(out, "id                   "+id) || !strings.Contains(out, "key                  ***") || !strings.Contains(out, "object     created") {
		t.Fatalf("state show: code %d\n%s\n%s", code, out, errs)
	}
	if strings.Count(out, id) != 1 {
		t.Errorf("the secret output's value shows in state show:\n%s", out)
	}
	code, out, _ = cli(t, "state", "show", "--state", sp, "widget-2", "--json")
	var show taskView
	if code != ExitOK || json.Unmarshal([]byte(out), &show) != nil || show.Outputs["key"] != "***" || show.Outputs["id"] != id || show.Status != "done" {
		t.Fatalf("state show --json: code %d\n%s", code, out)
	}
	if code, _, errs = cli(t, "state", "show", "--state", sp, "nope"); code != ExitBadInput || !strings.Contains(errs, `no task "nope"`) {
		t.Errorf("show of an unknown task: code %d\n%s", code, errs)
	}
	if code, _, errs = cli(t, "state", "forget", "--state", sp, "widget-2", "nope"); code != ExitBadInput || !strings.Contains(errs, "nothing was changed") {
		t.Errorf("forget with an unknown task: code %d\n%s", code, errs)
	}
	code, out, errs = cli(t, "state", "forget", p, "--var", v, "widget-2")
	if code != ExitOK || !strings.Contains(out, "forgot widget-2") {
		t.Fatalf("state forget: code %d\n%s\n%s", code, out, errs)
	}
	if code, out, _ = cli(t, "plan", p, "--var", v); code != ExitOK || !strings.Contains(out, "retry   widget-2") || !strings.Contains(out, "in doubt") {
		t.Fatalf("plan after forget: code %d\n%s", code, out)
	}
	if code, out, errs = cli(t, "apply", p, "--var", v); code != ExitOK || !strings.Contains(out, "applied      1") {
		t.Fatalf("apply after forget: code %d\n%s\n%s", code, out, errs)
	}
	for name, n := range srv.Creates() {
		if n != 1 {
			t.Errorf("%s created %d times: forget must look the object up, not create it again", name, n)
		}
	}
	if code, out, _ = cli(t, "state", "show", "--state", sp, "widget-2", "--json"); code != ExitOK || json.Unmarshal([]byte(out), &show) != nil || show.Outputs["id"] != id {
		t.Fatalf("after the reconciling apply, widget-2 has id %q, want %q\n%s", show.Outputs["id"], id, out)
	}
}
