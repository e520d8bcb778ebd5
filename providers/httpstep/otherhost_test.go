package httpstep

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/runner"
	"provision/state"
)

func loadHTTP(t *testing.T, api, items string) (*plan.Plan, []*providers.Task, error) {
	t.Helper()
	text := "version: 1\nname: h\nendpoints:\n  api: {kind: http, url: \"" + api + "\", auth: {type: bearer, token: \"${env.API_TOKEN}\"}}\nhttp:\n  items:\n" + items
	p := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(p, []byte(text), 0o600)
	pl, err := plan.Load(p, plan.LoadOptions{Sections: []string{Section}, EndpointKinds: []plan.EndpointKind{endpointKind}, Getenv: func(string) (string, bool) { return "bearer-canary-token-31", true }})
	if err != nil {
		t.Fatal(err)
	}
	b := &providers.Build{Plan: pl, Clients: &providers.Clients{}}
	var tasks []*providers.Task
	var errs []error
	for _, it := range pl.Items {
		ts, err := Kind{}.Build(b, it)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tasks = append(tasks, ts...)
	}
	if len(errs) > 0 {
		return pl, nil, errs[0]
	}
	return pl, tasks, nil
}

// A literal absolute path to another scheme, host or port is refused at validation,
// at the position of the path (the item's and its lookup's).
func TestHTTPStep_Build_RefusesLiteralPathToOtherHost(t *testing.T) {
	for _, item := range []string{
		"    - name: w\n      endpoint: api\n      path: http://evil.example/steal\n",
		"    - name: w\n      endpoint: api\n      path: https://api.example:8443/v1/x\n",
		"    - name: w\n      endpoint: api\n      path: /v1/w\n      lookup: {path: \"https://evil.example/v1/w\"}\n",
		"    - name: w\n      endpoint: api\n      path: /v1/w\n      outputs: {id: id}\n      delete: {path: \"https://evil.example/v1/w/{id}\"}\n",
	} {
		_, _, err := loadHTTP(t, "https://api.example", item)
		if err == nil || !strings.Contains(err.Error(), "p.yaml:") || !strings.Contains(err.Error(), "path:") || !strings.Contains(err.Error(), "another host") {
			t.Errorf("%s: err = %v", item, err)
		}
	}
	// The endpoint's own origin is fine, and so is a path.
	if _, _, err := loadHTTP(t, "https://api.example", "    - name: w\n      endpoint: api\n      path: https://api.example:443/v1/x\n"); err != nil {
		t.Errorf("same origin: %v", err)
	}
}

// A path that comes from another item's output (a server's answer) and points to
// another host fails the task at run time with a clear error; nothing is sent there,
// least of all the endpoint's Authorization.
func TestHTTPStep_Apply_RefusesReferencedPathToOtherHost(t *testing.T) {
	var stolen atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
	defer evil.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"next": "`+evil.URL+`/steal"}`)
	}))
	defer api.Close()
	_, tasks, err := loadHTTP(t, api.URL, "    - name: src\n      endpoint: api\n      method: GET\n      path: /v1/start\n      outputs: {next: next}\n"+
		"    - name: follow\n      endpoint: api\n      path: ${outputs.src.next}\n      body: {a: 1}\n")
	if err != nil {
		t.Fatal(err)
	}
	g, err := runner.NewGraph(tasks)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(filepath.Join(t.TempDir(), "s.db"), state.Options{PlanName: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := runner.Run(context.Background(), g, st, runner.Options{Log: zerolog.Nop(), Redactor: plan.NewRedactor(), MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 1 || len(res.Failures) != 1 || res.Failures[0].ID != "follow" || !strings.Contains(res.Failures[0].Error, "another host") || res.Failures[0].Attempts != 1 {
		t.Fatalf("res = %+v", res)
	}
	if stolen.Load() != 0 {
		t.Fatal("a request went to the other host")
	}
}
