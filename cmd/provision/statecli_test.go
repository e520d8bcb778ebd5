package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"provision/providers/httpstep/httpfake"
	"provision/state"
)

// widgetsServer serves the widgets plan's API and counts the requests it gets.
func widgetsServer(t *testing.T) (url string, requests *atomic.Int64) {
	t.Helper()
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	var n atomic.Int64
	fake := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, &n
}

func sumFile(t *testing.T, path string) [32]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(raw)
}

// TestCLI_DamagedTaskIDInStateIsExit2AndFileUntouched: a flipped bit in a task id of
// the state file (a done task would look new and run twice) makes apply, plan and
// status stop with exit 2 and a message naming the file, before any remote call, and
// the file stays byte for byte as it was.
func TestCLI_DamagedTaskIDInStateIsExit2AndFileUntouched(t *testing.T) {
	url, requests := widgetsServer(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	sp := filepath.Join(dir, "w.db")
	if code, out, errs := cli(t, "apply", p, "--var", "api="+url, "--state", sp); code != ExitOK {
		t.Fatalf("apply: %d\n%s%s", code, out, errs)
	}
	raw, _ := os.ReadFile(sp)
	// "widget-1" -> "widget-0" (one bit): the keys stay in order.
	if !bytes.Contains(raw, []byte("widget-1")) {
		t.Fatal("no task id in the file")
	}
	os.WriteFile(sp, bytes.ReplaceAll(raw, []byte("widget-1"), []byte("widget-0")), 0o600)
	before := sumFile(t, sp)
	requests.Store(0)
	for _, args := range [][]string{
		{"apply", p, "--var", "api=" + url, "--state", sp},
		{"plan", p, "--var", "api=" + url, "--state", sp},
		{"status", "--state", sp},
	} {
		code, out, errs := cli(t, args...)
		if code != ExitBadInput || !strings.Contains(errs, sp) || !strings.Contains(errs, "corrupt") || !strings.Contains(errs, `"widget-0"`) {
			t.Errorf("%s: exit %d, want 2 and a message naming the file and the task\n%s%s", args[0], code, out, errs)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d remote requests with a damaged state", n)
	}
	if sumFile(t, sp) != before {
		t.Fatal("the damaged state file was modified")
	}
}

// TestCLI_WeakStateKeyIsRefused: a passphrase under 16 characters is exit 2 with how
// to make a proper key; no state file is made and nothing is sent.
func TestCLI_WeakStateKeyIsRefused(t *testing.T) {
	url, requests := widgetsServer(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	t.Setenv(state.KeyEnv, "short-key")
	for _, cmd := range []string{"apply", "plan"} {
		code, out, errs := cli(t, cmd, p, "--var", "api="+url)
		if code != ExitBadInput || !strings.Contains(errs, "head -c32 /dev/urandom | base64") || strings.Contains(out+errs, "short-key") {
			t.Errorf("%s: exit %d\n%s%s", cmd, code, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".provision", "widgets.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a state file was made: %v", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d remote requests", n)
	}
}

// TestCLI_StateWarnings: a state written with a key and opened without one, and a
// state directory others may write to, are warned about by apply, plan and status.
func TestCLI_StateWarnings(t *testing.T) {
	url, _ := widgetsServer(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	sdir := filepath.Join(dir, "states")
	os.Mkdir(sdir, 0o700)
	sp := filepath.Join(sdir, "w.db")
	t.Setenv(state.KeyEnv, "a long enough state passphrase")
	seedState(t, p, sp, "a long enough state passphrase")
	if code, out, errs := cli(t, "apply", p, "--var", "api="+url, "--state", sp); code != ExitOK || strings.Contains(errs, "warning") || strings.Contains(errs, "WRN") {
		t.Fatalf("apply with the key: %d\n%s%s", code, out, errs)
	}
	os.Unsetenv(state.KeyEnv)
	os.Chmod(sdir, 0o770)
	defer os.Chmod(sdir, 0o700)
	for _, args := range [][]string{
		{"apply", p, "--var", "api=" + url, "--state", sp},
		{"plan", p, "--var", "api=" + url, "--state", sp},
		{"status", "--state", sp},
	} {
		code, out, errs := cli(t, args...)
		all := out + errs
		if code != ExitOK || !strings.Contains(all, "may hold sealed secret outputs") || !strings.Contains(all, "state directory "+sdir+" is writable by group") {
			t.Errorf("%s: exit %d, want both warnings\n%s%s", args[0], code, out, errs)
		}
	}
}

// TestCLI_StateInMissingDirectoryIsRefused: --state in a directory that does not
// exist (a typo on a resume) is exit 2, nothing created, nothing sent; the default
// state directory next to the plan is still created.
func TestCLI_StateInMissingDirectoryIsRefused(t *testing.T) {
	url, requests := widgetsServer(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	missing := filepath.Join(dir, "no", "such", "dirs", "x.db")
	for _, cmd := range []string{"apply", "plan"} {
		code, out, errs := cli(t, cmd, p, "--var", "api="+url, "--state", missing)
		if code != ExitBadInput || !strings.Contains(errs, "--state "+missing) || !strings.Contains(errs, "does not exist") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%s: exit %d\n%s%s", cmd, code, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "no")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directories were created: %v", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d remote requests", n)
	}
	if code, out, errs := cli(t, "apply", p, "--var", "api="+url); code != ExitOK {
		t.Fatalf("default state path: %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, ".provision", "widgets.db")); err != nil {
		t.Fatal(err)
	}
}

// TestCLI_FlagErrorsNameTheFlagInOneLine: each flag mistake is one line naming the
// flag (or argument) and pointing at --help, without the usage text.
func TestCLI_FlagErrorsNameTheFlagInOneLine(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", p, "--paralel", "3"}, "flag provided but not defined: -paralel"},
		{[]string{"apply", p, "--parallel", "x"}, `invalid value "x" for flag -parallel`},
		{[]string{"apply", p, "--parallel", "0"}, "--parallel 0: want at least 1"},
		{[]string{"apply", p, "--max-attempts", "0"}, "--max-attempts 0"},
		{[]string{"apply", p, "--max-failures", "-1"}, "--max-failures -1"},
		{[]string{"apply", p, "--grace", "0s"}, "--grace 0s"},
		{[]string{"apply", p, "--backoff", "0s"}, "--backoff 0s"},
		{[]string{"apply", p, "--backoff", "2s", "--backoff-max", "1s"}, "--backoff-max 1s: want at least --backoff (2s)"},
		{[]string{"apply", p, "--progress-interval", "0s"}, "--progress-interval 0s"},
		{[]string{"apply", p, "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"apply", p, "--shard", "4/4"}, `--shard "4/4"`},
		{[]string{"apply", p, "--var", "novalue"}, `invalid value "novalue" for flag -var`},
		{[]string{"apply", p, "--sandbox", "--sandbox-url", "http://127.0.0.1:1"}, "--sandbox and --sandbox-url exclude each other"},
		{[]string{"apply"}, "want exactly one PLAN file, got 0"},
		{[]string{"plan", p, p}, "want exactly one PLAN file, got 2"},
		{[]string{"status", "--jsn"}, "flag provided but not defined: -jsn"},
		{[]string{"plan", p, "--state"}, "flag needs an argument: -state"}, // validate has no --state
		{[]string{"validate", p, "--state", "x.db"}, "flag provided but not defined: -state"},
	} {
		t.Run(strings.ReplaceAll(strings.Join(tc.args, " "), p, "PLAN"), func(t *testing.T) {
			code, out, errs := cli(t, tc.args...)
			line := strings.TrimSpace(errs)
			if code != ExitBadInput || out != "" || strings.Contains(line, "\n") || strings.Contains(line, "Usage") {
				t.Fatalf("exit %d, want 2 and one line\nstdout: %s\nstderr: %s", code, out, errs)
			}
			if !strings.Contains(line, tc.want) || !strings.HasSuffix(line, "see provision "+tc.args[0]+" --help") {
				t.Fatalf("stderr %q, want %q and a pointer to --help", line, tc.want)
			}
		})
	}
	// --help still prints the usage.
	if code, out, errs := cli(t, "apply", "--help"); code != ExitOK || !strings.Contains(out+errs, "Usage: provision apply") || !strings.Contains(out+errs, "-parallel") {
		t.Fatalf("--help: %d\n%s%s", code, out, errs)
	}
}
