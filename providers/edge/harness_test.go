package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/providers/edge/edgefake"
	"provision/providers/fault"
	"provision/state"

	"provision/providers/lifecycletest"
)

// Canary secrets: no error text may ever contain them.
const (
	adminPW    = "SysAdmin123canary"
	retailPW   = "Retail123canary"
	operatorPW = "Operator123canary"
	registryPW = "Registry123canary"
)

var secrets = map[string]string{
	"EDGE_ADMIN_PASSWORD":        adminPW,
	"EDGE_RETAIL_ADMIN_PASSWORD": retailPW,
	"EDGE_OPERATOR_PASSWORD":     operatorPW,
	"EDGE_REGISTRY_PASSWORD":     registryPW,
	// Values that break the platform's password rules (a plan gives them by reference).
	"EDGE_WEAK_PASSWORD": "weakpass",
	"EDGE_LONG_PASSWORD": "Abcdefghij1234567890x",
}

func sections() []string {
	var out []string
	for _, k := range Kinds() {
		out = append(out, k.Section())
	}
	return out
}

// call is one request the fake saw.
type call struct {
	Method, Path string
	Body         string
}

// world is a fake platform behind a real HTTP server, with a switch that loses the
// answers of chosen requests (applied, then the connection drops) and a log of the
// requests.
type world struct {
	t   *testing.T
	srv *edgefake.Server
	ts  *httptest.Server
	dir string

	lose atomic.Pointer[func(*http.Request) bool]
	// intercept, when set and returning true, has answered the request itself.
	intercept atomic.Pointer[func(http.ResponseWriter, *http.Request) bool]
	mu        sync.Mutex
	calls     []call

	b     *providers.Build
	plan  *plan.Plan
	tasks map[string]*providers.Task
	outs  map[string]state.Outputs
}

func newWorld(t *testing.T, o edgefake.Options) *world {
	t.Helper()
	if o.AdminPassword == "" {
		o.AdminPassword = adminPW
	}
	w := &world{t: t, srv: edgefake.New(o), dir: t.TempDir(), outs: map[string]state.Outputs{}}
	lost := fault.New(fault.Config{LostRate: 1}).Wrap(w.srv)
	w.ts = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		w.mu.Lock()
		w.calls = append(w.calls, call{Method: r.Method, Path: r.URL.Path, Body: string(body)})
		w.mu.Unlock()
		if f := w.intercept.Load(); f != nil && (*f)(rw, r) {
			return
		}
		if f := w.lose.Load(); f != nil && (*f)(r) {
			lost.ServeHTTP(rw, r)
			return
		}
		w.srv.ServeHTTP(rw, r)
	}))
	t.Cleanup(w.ts.Close)
	return w
}

// loseAnswers makes the fake apply, then drop the answer of, every request to
// method+path (nil: none).
func (w *world) loseAnswers(method, path string) {
	if method == "" {
		w.lose.Store(nil)
		return
	}
	f := func(r *http.Request) bool { return r.Method == method && r.URL.Path == path }
	w.lose.Store(&f)
}

