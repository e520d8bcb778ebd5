package httpstep

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/providers/fault"
	"provision/providers/httpstep/httpfake"
	"provision/state"
)

func TestPath_Get(t *testing.T) {
	doc, _ := decodeJSON([]byte(`{"id": 12345678901234567, "data": {"token": "t", "items": [{"email": "a@x.io", "id": 3}, {"email": "b@x.io", "id": 4}]}, "ok": true}`))
	for _, tc := range []struct {
		path, want string
		found      bool
	}{
		{"id", "12345678901234567", true},
		{"data.token", "t", true},
		{"data.items[1].id", "4", true},
		{"data.items[email=a@x.io].id", "3", true},
		{"data.items[email=c@x.io].id", "", false},
		{"ok", "true", true},
		{"data.items[9]", "", false},
		{"missing.deep", "", false},
		{"", `{"data":{"items":[{"email":"a@x.io","id":3},{"email":"b@x.io","id":4}],"token":"t"},"id":12345678901234567,"ok":true}`, true},
	} {
		p, err := ParsePath(tc.path)
		if err != nil {
			t.Fatalf("%q: %v", tc.path, err)
		}
		v, ok := p.Get(doc)
		if ok != tc.found || (ok && Text(v) != tc.want) {
			t.Errorf("%q: got %q %v, want %q %v", tc.path, Text(v), ok, tc.want, tc.found)
		}
	}
	for _, bad := range []string{"a..b", "a[", "a[x]", "a[=1]", "a[-1]"} {
		if _, err := ParsePath(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func build(t *testing.T, url, item string) *providers.Task {
	t.Helper()
	text := "version: 1\nname: h\nendpoints:\n  api: {kind: http, url: \"" + url + "\"}\nhttp:\n  items:\n" + item
	p := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(p, []byte(text), 0o600)
	pl, err := plan.Load(p, plan.LoadOptions{Sections: []string{Section}, EndpointKinds: []plan.EndpointKind{endpointKind}})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := Kind{}.Build(&providers.Build{Plan: pl, Clients: &providers.Clients{}}, pl.Items[0])
	if err != nil {
		t.Fatal(err)
	}
	return ts[0]
}

func apply(task *providers.Task, attempt int, inDoubt bool) (state.Outputs, error) {
	x := &providers.Exec{Task: task, Attempt: attempt, InDoubt: inDoubt, Log: zerolog.Nop(), Redactor: plan.NewRedactor()}
	return task.Action.Apply(context.Background(), x)
}

const withLookup = `    - name: w1
      endpoint: api
      path: /v1/widgets
      body: {name: w1}
      expect: [201]
      outputs: {id: id}
      lookup: {path: /v1/widgets, query: {name: w1}, match: "items[0].id", outputs: {id: "items[0].id"}}
`

func TestHTTPStep_LookupMakesCreatesSafeToRepeat(t *testing.T) {
	srv := httpfake.New(httpfake.Options{Faults: fault.Config{LostRate: 1, OnlyMutating: true}})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	task := build(t, ts.URL, withLookup)
	_, err := apply(task, 1, false)
	if !providers.MaybeApplied(err) {
		t.Fatalf("lost answer: %v", err)
	}
	srv.Faults.Set(fault.Config{})
	out, err := apply(task, 2, true)
	if err != nil || out["id"].Value == "" {
		t.Fatalf("out %v err %v", out, err)
	}
	if c := srv.Creates()["widgets/w1"]; c != 1 {
		t.Fatalf("created %d times", c)
	}
}

func TestHTTPStep_InDoubtCreateWithoutLookupIsNotRepeated(t *testing.T) {
	srv := httpfake.New(httpfake.Options{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	task := build(t, ts.URL, "    - {name: w1, endpoint: api, path: /v1/widgets, body: {name: w1}}\n")
	_, err := apply(task, 2, true)
	if !errors.Is(err, providers.ErrInDoubt) {
		t.Fatalf("err = %v", err)
	}
	if len(srv.Creates()) != 0 {
		t.Fatal("an in-doubt create was repeated")
	}
}

func TestHTTPStep_MalformedAnswersAreClearErrors(t *testing.T) {
	for _, tc := range []struct{ name, ct, body, want string }{
		{"truncated JSON", "application/json", `{"id": "abc`, "answer is not JSON"},
		{"HTML page", "text/html", `<html><title>Gateway</title></html>`, "answer is not JSON"},
		{"wrong type", "application/json", `["not", "an", "object"]`, `path "id" not found`},
		{"missing field", "application/json", `{"other": 1}`, `path "id" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ct)
				w.WriteHeader(201)
				w.Write([]byte(tc.body))
			}))
			defer ts.Close()
			task := build(t, ts.URL, "    - {name: w1, endpoint: api, path: /v1/widgets, body: {name: w1}, outputs: {id: id}}\n")
			_, err := apply(task, 1, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if providers.IsRetryable(err) {
				t.Error("a malformed answer must not be retried blindly")
			}
		})
	}
}

func TestHTTPStep_ExistsStatusCountsAsDone(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(409)
		w.Write([]byte(`{"message":"already exists"}`))
	}))
	defer ts.Close()
	task := build(t, ts.URL, "    - {name: w1, endpoint: api, path: /v1/widgets, body: {name: w1}, exists_status: [409]}\n")
	if _, err := apply(task, 1, false); err != nil {
		t.Fatal(err)
	}
	task = build(t, ts.URL, "    - {name: w1, endpoint: api, path: /v1/widgets, body: {name: w1}}\n")
	if _, err := apply(task, 1, false); err == nil || !strings.Contains(err.Error(), "HTTP 409: already exists") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzPath(f *testing.F) {
	for _, s := range []string{"a.b[0].c", "items[email=a@b.c].id", "[1][2]", "$", "a[", "..."} {
		f.Add(s, []byte(`{"a":{"b":[{"c":1}]},"items":[{"email":"a@b.c","id":2}]}`))
	}
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		v, _ := decodeJSON(body)
		p.Get(v)
	})
}
