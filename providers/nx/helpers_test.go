package nx

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/providers/nx/nxfake"
	"provision/runner"
	"provision/state"
)

// Canary values: no error, log line or output may contain them.
const (
	account  = "ops@example.com"
	cloudPW  = "cloud-pw-canary-4411"
	serverPW = "ServerPw-canary-9902"
)

var secrets = map[string]string{"NX_CLOUD_PASSWORD": cloudPW, "NX_ADMIN_PASSWORD": serverPW}

// env is a fake world on one listener (cloud at /, servers under /servers/).
type env struct {
	t     *testing.T
	world *nxfake.World
	ts    *httptest.Server
	dir   string
	// clients is shared by every build of the env (like one process).
	clients *providers.Clients
}

func newEnv(t *testing.T, o nxfake.Options) *env {
	t.Helper()
	if o.Accounts == nil {
		o.Accounts = map[string]string{account: cloudPW}
	}
	if o.ServerAdminPassword == "" {
		o.ServerAdminPassword = serverPW
	}
	w := nxfake.New(o)
	e := &env{t: t, world: w, ts: httptest.NewServer(w), dir: t.TempDir(), clients: &providers.Clients{}}
	t.Cleanup(e.ts.Close)
	return e
}

func sectionNames() []string {
	var out []string
	for _, k := range Kinds() {
		out = append(out, k.Section())
	}
	return out
}

// load parses a plan text against the env's fake.
func (e *env) load(text string) (*plan.Plan, error) {
	p := filepath.Join(e.dir, "plan.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return plan.Load(p, plan.LoadOptions{Sections: sectionNames(), EndpointKinds: []plan.EndpointKind{endpointKind}, Vars: map[string]string{"cloud_url": e.ts.URL},
		Getenv: func(k string) (string, bool) { v, ok := secrets[k]; return v, ok }})
}

// tryBuild builds every item (a fresh client cache: one build per process).
func (e *env) tryBuild(text string) (map[string]*providers.Task, []*providers.Task, error) {
	pl, err := e.load(text)
	if err != nil {
		return nil, nil, err
	}
	b := &providers.Build{Plan: pl, Clients: &providers.Clients{},
		ServerURL: func(u string) string { return e.world.ServerURLFor(e.ts.URL, u) }, TLSOverride: &plan.TLS{}}
	byID := map[string]*providers.Task{}
	var all []*providers.Task
	var errs []string
	for _, it := range pl.Items {
		for _, k := range Kinds() {
			if k.Section() != it.Section {
				continue
			}
			ts, err := k.Build(b, it)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			for _, t := range ts {
				byID[t.ID] = t
				all = append(all, t)
			}
		}
	}
	if len(errs) > 0 {
		return nil, nil, errString(strings.Join(errs, "\n"))
	}
	return byID, all, nil
}

func (e *env) build(text string) map[string]*providers.Task {
	e.t.Helper()
	m, _, err := e.tryBuild(text)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

type errString string

func (e errString) Error() string { return string(e) }

// call is one Apply as the runner makes it.
type call struct {
	attempt int
	inDoubt bool
	changed bool
	prior   state.Outputs
	// outs are the outputs of other tasks (for Lookup).
	outs map[string]state.Outputs
}

// apply runs one Apply and returns its outputs and everything checkpointed (prior
// merged with checkpoints), like the state record after the call.
func apply(t *testing.T, task *providers.Task, c call) (state.Outputs, state.Outputs, error) {
	t.Helper()
	if c.attempt == 0 {
		c.attempt = 1
	}
	saved := state.Outputs{}
	prior := state.Outputs{}
	for k, v := range c.prior {
		saved[k] = v
		prior[k] = v
	}
	x := &providers.Exec{Task: task, Attempt: c.attempt, InDoubt: c.inDoubt, Changed: c.changed, Prior: prior, Log: zerolog.Nop(), Redactor: plan.NewRedactor(),
		CheckpointFunc: func(o state.Outputs) error {
			for k, v := range o {
				saved[k] = v
			}
			return nil
		},
		Lookup: func(r plan.Ref) (string, error) { return c.outs[r.Item][r.Key].Value, nil },
	}
	out, err := task.Action.Apply(context.Background(), x)
	for k, v := range out {
		saved[k] = v
	}
	if err != nil {
		for _, s := range []string{cloudPW, serverPW} {
			if strings.Contains(err.Error(), s) {
				t.Fatalf("secret in error: %v", err)
			}
		}
	}
	return out, saved, err
}

// runPlan runs a whole plan through the runner against the env.
func (e *env) runPlan(text, statePath, key string) *runner.Result {
	e.t.Helper()
	_, tasks, err := e.tryBuild(text)
	if err != nil {
		e.t.Fatal(err)
	}
	g, err := runner.NewGraph(tasks)
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := state.Open(statePath, state.Options{PlanName: "nx-test", Key: key, KDFIterations: state.MinKDFIterations})
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	res, err := runner.Run(context.Background(), g, st, runner.Options{Parallel: 8, MaxAttempts: 12, BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond, Log: zerolog.Nop(), Redactor: plan.NewRedactor()})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

const onePlan = `version: 1
name: nx-test
vars: {cloud_url: "http://127.0.0.1:1"}
endpoints:
  nxcloud: {kind: nx-cloud, url: "${var.cloud_url}", auth: {username: ops@example.com, password: "${env.NX_CLOUD_PASSWORD}"}}
nx_systems:
  items:
    - name: store-1
      cloud: nxcloud
      url: https://10.0.0.1:7001
      admin: {password: "${env.NX_ADMIN_PASSWORD}"}
      local_password: ${env.NX_ADMIN_PASSWORD}
      settings: {statisticsAllowed: false, autoDiscoveryEnabled: true}
      users:
        - {email: manager@example.com, role: advancedViewer}
        - {email: noc@example.com, role: viewer}
`

const server1 = "10.0.0.1:7001"

// noDamage asserts no duplicate, no orphan and store-1 bound to its server.
func noDamage(t *testing.T, w *nxfake.World, want map[string]string) {
	t.Helper()
	if dups, orphans, missing := w.Check(want); len(dups)+len(orphans)+len(missing) != 0 {
		t.Fatalf("duplicates %v, orphans %v, missing %v", dups, orphans, missing)
	}
}
