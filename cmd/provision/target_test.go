package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"provision/providers/httpstep/httpfake"
)

// The story of a new user: a rehearsal on the sandbox, then the real run. The real
// run must do the real work, never trust the rehearsal's records.
func TestCLI_SandboxRehearsalThenRealRun_KeptApart(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)

	code, out, errs := cli(t, "apply", "--sandbox", p)
	if code != ExitOK || !strings.Contains(out, "applied      6") {
		t.Fatalf("sandbox rehearsal: code %d\n%s\n%s", code, out, errs)
	}
	sandboxState := filepath.Join(dir, ".provision", "widgets.sandbox.db")
	if !strings.Contains(out, sandboxState) {
		t.Errorf("the rehearsal should report its own state file %s:\n%s", sandboxState, out)
	}
	realState := filepath.Join(dir, ".provision", "widgets.db")
	if _, err := os.Stat(realState); err == nil {
		t.Fatalf("the rehearsal wrote the real run's state file %s", realState)
	}

	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	v := "api=" + ts.URL
	code, out, errs = cli(t, "plan", p, "--var", v)
	if code != ExitOK || !strings.Contains(out, "6 to create") {
		t.Fatalf("real plan after the rehearsal: code %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = cli(t, "apply", p, "--var", v)
	if code != ExitOK || !strings.Contains(out, "applied      6") {
		t.Fatalf("real run after the rehearsal: code %d\n%s\n%s", code, out, errs)
	}
	if n := len(srv.Objects()); n != 6 {
		t.Errorf("real server holds %d objects, want 6 (3 widgets, 3 labels)", n)
	}

	// Pointing the real run at the rehearsal's file is refused, naming both sides.
	before := len(srv.Objects())
	sum := fileSHA(t, sandboxState)
	code, out, errs = cli(t, "apply", p, "--var", v, "--state", sandboxState)
	if code != ExitBadInput {
		t.Fatalf("real run on the sandbox state: code %d, want %d\n%s\n%s", code, ExitBadInput, out, errs)
	}
	for _, want := range []string{"sandbox (in-process fakes) standing in for http", "http " + ts.URL, "--state", "--retarget"} {
		if !strings.Contains(errs, want) {
			t.Errorf("refusal should mention %q:\n%s", want, errs)
		}
	}
	if fileSHA(t, sandboxState) != sum || len(srv.Objects()) != before {
		t.Error("a refused run changed the state file or the server")
	}
	code, _, errs = cli(t, "plan", p, "--var", v, "--state", sandboxState)
	if code != ExitBadInput || !strings.Contains(errs, "written against other endpoints") {
		t.Errorf("plan on the sandbox state: code %d\n%s", code, errs)
	}

	// The same systems under a new address: refused, then accepted with --retarget.
	ts2 := httptest.NewServer(srv)
	defer ts2.Close()
	v2 := "api=" + ts2.URL
	if code, _, errs = cli(t, "apply", p, "--var", v2); code != ExitBadInput {
		t.Fatalf("real run against a new URL: code %d, want %d\n%s", code, ExitBadInput, errs)
	}
	code, out, errs = cli(t, "apply", p, "--var", v2, "--retarget")
	if code != ExitOK || !strings.Contains(out, "up to date   6") {
		t.Fatalf("--retarget: code %d\n%s\n%s", code, out, errs)
	}
	if code, _, errs = cli(t, "apply", p, "--var", v2); code != ExitOK {
		t.Fatalf("after --retarget: code %d\n%s", code, errs)
	}
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCLI_StatusWarnsOfOtherTarget(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	if code, out, errs := cli(t, "apply", "--sandbox", p); code != ExitOK {
		t.Fatalf("sandbox rehearsal: code %d\n%s\n%s", code, out, errs)
	}
	sandboxState := filepath.Join(dir, ".provision", "widgets.sandbox.db")
	code, out, errs := cli(t, "status", p, "--var", "api=https://api.example.com", "--state", sandboxState)
	if code != ExitOK || !strings.Contains(out, "warning: "+sandboxState+": endpoint api: state written against sandbox") || !strings.Contains(out, "http https://api.example.com") {
		t.Fatalf("status should warn that the state was written against the sandbox: code %d\n%s\n%s", code, out, errs)
	}
}
