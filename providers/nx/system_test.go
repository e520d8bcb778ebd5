package nx

import (
	"context"
	"strings"
	"testing"
	"time"

	"provision/providers"
	"provision/providers/fault"
	"provision/providers/nx/nxfake"
	"provision/state"
)

func TestSystem_Apply_NewServerSetupAndShares(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	out, _, err := apply(t, tasks["store-1"], call{})
	if err != nil {
		t.Fatal(err)
	}
	id := out["cloud_system_id"].Value
	if id == "" || !out["auth_key"].Secret || out["auth_key"].Value == "" || out["mode_used"].Value != "new" ||
		out["owner"].Value != account || out["server_local_id"].Value == "" {
		t.Fatalf("outputs %+v", out)
	}
	outs := map[string]state.Outputs{"store-1": out}
	for _, sid := range []string{"store-1/share/manager@example.com", "store-1/share/noc@example.com"} {
		so, _, err := apply(t, tasks[sid], call{outs: outs})
		if err != nil {
			t.Fatalf("%s: %v", sid, err)
		}
		if so["email"].Value == "" || so["access_role"].Value == "" {
			t.Fatalf("share outputs %+v", so)
		}
	}
	noDamage(t, e.world, map[string]string{"store-1": server1})
	snap := e.world.Snapshot()
	srv, _ := snap.Server(server1)
	if !srv.SetUp || srv.Name != "store-1" || srv.Settings["statisticsAllowed"] != false || srv.LocalID != out["server_local_id"].Value {
		t.Fatalf("server %+v", srv)
	}
	if snap.Counters.Binds != 1 || snap.Counters.Setups != 1 || len(snap.Shares[id]) != 2 {
		t.Fatalf("counters %+v shares %v", snap.Counters, snap.Shares)
	}
}

func TestSystem_Apply_RerunIsNoOp(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	out, saved, err := apply(t, tasks["store-1"], call{})
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]state.Outputs{"store-1": out}
	share := tasks["store-1/share/noc@example.com"]
	if _, _, err := apply(t, share, call{outs: outs}); err != nil {
		t.Fatal(err)
	}
	before := e.world.Snapshot().Counters
	for _, tc := range []struct {
		name string
		c    call
	}{
		{"rerun with the state", call{attempt: 2, prior: saved}},
		{"rerun in doubt", call{attempt: 2, inDoubt: true, prior: saved}},
		{"state file lost", call{attempt: 1}},
		{"state kept no auth key", call{attempt: 2, prior: state.Outputs{"cloud_system_id": saved["cloud_system_id"], "owner": saved["owner"]}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, _, err := apply(t, tasks["store-1"], tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if o["cloud_system_id"].Value != out["cloud_system_id"].Value {
				t.Errorf("cloud_system_id %q, want %q", o["cloud_system_id"].Value, out["cloud_system_id"].Value)
			}
			if _, _, err := apply(t, share, call{attempt: 2, outs: outs}); err != nil {
				t.Fatal(err)
			}
		})
	}
	after := e.world.Snapshot().Counters
	if after.Binds != before.Binds || after.Setups != before.Setups || after.CloudBinds != before.CloudBinds || after.Deletes != 0 ||
		after.SharesCreated != before.SharesCreated || after.SharesUpdated != 0 {
		t.Errorf("a rerun changed something: before %+v after %+v", before, after)
	}
	noDamage(t, e.world, map[string]string{"store-1": server1})
}

func TestSystem_Apply_ExistingServerGetsCloudBind(t *testing.T) {
	e := newEnv(t, nxfake.Options{PreSetUp: []string{server1}})
	tasks := e.build(onePlan)
	out, _, err := apply(t, tasks["store-1"], call{})
	if err != nil {
		t.Fatal(err)
	}
	snap := e.world.Snapshot()
	srv, _ := snap.Server(server1)
	if out["mode_used"].Value != "existing" || snap.Counters.CloudBinds != 1 || snap.Counters.Setups != 0 || srv.Settings["autoDiscoveryEnabled"] != true {
		t.Fatalf("outputs %+v counters %+v server %+v", out, snap.Counters, srv)
	}
	noDamage(t, e.world, map[string]string{"store-1": server1})
}

