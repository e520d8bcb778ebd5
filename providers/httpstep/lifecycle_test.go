package httpstep

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/providers/httpstep/httpfake"
	"provision/providers/lifecycletest"
)

const lifeItems = `    - name: w1
      endpoint: api
      path: /v1/widgets
      body: {name: w1}
      expect: [201]
      outputs: {id: id}
      lookup: {path: /v1/widgets, query: {name: w1}, match: "items[0].id", outputs: {id: "items[0].id"}}
      delete: {path: "/v1/widgets/{id}"}
    - name: w2
      endpoint: api
      path: /v1/widgets
      body: {name: w2}
      outputs: {id: id}
`

// loseOnce applies the first request of method, then drops its answer.
type loseOnce struct {
	h      http.Handler
	method string
	mu     sync.Mutex
	done   bool
}

func (l *loseOnce) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	hit := !l.done && r.Method == l.method
	l.done = l.done || hit
	l.mu.Unlock()
	if !hit {
		l.h.ServeHTTP(w, r)
		return
	}
	l.h.ServeHTTP(httptest.NewRecorder(), r)
	panic(http.ErrAbortHandler)
}

func buildAll(t *testing.T, url, items string) (*providers.Build, map[string]*providers.Task, []*providers.Task) {
	t.Helper()
	text := "version: 1\nname: h\nendpoints:\n  api: {kind: http, url: \"" + url + "\"}\nhttp:\n  items:\n" + items
	p := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	pl, err := plan.Load(p, plan.LoadOptions{Sections: []string{Section}, EndpointKinds: []plan.EndpointKind{endpointKind}})
	if err != nil {
		t.Fatal(err)
	}
	b := &providers.Build{Plan: pl, Clients: &providers.Clients{}}
	byID := map[string]*providers.Task{}
	var all []*providers.Task
	for _, it := range pl.Items {
		ts, err := Kind{}.Build(b, it)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range ts {
			byID[task.ID] = task
			all = append(all, task)
		}
	}
	return b, byID, all
}

func names(s *httpfake.Server) []string {
	var out []string
	for _, o := range s.Objects() {
		out = append(out, o.Name)
	}
	return out
}

func TestLifecycle_ApplyThenDestroy_UsesTheDeclaredDelete(t *testing.T) {
	for _, lose := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "lost answer"}[lose], func(t *testing.T) {
			srv := httpfake.New(httpfake.Options{})
			lossy := &loseOnce{h: srv, method: http.MethodDelete, done: !lose}
			ts := httptest.NewServer(lossy)
			defer ts.Close()
			b, byID, tasks := buildAll(t, ts.URL, lifeItems)
			path := filepath.Join(t.TempDir(), "state.db")
			if res := lifecycletest.Apply(t, tasks, path, ""); !res.OK() {
				t.Fatalf("apply: %+v", res)
			}
			reg := providers.NewRegistry(Kinds()...)
			for _, planned := range []map[string]*providers.Task{byID, nil} { // the second: a repeated destroy without the plan
				ocs := lifecycletest.Destroy(t, path, lifecycletest.Options{Registry: reg, Build: b, Planned: planned})
				if f := lifecycletest.Failed(ocs); len(f) > 0 {
					t.Fatal(f)
				}
				if oc, _ := lifecycletest.Find(ocs, "w2"); !errors.Is(oc.Err, providers.ErrCannotDelete) || !strings.Contains(oc.Err.Error(), "declares no delete call") {
					t.Errorf("w2 (no delete call): %v", oc.Err)
				}
				if oc, _ := lifecycletest.Find(ocs, "w1"); planned != nil && (oc.Attempts > 1) != lose {
					t.Errorf("w1: %d attempts with a lost answer: %v", oc.Attempts, lose)
				}
				if got := names(srv); len(got) != 1 || got[0] != "w2" {
					t.Fatalf("objects after destroy: %v, want only w2 (it declares no delete)", got)
				}
			}
		})
	}
}

