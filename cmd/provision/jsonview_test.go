package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"provision/providers/httpstep/httpfake"
)

// checkVocabulary walks a JSON document: snake_case keys (user data under spec,
// outputs and by_kind aside), no null, no zero timestamp, "failed" a count and
// "failures" a list wherever they appear, and schema_version at the top.
func checkVocabulary(t *testing.T, name, doc string) map[string]any {
	t.Helper()
	var top map[string]any
	if err := json.Unmarshal([]byte(doc), &top); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, doc)
	}
	if top["schema_version"] != float64(jsonSchemaVersion) {
		t.Errorf("%s: schema_version %v", name, top["schema_version"])
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case nil:
			t.Errorf("%s: null at %s", name, path)
		case string:
			if strings.HasPrefix(x, "0001-01-01") {
				t.Errorf("%s: zero timestamp at %s", name, path)
			}
		case []any:
			for i, e := range x {
				walk(path+"[]", e)
				_ = i
			}
		case map[string]any:
			for k, e := range x {
				if !snake.MatchString(k) {
					t.Errorf("%s: key %q at %s is not snake_case", name, k, path)
				}
				switch k {
				case "failed":
					if _, ok := e.(float64); !ok {
						t.Errorf("%s: %s.failed is not a count", name, path)
					}
				case "failures":
					if _, ok := e.([]any); !ok {
						t.Errorf("%s: %s.failures is not a list", name, path)
					}
				case "spec", "outputs", "by_kind":
					continue
				}
				walk(path+"."+k, e)
			}
		}
	}
	walk("", top)
	return top
}

func TestJSON_OneVocabularyAcrossCommands(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	v := "api=" + ts.URL
	events := filepath.Join(dir, "events.jsonl")
	docs := map[string][]string{
		"plan":         {"plan", p, "--var", v, "--json"},
		"apply":        {"apply", p, "--var", v, "--json", "--events", events},
		"status":       {"status", p, "--var", v, "--json"},
		"state list":   {"state", "list", p, "--var", v, "--json"},
		"state show":   {"state", "show", p, "--var", v, "widget-1", "--json"},
		"plan destroy": {"plan", p, "--var", v, "--destroy", "--json"},
		"destroy":      {"destroy", p, "--var", v, "--yes", "--json"},
	}
	for _, name := range []string{"plan", "apply", "status", "state list", "state show", "plan destroy", "destroy"} {
		code, out, errs := cli(t, docs[name]...)
		if code != ExitOK && !(name == "destroy" && code == ExitFailed) { // the labels have no delete call
			t.Fatalf("%s: exit %d\n%s%s", name, code, out, errs)
		}
		if strings.Contains(out, "cli-secret-canary-93") {
			t.Fatalf("%s: a secret in the JSON", name)
		}
		top := checkVocabulary(t, name, out)
		switch name {
		case "apply":
			if top["applied"] != 6.0 || top["elapsed_ms"] == nil || top["removed"] == nil {
				t.Errorf("apply: %s", out)
			}
		case "status":
			counts, _ := top["counts"].(map[string]any)
			if counts["done"] != 6.0 || top["failures"] == nil || top["in_doubt_tasks"] == nil {
				t.Errorf("status: %s", out)
			}
		case "destroy":
			if top["applied"] == nil || top["kept"] == nil {
				t.Errorf("destroy: %s", out)
			}
		}
	}
	// A status with a failure and a task in doubt: in_doubt, never "started".
	code, out, _ := cli(t, "status", "--state", filepath.Join(dir, "nope.db"), "--json")
	if code != ExitBadInput {
		t.Errorf("status of a missing --state file: exit %d %s", code, out)
	}
	// The events file: one JSON line per task event.
	f, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	per := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		e := checkVocabulary(t, "events", sc.Text())
		per[e["event"].(string)]++
		if e["task"] == "" || e["time"] == nil || e["plan"] != "widgets" {
			t.Errorf("event %s", sc.Text())
		}
		if strings.Contains(sc.Text(), "cli-secret-canary-93") {
			t.Fatal("a secret in the events file")
		}
	}
	if per["started"] != 6 || per["done"] != 6 {
		t.Fatalf("events %v, want 6 started and 6 done", per)
	}
}

// Retries, failures and skips reach the events file, each with its fields.
func TestCLI_ApplyEvents_RetryingFailedSkipped(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	var first503 atomic.Bool
	// Generic HTTP semantics of the plan's own "http" items (no vendor API): the
	// create of widget-2 is refused with 403 (permanent), widget-3's first create
	// answers 503 (retryable, not applied).
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && r.URL.Path == "/v1/widgets" {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			switch {
			case bytes.Contains(b, []byte(`"widget-2"`)):
				http.Error(w, `{"message":"not allowed"}`, http.StatusForbidden)
				return
			case bytes.Contains(b, []byte(`"widget-3"`)) && first503.CompareAndSwap(false, true):
				http.Error(w, `{"message":"busy"}`, http.StatusServiceUnavailable)
				return
			}
		}
		srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", widgetsPlan)
	events := filepath.Join(dir, "events.jsonl")
	code, out, errs := cli(t, "apply", p, "--var", "api="+ts.URL, "--events", events, "--backoff", "1ms", "--backoff-max", "2ms")
	if code != ExitFailed {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
	}
	b, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string][]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		e := checkVocabulary(t, "events", l)
		per[e["task"].(string)+" "+e["event"].(string)] = append(per[e["task"].(string)+" "+e["event"].(string)], e)
	}
	if r := per["widget-3 retrying"]; len(r) != 1 || r[0]["retry_in_ms"] == nil || r[0]["took_ms"] == nil || !strings.Contains(r[0]["error"].(string), "503") {
		t.Errorf("widget-3 retrying: %v", r)
	}
	if len(per["widget-3 done"]) != 1 || per["widget-3 done"][0]["attempt"] != 2.0 {
		t.Errorf("widget-3 done: %v", per["widget-3 done"])
	}
	if f := per["widget-2 failed"]; len(f) != 1 || !strings.Contains(f[0]["error"].(string), "403") {
		t.Errorf("widget-2 failed: %v", f)
	}
	if s := per["label-2 skipped"]; len(s) != 1 || s[0]["failed_dependency"] != "widget-2" {
		t.Errorf("label-2 skipped: %v", s)
	}
	// A rerun appends to the same file.
	cli(t, "apply", p, "--var", "api="+ts.URL, "--events", events)
	if b2, _ := os.ReadFile(events); !bytes.HasPrefix(b2, b) || len(b2) == len(b) {
		t.Error("the rerun did not append its events")
	}
	if code, _, errs := cli(t, "apply", p, "--var", "api="+ts.URL, "--events", filepath.Join(dir, "no", "such", "dir", "e.jsonl")); code != ExitBadInput || !strings.Contains(errs, "--events") {
		t.Fatalf("unwritable --events: exit %d %s", code, errs)
	}
}

// The examples of docs/json.md parse and follow the vocabulary they document.
func TestDocsJSON_ExamplesFollowTheVocabulary(t *testing.T) {
	b, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) < 8 {
		t.Fatalf("%d examples", len(blocks))
	}
	for i, m := range blocks {
		body := strings.TrimSpace(m[1])
		if strings.HasPrefix(body, `{"schema_version":2,"time"`) { // event lines
			for _, l := range strings.Split(body, "\n") {
				checkVocabulary(t, "events example", l)
			}
			continue
		}
		checkVocabulary(t, "example "+string(rune('1'+i)), body)
	}
}
