package nx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
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
	"provision/providers/sandbox"
	"provision/state"
)

const (
	account  = "ops@example.com"
	cloudPW  = "cloud-pw-canary-4411"
	serverPW = "server-pw-canary-9902"
)

type env struct {
	t     *testing.T
	world *nxfake.World
	cloud *httptest.Server
	farm  *httptest.Server
	dir   string
}

func newEnv(t *testing.T, o nxfake.Options) *env {
	t.Helper()
	o.Accounts = map[string]string{account: cloudPW}
	if o.ServerAdminPassword == "" {
		o.ServerAdminPassword = serverPW
	}
	w := nxfake.New(o)
	e := &env{t: t, world: w, cloud: httptest.NewServer(w.Cloud()), farm: httptest.NewServer(w.Farm()), dir: t.TempDir()}
	t.Cleanup(func() { e.cloud.Close(); e.farm.Close() })
	return e
}

// build loads a plan text against the fakes and builds its tasks.
func (e *env) build(planText string) map[string]*providers.Task {
	e.t.Helper()
	tasks, err := e.tryBuild(planText)
	if err != nil {
		e.t.Fatal(err)
	}
	return tasks
}

func (e *env) tryBuild(planText string) (map[string]*providers.Task, error) {
	p := filepath.Join(e.dir, "plan.yaml")
	if err := os.WriteFile(p, []byte(planText), 0o600); err != nil {
		e.t.Fatal(err)
	}
	pl, err := plan.Load(p, plan.LoadOptions{Sections: []string{SystemsSection, SharesSection}, Vars: map[string]string{"cloud": e.cloud.URL},
		Getenv: func(k string) (string, bool) {
			return map[string]string{"NX_CLOUD_PASSWORD": cloudPW, "NX_ADMIN_PASSWORD": serverPW}[k], true
		}})
	if err != nil {
		return nil, err
	}
	b := &providers.Build{Plan: pl, Clients: &providers.Clients{}}
	farm := e.farm.URL
	b.ServerURL = func(u string) string {
		full := sandbox.ServerURL("http://x")(u)
		return farm + strings.TrimPrefix(full, "http://x/nx-servers")
	}
	b.TLSOverride = &plan.TLS{}
	out := map[string]*providers.Task{}
	var errs []string
	for _, it := range pl.Items {
		var k providers.Kind = SystemKind{}
		if it.Section == SharesSection {
			k = ShareKind{}
		}
		ts, err := k.Build(b, it)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, t := range ts {
			out[t.ID] = t
		}
	}
	if len(errs) > 0 {
		return nil, errString(strings.Join(errs, "\n"))
	}
	return out, nil
}

type errString string

func (e errString) Error() string { return string(e) }

// run applies one task like the runner does: outputs of dependencies come from outs.
func run(t *testing.T, task *providers.Task, attempt int, inDoubt bool, prior state.Outputs, outs map[string]state.Outputs) (state.Outputs, state.Outputs, error) {
	t.Helper()
	saved := state.Outputs{}
	for k, v := range prior {
		saved[k] = v
	}
	x := &providers.Exec{Task: task, Attempt: attempt, InDoubt: inDoubt, Prior: prior, Log: zerolog.Nop(), Redactor: plan.NewRedactor(),
		CheckpointFunc: func(o state.Outputs) error {
			for k, v := range o {
				saved[k] = v
			}
			return nil
		},
		Lookup: func(r plan.Ref) (string, error) { return outs[r.Item][r.Key].Value, nil },
	}
	o, err := task.Action.Apply(context.Background(), x)
	return o, saved, err
}

const onePlan = `version: 1
name: nx-test
vars: {cloud: "http://127.0.0.1:1"}
endpoints:
  nxcloud: {kind: nx-cloud, url: "${var.cloud}", auth: {username: ops@example.com, password: "${env.NX_CLOUD_PASSWORD}"}}
nx_systems:
  items:
    - name: store-1
      cloud: nxcloud
      url: https://10.0.0.1:7001
      admin: {password: admin}
      local_password: ${env.NX_ADMIN_PASSWORD}
      settings: {statisticsAllowed: false}
      users:
        - {email: manager@example.com, role: advancedViewer}
        - {email: noc@example.com, role: viewer}
`