func TestLifecycle_Destroy_InDoubtUsesTheLookup(t *testing.T) {
	srv := httpfake.New(httpfake.Options{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	b, byID, _ := buildAll(t, ts.URL, lifeItems)
	if _, err := apply(byID["w1"], 1, false); err != nil {
		t.Fatal(err)
	}
	mk := func(inDoubt bool) *providers.Deletion {
		return &providers.Deletion{Planned: byID["w1"], Exec: &providers.Exec{Task: &providers.Task{ID: "w1", Kind: Section, Endpoint: "api"},
			Attempt: 2, InDoubt: inDoubt, Log: zerolog.Nop(), Redactor: plan.NewRedactor()}}
	}
	// No id recorded, never done, not in doubt: the create never happened, so the
	// object the lookup would find is not this task's.
	if err := (Kind{}).Delete(context.Background(), b, mk(false)); err != nil {
		t.Fatal(err)
	}
	if got := names(srv); len(got) != 1 {
		t.Fatalf("objects: %v", got)
	}
	if err := (Kind{}).Delete(context.Background(), b, mk(true)); err != nil {
		t.Fatal(err)
	}
	if got := names(srv); len(got) != 0 {
		t.Fatalf("objects after the in-doubt delete: %v", got)
	}
}

func TestLifecycle_Build_RejectsADeleteThatNamesNoOutput(t *testing.T) {
	text := "version: 1\nname: h\nendpoints:\n  api: {kind: http, url: \"http://127.0.0.1:1\"}\nhttp:\n  items:\n" +
		"    - {name: w1, endpoint: api, path: /v1/widgets, body: {name: w1}, outputs: {id: id}, delete: {path: \"/v1/widgets/{uuid}\"}}\n"
	p := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	pl, err := plan.Load(p, plan.LoadOptions{Sections: []string{Section}, EndpointKinds: []plan.EndpointKind{endpointKind}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Kind{}.Build(&providers.Build{Plan: pl, Clients: &providers.Clients{}}, pl.Items[0])
	if err == nil || !strings.Contains(err.Error(), "{uuid} names no output") || !strings.Contains(err.Error(), "p.yaml:7:") {
		t.Fatalf("err = %v", err)
	}
}

func TestLifecycle_Adoption_OnlyOnTheFirstLook(t *testing.T) {
	srv := httpfake.New(httpfake.Options{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	_, byID, _ := buildAll(t, ts.URL, lifeItems)
	task := byID["w1"]
	for _, c := range []struct {
		attempt int
		inDoubt bool
		adopted bool
	}{{1, false, false}, {1, false, true}, {2, true, false}} {
		x := &providers.Exec{Task: task, Attempt: c.attempt, InDoubt: c.inDoubt, Log: zerolog.Nop(), Redactor: plan.NewRedactor()}
		if _, err := task.Action.Apply(context.Background(), x); err != nil {
			t.Fatal(err)
		}
		if x.Adopted != c.adopted {
			t.Errorf("attempt %d in doubt %v: Adopted = %v, want %v", c.attempt, c.inDoubt, x.Adopted, c.adopted)
		}
	}
	if n := srv.Creates()["widgets/w1"]; n != 1 {
		t.Fatalf("created %d times", n)
	}
}

func TestLifecycle_Drift_ByTheLookup(t *testing.T) {
	srv := httpfake.New(httpfake.Options{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	_, _, tasks := buildAll(t, ts.URL, lifeItems)
	path := filepath.Join(t.TempDir(), "state.db")
	if res := lifecycletest.Apply(t, tasks, path, ""); !res.OK() {
		t.Fatalf("apply: %+v", res)
	}
	_, _, fresh := buildAll(t, ts.URL, lifeItems)
	diffs, errs := lifecycletest.Drift(t, path, "", fresh)
	if len(errs) != 0 || len(diffs["w1"]) != 0 || len(diffs["w2"]) != 0 {
		t.Fatalf("diffs %v errs %v", diffs, errs)
	}
	// Removed by hand.
	for _, o := range srv.Objects() {
		req, _ := http.NewRequest(http.MethodDelete, ts.URL+"/v1/widgets/"+o.ID, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	_, _, fresh = buildAll(t, ts.URL, lifeItems)
	diffs, _ = lifecycletest.Drift(t, path, "", fresh)
	if d := diffs["w1"]; len(d) != 1 || d[0].Field != "" || d[0].Got != "(missing)" {
		t.Errorf("w1: %+v, want missing", d)
	}
}

// The state keeps each task's spec (providers.SpecJSON): a secret in a header or
// the free-form body must be masked there.
func TestSpecJSON_MasksSecretHeadersAndBody(t *testing.T) {
	text := "version: 1\nname: h\nendpoints:\n  api: {kind: http, url: \"http://127.0.0.1:1\"}\nhttp:\n  items:\n" +
		"    - {name: w1, endpoint: api, path: /v1/widgets, headers: {X-Key: \"${env.K}\"}, body: {name: w1, pw: \"${env.K}\"}}\n"
	p := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	pl, err := plan.Load(p, plan.LoadOptions{Sections: []string{Section}, EndpointKinds: []plan.EndpointKind{endpointKind}, Getenv: func(string) (string, bool) { return "s3cr3t-canary", true }})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := Kind{}.Build(&providers.Build{Plan: pl, Clients: &providers.Clients{}}, pl.Items[0])
	if err != nil {
		t.Fatal(err)
	}
	j := string(providers.SpecJSON(ts[0].Spec, pl.Redactor))
	if strings.Contains(j, "s3cr3t-canary") || !strings.Contains(j, `"X-Key":"***"`) || !strings.Contains(j, `"pw":"***"`) || !strings.Contains(j, `"name":"w1"`) {
		t.Fatalf("spec as the state keeps it: %s", j)
	}
}