// TestSystem_Apply_AdoptsInDoubtBind: the cloud creates the system, the answer is
// lost; the next attempt finds it by name, removes it (its key is unknown) and binds
// again: one system in the end, no orphan.
func TestSystem_Apply_AdoptsInDoubtBind(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    nxfake.Options
		lose func(e *env)
	}{
		{"fault injector LostRate=1", nxfake.Options{FarmFaults: &fault.Config{}}, func(e *env) {
			e.world.Faults.Set(fault.Config{LostRate: 1, OnlyMutating: true})
		}},
		{"scripted lost answer", nxfake.Options{}, func(e *env) {
			e.world.FailNext(nxfake.Failure{Method: "POST", Path: "/cdb/systems/bind", Lose: true})
		}},
		{"scripted 500 after the bind took effect", nxfake.Options{}, func(e *env) {
			e.world.FailNext(nxfake.Failure{Method: "POST", Path: "/cdb/systems/bind", Applied: true, Status: 500, Code: "dbError", Text: "db timeout"})
		}},
		{"bare list, wrapped server answers", nxfake.Options{BareArrayList: true, WrapReplies: true}, func(e *env) {
			e.world.FailNext(nxfake.Failure{Method: "POST", Path: "/cdb/systems/bind", Lose: true})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.o)
			tasks := e.build(onePlan)
			// Warm the token so that only the bind meets the fault.
			if _, err := tasks["store-1"].Action.(*systemAction).cloud.Systems(context.Background(), ""); err != nil {
				t.Fatal(err)
			}
			tc.lose(e)
			_, saved, err := apply(t, tasks["store-1"], call{})
			if err == nil || !providers.MaybeApplied(err) || !providers.IsRetryable(err) {
				t.Fatalf("first attempt: %v, want a retryable maybe-applied error", err)
			}
			e.world.Faults.Set(fault.Config{})
			if c := e.world.Snapshot().Counters; c.Binds != 1 {
				t.Fatalf("the lost bind did not happen: %+v", c)
			}
			out, _, err := apply(t, tasks["store-1"], call{attempt: 2, inDoubt: true, prior: saved})
			if err != nil {
				t.Fatal(err)
			}
			c := e.world.Snapshot().Counters
			if c.Binds != 2 || c.Deletes != 1 || out["auth_key"].Value == "" {
				t.Errorf("counters %+v outputs %+v", c, out)
			}
			noDamage(t, e.world, map[string]string{"store-1": server1})
		})
	}
}

func TestSystem_Apply_ResumesFromCheckpointAfterLostSetupAnswer(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    nxfake.Failure
	}{
		{"setup answer lost", nxfake.Failure{Path: "/rest/v3/system/setup", Lose: true}},
		{"setup done but answered 500", nxfake.Failure{Path: "/rest/v3/system/setup", Applied: true, Status: 500, Code: "internalServerError", Text: "oops"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nxfake.Options{})
			tasks := e.build(onePlan)
			e.world.FailNext(tc.f)
			_, saved, err := apply(t, tasks["store-1"], call{})
			if err == nil || !providers.IsRetryable(err) {
				t.Fatalf("first attempt: %v", err)
			}
			if saved["cloud_system_id"].Value == "" || saved["auth_key"].Value == "" {
				t.Fatalf("bind not checkpointed: %+v", saved)
			}
			out, _, err := apply(t, tasks["store-1"], call{attempt: 2, inDoubt: true, prior: saved})
			if err != nil {
				t.Fatal(err)
			}
			c := e.world.Snapshot().Counters
			if c.Binds != 1 || c.Setups != 1 || out["cloud_system_id"].Value != saved["cloud_system_id"].Value {
				t.Errorf("counters %+v outputs %+v", c, out)
			}
			noDamage(t, e.world, map[string]string{"store-1": server1})
		})
	}
}