func TestSystem_Apply_NewServerSetupAndShares(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	out, _, err := run(t, tasks["store-1"], 1, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out["cloud_system_id"].Value == "" || !out["auth_key"].Secret || out["mode_used"].Value != "new" {
		t.Fatalf("outputs %+v", out)
	}
	outs := map[string]state.Outputs{"store-1": out}
	for _, id := range []string{"store-1/share/manager@example.com", "store-1/share/noc@example.com"} {
		if _, _, err := run(t, tasks[id], 1, false, nil, outs); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	snap := e.world.Snapshot()
	if dups, orphans, missing := e.world.Check(map[string]string{"store-1": "10.0.0.1:7001"}); len(dups)+len(orphans)+len(missing) != 0 {
		t.Fatalf("dups %v orphans %v missing %v", dups, orphans, missing)
	}
	if snap.Counters.Binds != 1 || snap.Counters.Setups != 1 || len(snap.Shares[out["cloud_system_id"].Value]) != 2 {
		t.Fatalf("counters %+v shares %v", snap.Counters, snap.Shares)
	}
	// A rerun of everything is a no-op: no bind, no setup, no share change.
	if _, _, err := run(t, tasks["store-1"], 2, false, out, nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"store-1/share/manager@example.com"} {
		if _, _, err := run(t, tasks[id], 2, false, nil, outs); err != nil {
			t.Fatal(err)
		}
	}
	after := e.world.Snapshot().Counters
	if after.Binds != 1 || after.Setups != 1 || after.SharesUpdated != 0 || after.SharesCreated != 2 {
		t.Errorf("rerun changed something: %+v", after)
	}
}

func TestSystem_Apply_ExistingServerGetsCloudBind(t *testing.T) {
	e := newEnv(t, nxfake.Options{PreSetUp: []string{"10.0.0.1:7001"}})
	tasks := e.build(strings.Replace(onePlan, "admin: {password: admin}", "admin: {password: \"${env.NX_ADMIN_PASSWORD}\"}", 1))
	out, _, err := run(t, tasks["store-1"], 1, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out["mode_used"].Value != "existing" || e.world.Snapshot().Counters.CloudBinds != 1 {
		t.Fatalf("outputs %+v counters %+v", out, e.world.Snapshot().Counters)
	}
}

func TestSystem_Apply_ReconcilesLostBindAnswerWithoutOrphans(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	// An earlier attempt's bind reached the cloud but its answer was lost.
	cloud, err := NewCloud(&plan.Endpoint{Name: "c", URL: e.cloud.URL, Auth: plan.Auth{Username: account, Password: plan.NewSecret(cloudPW)}}, plan.NewRedactor())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloud.Bind(context.Background(), "store-1", "default", ""); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, tasks["store-1"], 2, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dups, orphans, missing := e.world.Check(map[string]string{"store-1": "10.0.0.1:7001"})
	if len(dups)+len(orphans)+len(missing) != 0 {
		t.Fatalf("dups %v orphans %v missing %v", dups, orphans, missing)
	}
	if out["cloud_system_id"].Value == "" {
		t.Fatal("no id")
	}
}

func TestSystem_Apply_LostAuthKeyIsRecoveredWithoutOrphans(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	cloud, _ := NewCloud(&plan.Endpoint{Name: "c", URL: e.cloud.URL, Auth: plan.Auth{Username: account, Password: plan.NewSecret(cloudPW)}}, plan.NewRedactor())
	sys, err := cloud.Bind(context.Background(), "store-1", "default", "")
	if err != nil {
		t.Fatal(err)
	}
	// The state kept the id but not the auth key (no PROVISION_STATE_KEY).
	prior := state.Outputs{"cloud_system_id": state.Plain(sys.ID), "owner": state.Plain(account)}
	out, _, err := run(t, tasks["store-1"], 2, true, prior, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out["cloud_system_id"].Value == sys.ID {
		t.Error("the keyless system was reused")
	}
	if dups, orphans, missing := e.world.Check(map[string]string{"store-1": "10.0.0.1:7001"}); len(dups)+len(orphans)+len(missing) != 0 {
		t.Fatalf("dups %v orphans %v missing %v", dups, orphans, missing)
	}
}

func TestSystem_Apply_RefusesServerBoundElsewhere(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	out, _, err := run(t, tasks["store-1"], 1, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A second plan item (another name) pointing at the same server must not rebind it.
	other := e.build(strings.Replace(onePlan, "name: store-1", "name: store-x", 1))
	_, _, err = run(t, other["store-x"], 1, false, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "already bound to cloud system "+out["cloud_system_id"].Value) {
		t.Fatalf("err = %v", err)
	}
	if e.world.Snapshot().Counters.Binds != 1 {
		t.Error("a cloud system was created for a server bound elsewhere")
	}
}

func TestSystem_Apply_RenewsExpiredTokensAndSessions(t *testing.T) {
	// Lifetimes under a second are announced as 0 s: the client learns of the
	// expiry only from the API's answer (401, or 403 + x-auth-result) and renews.
	e := newEnv(t, nxfake.Options{TokenLifetime: 300 * time.Millisecond, SessionLifetime: 300 * time.Millisecond})
	tasks := e.build(onePlan)
	out, _, err := run(t, tasks["store-1"], 1, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, _, err := run(t, tasks["store-1/share/noc@example.com"], 1, false, nil, map[string]state.Outputs{"store-1": out}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, tasks["store-1"], 2, false, out, nil); err != nil {
		t.Fatal(err)
	}
	if c := e.world.Snapshot().Counters; c.TokensIssued < 2 || c.Logins < 2 {
		t.Errorf("tokens %d logins %d: expected renewals", c.TokensIssued, c.Logins)
	}
}

func TestSessionExpired(t *testing.T) {
	h := http.Header{}
	h.Set("x-auth-result", "Auth_WrongSessionToken")
	if !sessionExpired(403, h, nil) || !sessionExpired(401, http.Header{}, nil) || sessionExpired(403, http.Header{}, nil) {
		t.Error("expired-session detection is wrong")
	}
}

func TestShare_Apply_ErrorsAreClear(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(strings.Replace(onePlan, "nx_systems:", `nx_shares:
  items:
    - {name: s1, cloud: nxcloud, cloud_system_id: no-such-system, email: a@example.com, role: viewer}
nx_systems:`, 1))
	_, _, err := run(t, tasks["s1"], 1, false, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "HTTP 404 notFound: System not found") || providers.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestBuild_RejectsBadFields(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	for _, tc := range []struct{ name, from, to, want string }{
		{"bad role", "role: viewer", "role: watcher", `users[1].role: "watcher" is not one of none, disabled`},
		{"bad email", "email: noc@example.com", "email: not-an-email", `users[1].email: "not-an-email" is not an email address`},
		{"duplicate user", "email: noc@example.com", "email: manager@example.com", "users[1].email: manager@example.com is listed twice"},
		{"bad mode", "url: https://10.0.0.1:7001", "url: https://10.0.0.1:7001\n      mode: maybe", `mode: "maybe" is not one of new, existing, auto`},
		{"missing url", "      url: https://10.0.0.1:7001\n", "", "url: required"},
		{"unknown field", "url: https://10.0.0.1:7001", "url: https://10.0.0.1:7001\n      adress: x", `unknown field "adress"`},
		{"wrong endpoint", "cloud: nxcloud", "cloud: nope", `endpoint "nope": no such endpoint`},
		{"custom without permissions", "role: viewer", "role: custom", "custom_permissions: required with role custom"},
		{"conflicting tls", "url: https://10.0.0.1:7001", "url: https://10.0.0.1:7001\n      tls: {insecure: true, fingerprint_sha256: " + strings.Repeat("ab", 32) + "}", "conflicting TLS options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.tryBuild(strings.Replace(onePlan, tc.from, tc.to, 1))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), cloudPW) || strings.Contains(err.Error(), serverPW) {
				t.Fatal("secret in error")
			}
		})
	}
}

func FuzzDecodeSystems(f *testing.F) {
	for _, s := range []string{`{"systems":[{"id":"a","name":"b","status":"notActivated"}]}`, `[{"id":1}]`, `{"results":[]}`, `<html>`, `{"systems":"x"}`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeSystems(b)
	})
}

func TestSystem_Apply_ServerTLSIsPinned(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tlsFarm := httptest.NewTLSServer(e.world.Farm())
	defer tlsFarm.Close()
	sum := sha256.Sum256(tlsFarm.Certificate().Raw)
	good := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name, tls, want string
	}{
		{"pinned", "tls: {fingerprint_sha256: " + good + "}", ""},
		{"wrong pin", "tls: {fingerprint_sha256: " + strings.Repeat("ab", 32) + "}", "fingerprint mismatch"},
		{"no pin self-signed", "", "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(onePlan, "url: https://10.0.0.1:7001", "url: https://10.0.0.1:7001\n      "+tc.tls, 1)
			text = strings.Replace(text, "name: store-1", "name: store-"+strings.ReplaceAll(tc.name, " ", "-"), 1)
			tasks, err := e.tryBuild(text)
			if err != nil {
				t.Fatal(err)
			}
			for _, task := range tasks {
				if task.Kind != SystemsSection || strings.Contains(task.ID, "/share/") {
					continue
				}
				a := task.Action.(*systemAction)
				a.b.TLSOverride = nil
				a.b.ServerURL = func(u string) string { return tlsFarm.URL + "/" + strings.TrimPrefix(u, "https://") }
				binds := e.world.Snapshot().Counters.Binds
				_, _, err := run(t, task, 1, false, nil, nil)
				if tc.want == "" {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) || providers.IsRetryable(err) {
					t.Fatalf("err = %v", err)
				}
				if e.world.Snapshot().Counters.Binds != binds {
					t.Error("a cloud system was bound although the server could not be trusted")
				}
			}
		})
	}
}

func TestSystem_Apply_OrganizationBind(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(strings.Replace(onePlan, "url: https://10.0.0.1:7001", "url: https://10.0.0.1:7001\n      organization: org-7", 1))
	out, _, err := run(t, tasks["store-1"], 1, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := e.world.Snapshot()
	if len(snap.Systems) != 1 || snap.Systems[0].Organization != "org-7" || snap.Systems[0].Status != "activated" || snap.Systems[0].ID != out["cloud_system_id"].Value {
		t.Fatalf("systems %+v", snap.Systems)
	}
	// In doubt: the organization's list is searched, nothing is bound twice.
	if _, _, err := run(t, tasks["store-1"], 2, true, out, nil); err != nil {
		t.Fatal(err)
	}
	if e.world.Snapshot().Counters.Binds != 1 {
		t.Error("bound twice")
	}
}