// callsTo returns the requests made to method+path.
func (w *world) callsTo(method, path string) []call {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []call
	for _, c := range w.calls {
		if c.Method == method && c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// load parses a plan text with the test secrets and the fake's URL.
func (w *world) load(text string) (*plan.Plan, error) {
	p := filepath.Join(w.dir, "plan.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		w.t.Fatal(err)
	}
	// A kind edge does not talk to, with the same auth keys, for the wrong-kind checks.
	other := plan.EndpointKind{Name: "http", Auth: endpointKind.Auth}
	return plan.Load(p, plan.LoadOptions{Sections: sections(), EndpointKinds: []plan.EndpointKind{endpointKind, other}, Vars: map[string]string{"edge_url": w.ts.URL},
		Getenv: func(k string) (string, bool) { v, ok := secrets[k]; return v, ok }})
}

// tryBuild loads a plan and builds every item, returning all build errors joined.
func (w *world) tryBuild(text string) error {
	pl, err := w.load(text)
	if err != nil {
		return err
	}
	w.plan = pl
	w.b = &providers.Build{Plan: pl, Clients: &providers.Clients{}}
	w.tasks = map[string]*providers.Task{}
	kinds := map[string]providers.Kind{}
	for _, k := range Kinds() {
		kinds[k.Section()] = k
	}
	var errs []error
	for _, it := range pl.Items {
		ts, err := kinds[it.Section].Build(w.b, it)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range ts {
			w.tasks[t.ID] = t
		}
	}
	return errors.Join(errs...)
}

func (w *world) build(text string) {
	w.t.Helper()
	if err := w.tryBuild(text); err != nil {
		w.t.Fatal(err)
	}
}

// exec is the Exec the runner would pass; checkpoints go to saved.
func (w *world) exec(t *providers.Task, attempt int, inDoubt bool, prior state.Outputs, saved state.Outputs) *providers.Exec {
	if prior == nil {
		prior = state.Outputs{}
	}
	return &providers.Exec{Task: t, Attempt: attempt, InDoubt: inDoubt, Prior: prior, Log: zerolog.Nop(), Redactor: plan.NewRedactor(),
		CheckpointFunc: func(o state.Outputs) error {
			for k, v := range o {
				saved[k] = v
			}
			return nil
		},
		Lookup: func(r plan.Ref) (string, error) {
			o, ok := w.outs[r.Item]
			if !ok {
				return "", errors.New("no outputs of " + r.Item)
			}
			return o[r.Key].Value, nil
		},
	}
}

// apply runs one attempt of a task; on success its outputs are kept for references.
func (w *world) apply(id string, attempt int, inDoubt bool) (state.Outputs, state.Outputs, error) {
	w.t.Helper()
	return w.applyWith(id, attempt, inDoubt, nil)
}

// applyWith is apply with checkpointed outputs of earlier attempts.
func (w *world) applyWith(id string, attempt int, inDoubt bool, prior state.Outputs) (state.Outputs, state.Outputs, error) {
	w.t.Helper()
	t, ok := w.tasks[id]
	if !ok {
		w.t.Fatalf("no task %s", id)
	}
	if len(t.Refs) > 0 {
		x := w.exec(t, attempt, inDoubt, nil, state.Outputs{})
		if err := plan.ResolveRefs(t.Spec, x.Lookup); err != nil {
			return nil, nil, err
		}
	}
	saved := state.Outputs{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := t.Action.Apply(ctx, w.exec(t, attempt, inDoubt, prior, saved))
	if err == nil {
		w.outs[id] = out
	}
	w.noSecrets(err)
	return out, saved, err
}

// mustApply applies tasks in order, each in a first attempt.
func (w *world) mustApply(ids ...string) {
	w.t.Helper()
	for _, id := range ids {
		if _, _, err := w.apply(id, 1, false); err != nil {
			w.t.Fatalf("%s: %v", id, err)
		}
	}
}

func (w *world) noSecrets(err error) {
	w.t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			w.t.Fatalf("a secret leaked into an error: %v", err)
		}
	}
}

// noDuplicates fails when the fake holds two objects with one natural key.
func (w *world) noDuplicates() {
	w.t.Helper()
	if d := w.srv.Check(); len(d) > 0 {
		w.t.Fatalf("duplicates: %v", d)
	}
}

// session returns the shared token source of a user (as the tasks use it).
func (w *world) session(user string) *Session {
	w.t.Helper()
	v, err := stateOf(w.b).sessions.Get("edge/"+user, func() (*Session, error) { return nil, errors.New("no session") })
	if err != nil {
		w.t.Fatal(err)
	}
	return v
}

// conn acts on the fake as the system administrator, outside any task.
func (w *world) adminConn() *Conn {
	w.t.Helper()
	c, err := NewClient(&plan.Endpoint{Name: "direct", URL: w.ts.URL}, plan.NewRedactor())
	if err != nil {
		w.t.Fatal(err)
	}
	return c.As(c.NewSession("admin", plan.NewSecret(adminPW)))
}

// clock moves only when told.
type clock = lifecycletest.ManualClock

func newClock() *clock { return lifecycletest.NewManualClock(time.Now()) }

// testPlan is a small plan over every section: a general administrator, a sub-user,
// the business, labels, repository objects and an application.
const testPlan = `version: 1
name: edge-test
vars: {edge_url: "http://127.0.0.1:1"}
endpoints:
  edge: {kind: edge, url: "${var.edge_url}", auth: {username: admin, password: "${env.EDGE_ADMIN_PASSWORD}"}}
edge_users:
  defaults: {endpoint: edge}
  items:
    - name: retail-admin
      password: ${env.EDGE_RETAIL_ADMIN_PASSWORD}
      phone: "+31200000001"
      real_name: Retail Operations
      admin: true
    - name: retail-operator
      parent: retail-admin
      password: ${env.EDGE_OPERATOR_PASSWORD}
      phone: "+31200000002"
      real_name: Retail Operator
edge_businesses:
  items:
    - {name: retail, endpoint: edge, admin: retail-admin, introduce: Store analytics, objective: Counting, scale: small}
edge_cluster_labels:
  items:
    - {name: label-eu, endpoint: edge, label: retail-eu, clusters: [cluster-a, cluster-b]}
edge_node_labels:
  items:
    - {name: gw-a, endpoint: edge, label: camera-gateway, cluster: cluster-a, nodes: [edge-a1, edge-a2]}
edge_repo_users:
  items:
    - {name: ci-pusher, endpoint: edge, password: "${env.EDGE_OPERATOR_PASSWORD}"}
edge_repo_projects:
  items:
    - {name: retail-apps, endpoint: edge, public: false}
edge_registries:
  items:
    - {name: retail-registry, endpoint: edge, address: registry.example.com, user: puller, password: "${env.EDGE_REGISTRY_PASSWORD}"}
edge_apps:
  items:
    - name: people-counter
      endpoint: edge
      business: retail
      repository_id: retail-registry
      image: registry.example.com/retail/pc:1.4
      version: "1.4"
      deploy_type: daemonset
      ports: [8080]
      command: [/app/pc]
      args: [--zones, entrance]
      env: {LOG_LEVEL: info}
      description: counts visitors
`