func TestSystem_Apply_SetupRefusedAfterTakingEffectRereadsInfo(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	e.world.FailNext(nxfake.Failure{Path: "/rest/v3/system/setup", Applied: true, Status: 403, Code: "forbidden", Text: "System is already set up"})
	out, _, err := apply(t, tasks["store-1"], call{})
	if err != nil {
		t.Fatal(err)
	}
	if out["mode_used"].Value != "new" {
		t.Errorf("outputs %+v", out)
	}
	noDamage(t, e.world, map[string]string{"store-1": server1})
}

func TestSystem_Apply_LostAuthKeyIsReplacedWithoutOrphan(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	// The bind is checkpointed, then the setup fails: the state holds the id, but
	// without a state key the auth key is gone on the next run.
	e.world.FailNext(nxfake.Failure{Path: "/rest/v3/system/setup", Status: 503, Code: "serviceUnavailable", Text: "busy"})
	_, saved, err := apply(t, tasks["store-1"], call{})
	if err == nil || !providers.IsRetryable(err) {
		t.Fatalf("first attempt: %v", err)
	}
	prior := state.Outputs{"cloud_system_id": saved["cloud_system_id"], "owner": saved["owner"]}
	out, _, err := apply(t, tasks["store-1"], call{attempt: 2, prior: prior})
	if err != nil {
		t.Fatal(err)
	}
	if out["cloud_system_id"].Value == saved["cloud_system_id"].Value {
		t.Error("the system whose key was lost was reused")
	}
	if c := e.world.Snapshot().Counters; c.Binds != 2 || c.Deletes != 1 {
		t.Errorf("counters %+v", c)
	}
	noDamage(t, e.world, map[string]string{"store-1": server1})
}

func TestSystem_Apply_ReusesCheckpointedSystem(t *testing.T) {
	for _, tc := range []struct {
		name     string
		preSetUp bool
		fail     string
	}{
		{"setup failed", false, "/rest/v3/system/setup"},
		{"cloud bind failed, no owner checkpointed", true, "/rest/v3/system/cloud/bind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := nxfake.Options{}
			if tc.preSetUp {
				o.PreSetUp = []string{server1}
			}
			e := newEnv(t, o)
			tasks := e.build(onePlan)
			e.world.FailNext(nxfake.Failure{Path: tc.fail, Status: 503, Code: "serviceUnavailable", Text: "busy"})
			_, saved, err := apply(t, tasks["store-1"], call{})
			if !providers.IsRetryable(err) {
				t.Fatalf("first attempt: %v", err)
			}
			if tc.preSetUp {
				delete(saved, "owner")
			}
			out, _, err := apply(t, tasks["store-1"], call{attempt: 2, prior: saved})
			if err != nil {
				t.Fatal(err)
			}
			if out["cloud_system_id"].Value != saved["cloud_system_id"].Value || e.world.Snapshot().Counters.Binds != 1 {
				t.Errorf("outputs %+v counters %+v", out, e.world.Snapshot().Counters)
			}
			noDamage(t, e.world, map[string]string{"store-1": server1})
		})
	}
}

func TestSystem_Apply_CheckpointedSystemGoneIsBoundAgain(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	cloud := tasks["store-1"].Action.(*systemAction).cloud
	e.world.FailNext(nxfake.Failure{Path: "/rest/v3/system/setup", Status: 503, Code: "serviceUnavailable", Text: "busy"})
	_, saved, _ := apply(t, tasks["store-1"], call{})
	if err := cloud.Delete(context.Background(), saved["cloud_system_id"].Value); err != nil {
		t.Fatal(err)
	}
	if _, _, err := apply(t, tasks["store-1"], call{attempt: 2, prior: saved}); err != nil {
		t.Fatal(err)
	}
	noDamage(t, e.world, map[string]string{"store-1": server1})
}

func TestSystem_Apply_SeveralCandidatesIsPermanentError(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	cloud := tasks["store-1"].Action.(*systemAction).cloud
	var ids []string
	for i := 0; i < 2; i++ {
		s, err := cloud.Bind(context.Background(), "store-1", "default", "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	_, _, err := apply(t, tasks["store-1"], call{attempt: 2, inDoubt: true})
	if err == nil || providers.IsRetryable(err) || !strings.Contains(err.Error(), "found 2 unactivated cloud systems") ||
		!strings.Contains(err.Error(), ids[0]) || !strings.Contains(err.Error(), ids[1]) {
		t.Fatalf("err = %v", err)
	}
	if c := e.world.Snapshot().Counters; c.Binds != 2 || c.Deletes != 0 {
		t.Errorf("something was bound or removed: %+v", c)
	}
}

func TestSystem_Apply_RefusesServerBoundElsewhere(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	out, _, err := apply(t, tasks["store-1"], call{})
	if err != nil {
		t.Fatal(err)
	}
	// Another plan (another system name) pointing at the same server must not rebind it.
	other := e.build(strings.Replace(onePlan, "name: store-1", "name: store-x", 1))
	for _, c := range []call{{}, {attempt: 3, inDoubt: true}} {
		_, _, err = apply(t, other["store-x"], c)
		if err == nil || providers.IsRetryable(err) ||
			!strings.Contains(err.Error(), "already bound to cloud system "+out["cloud_system_id"].Value+", not a new cloud system named \"store-x\": refusing to rebind") {
			t.Fatalf("err = %v", err)
		}
	}
	if c := e.world.Snapshot().Counters; c.Binds != 1 {
		t.Errorf("a cloud system was created for a server bound elsewhere: %+v", c)
	}
}

func TestSystem_Apply_ModeMismatchFailsBeforeBinding(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		preSetUp   bool
		want       string
	}{
		{"existing on a factory-new server", "existing", false, "is not set up: mode existing needs a set-up server"},
		{"new on a set-up server", "new", true, "is already set up: mode new needs a factory-new server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := nxfake.Options{}
			if tc.preSetUp {
				o.PreSetUp = []string{server1}
			}
			e := newEnv(t, o)
			text := strings.Replace(onePlan, "      url:", "      mode: "+tc.mode+"\n      url:", 1)
			if !tc.preSetUp { // the factory default is not tried in mode existing
				text = strings.Replace(text, `admin: {password: "${env.NX_ADMIN_PASSWORD}"}`, "admin: {password: admin}", 1)
			}
			tasks := e.build(text)
			_, _, err := apply(t, tasks["store-1"], call{})
			if err == nil || providers.IsRetryable(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v", err)
			}
			if c := e.world.Snapshot().Counters; c.Binds != 0 {
				t.Errorf("bound before refusing: %+v", c)
			}
		})
	}
}

func TestSystem_Apply_ChangedSpec(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	_, saved, err := apply(t, tasks["store-1"], call{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("settings are patched", func(t *testing.T) {
		changed := e.build(strings.Replace(onePlan, "statisticsAllowed: false", "statisticsAllowed: true", 1))
		if changed["store-1"].Hash == tasks["store-1"].Hash {
			t.Fatal("hash did not change")
		}
		if _, _, err := apply(t, changed["store-1"], call{attempt: 2, changed: true, prior: saved}); err != nil {
			t.Fatal(err)
		}
		srv, _ := e.world.Snapshot().Server(server1)
		if srv.Settings["statisticsAllowed"] != true {
			t.Errorf("settings %v", srv.Settings)
		}
	})
	t.Run("a rename is refused", func(t *testing.T) {
		changed := e.build(strings.Replace(onePlan, "      url:", "      system_name: Store One\n      url:", 1))
		_, _, err := apply(t, changed["store-1"], call{attempt: 2, changed: true, prior: saved})
		if err == nil || providers.IsRetryable(err) || !strings.Contains(err.Error(), "cannot rename a bound cloud system") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("adding a user does not change the system task", func(t *testing.T) {
		more := e.build(strings.Replace(onePlan, "      users:\n", "      users:\n        - {email: extra@example.com, role: viewer}\n", 1))
		if more["store-1"].Hash != tasks["store-1"].Hash {
			t.Error("the system task's hash depends on its users")
		}
		if more["store-1/share/noc@example.com"].Hash != tasks["store-1/share/noc@example.com"].Hash {
			t.Error("a share task's hash depends on the other users")
		}
	})
}

func TestSystem_Apply_RenewsExpiredTokensAndSessions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    nxfake.Options
	}{
		{"expired by the server, 401", nxfake.Options{}},
		{"expired by the server, 403 + x-auth-result", nxfake.Options{ExpiredSessionStatus: 403}},
		{"tiny lifetimes", nxfake.Options{TokenLifetime: time.Second, SessionLifetime: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.o)
			tasks := e.build(onePlan)
			out, saved, err := apply(t, tasks["store-1"], call{})
			if err != nil {
				t.Fatal(err)
			}
			e.world.ExpireTokens()
			if _, _, err := apply(t, tasks["store-1/share/noc@example.com"], call{outs: map[string]state.Outputs{"store-1": out}}); err != nil {
				t.Fatal(err)
			}
			e.world.ExpireTokens()
			if _, _, err := apply(t, tasks["store-1"], call{attempt: 2, prior: saved}); err != nil {
				t.Fatal(err)
			}
			if c := e.world.Snapshot().Counters; c.TokensIssued < 2 || c.Logins < 2 {
				t.Errorf("tokens %d logins %d: want renewals", c.TokensIssued, c.Logins)
			}
		})
	}
}

func TestSystem_Apply_LoginFailures(t *testing.T) {
	t.Run("no password accepted", func(t *testing.T) {
		e := newEnv(t, nxfake.Options{})
		e.world.AddServer(server1, "SomethingElse1")
		tasks := e.build(onePlan)
		_, _, err := apply(t, tasks["store-1"], call{})
		if err == nil || providers.IsRetryable(err) || !strings.Contains(err.Error(), "tried admin.password, the factory default") {
			t.Fatalf("err = %v", err)
		}
		if c := e.world.Snapshot().Counters; c.Binds != 0 {
			t.Errorf("bound without a server: %+v", c)
		}
	})
	t.Run("locked out", func(t *testing.T) {
		e := newEnv(t, nxfake.Options{LockoutAfter: 1})
		e.world.AddServer(server1, "SomethingElse1")
		tasks := e.build(onePlan)
		_, _, err := apply(t, tasks["store-1"], call{})
		if err == nil || providers.IsRetryable(err) || !strings.Contains(err.Error(), "Too many attempts") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("server unreachable", func(t *testing.T) {
		e := newEnv(t, nxfake.Options{FarmFaults: &fault.Config{DropRate: 1}})
		tasks := e.build(onePlan)
		_, _, err := apply(t, tasks["store-1"], call{})
		if err == nil || !providers.IsRetryable(err) {
			t.Fatalf("err = %v", err)
		}
		if c := e.world.Snapshot().Counters; c.Binds != 0 {
			t.Errorf("bound without a server: %+v", c)
		}
	})
}

const orgPlan = `version: 1
name: nx-test
vars: {cloud_url: "http://127.0.0.1:1"}
endpoints:
  nxcloud: {kind: nx-cloud, url: "${var.cloud_url}", auth: {username: ops@example.com, password: "${env.NX_CLOUD_PASSWORD}"}}
nx_systems:
  items:
    - name: store-1
      cloud: nxcloud
      organization: org-7
      url: https://10.0.0.1:7001
      admin: {password: "${env.NX_ADMIN_PASSWORD}"}
`

func TestSystem_Apply_OrganizationFlow(t *testing.T) {
	e := newEnv(t, nxfake.Options{Organizations: []string{"org-7"}, PreSetUp: []string{server1}})
	tasks := e.build(orgPlan)
	if _, err := tasks["store-1"].Action.(*systemAction).cloud.Systems(context.Background(), "org-7"); err != nil {
		t.Fatal(err)
	}
	e.world.FailNext(nxfake.Failure{Path: "/partners/api/v3/cloud_systems/", Lose: true})
	_, saved, err := apply(t, tasks["store-1"], call{})
	if err == nil || !providers.MaybeApplied(err) {
		t.Fatalf("first attempt: %v", err)
	}
	out, _, err := apply(t, tasks["store-1"], call{attempt: 2, inDoubt: true, prior: saved})
	if err != nil {
		t.Fatal(err)
	}
	snap := e.world.Snapshot()
	cs, _ := snap.System(out["cloud_system_id"].Value)
	if cs.Organization != "org-7" || out["mode_used"].Value != "existing" || snap.Counters.Deletes != 1 {
		t.Fatalf("system %+v outputs %+v counters %+v", cs, out, snap.Counters)
	}
	noDamage(t, e.world, map[string]string{"store-1": server1})
}

func TestSystem_Apply_FallbackPaths(t *testing.T) {
	e := newEnv(t, nxfake.Options{FallbackPaths: true})
	tasks := e.build(onePlan)
	out, _, err := apply(t, tasks["store-1"], call{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := apply(t, tasks["store-1/share/noc@example.com"], call{outs: map[string]state.Outputs{"store-1": out}}); err != nil {
		t.Fatal(err)
	}
	snap := e.world.Snapshot()
	if len(snap.Shares[out["cloud_system_id"].Value]) != 1 {
		t.Errorf("shares %v", snap.Shares)
	}
	noDamage(t, e.world, map[string]string{"store-1": server1})
}

func TestSystem_Probe_ReadsServerState(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	pr := tasks["store-1"].Action.(providers.Prober)
	x := &providers.Exec{Task: tasks["store-1"]}
	if ok, detail, err := pr.Probe(context.Background(), x); err != nil || ok || detail != "server factory-new" {
		t.Fatalf("probe before: %v %q %v", ok, detail, err)
	}
	if _, _, err := apply(t, tasks["store-1"], call{}); err != nil {
		t.Fatal(err)
	}
	if ok, detail, err := pr.Probe(context.Background(), x); err != nil || !ok || !strings.Contains(detail, "bound to cloud system") {
		t.Fatalf("probe after: %v %q %v", ok, detail, err)
	}
}

// TestSystem_Apply_AdoptsBindingOverUnusedCheckpoint: the task's checkpointed system
// was never used, and the server is bound to another system of this account and
// name: that one is adopted and the unused one removed.
func TestSystem_Apply_AdoptsBindingOverUnusedCheckpoint(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	out, _, err := apply(t, tasks["store-1"], call{})
	if err != nil {
		t.Fatal(err)
	}
	cloud := tasks["store-1"].Action.(*systemAction).cloud
	unused, err := cloud.Bind(context.Background(), "store-1", "default", "")
	if err != nil {
		t.Fatal(err)
	}
	prior := state.Outputs{"cloud_system_id": state.Plain(unused.ID), "auth_key": state.SecretOutput(unused.AuthKey), "owner": state.Plain(account)}
	got, saved, err := apply(t, tasks["store-1"], call{attempt: 2, inDoubt: true, prior: prior})
	if err != nil {
		t.Fatal(err)
	}
	if got["cloud_system_id"].Value != out["cloud_system_id"].Value || saved["auth_key"].Value != "" {
		t.Errorf("outputs %+v saved %+v", got, saved)
	}
	noDamage(t, e.world, map[string]string{"store-1": server1})
}
