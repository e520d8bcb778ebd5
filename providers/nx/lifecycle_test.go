package nx

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/providers/lifecycletest"
	"provision/providers/nx/nxfake"
	"provision/state"
)

// Two set-up servers connected with a cloud bind (mode existing), three shares,
// one of them a separate nx_shares item.
const lifePlan = `version: 1
name: nx-test
vars: {cloud_url: "http://127.0.0.1:1"}
endpoints:
  nxcloud: {kind: nx-cloud, url: "${var.cloud_url}", auth: {username: ops@example.com, password: "${env.NX_CLOUD_PASSWORD}"}}
nx_systems:
  items:
    - name: store-1
      cloud: nxcloud
      url: https://10.0.0.1:7001
      mode: existing
      admin: {password: "${env.NX_ADMIN_PASSWORD}"}
      users:
        - {email: manager@example.com, role: advancedViewer}
        - {email: noc@example.com, role: viewer}
    - name: store-2
      cloud: nxcloud
      url: https://10.0.0.2:7001
      mode: existing
      admin: {password: "${env.NX_ADMIN_PASSWORD}"}
nx_shares:
  items:
    - {name: audit-share, cloud: nxcloud, system: store-2, email: audit@example.com, role: liveViewer}
`

// lifeEnv is an env whose servers exist set up (admin password serverPW).
func lifeEnv(t *testing.T) *env {
	return newEnv(t, nxfake.Options{PreSetUp: []string{"10.0.0.1:7001", "10.0.0.2:7001"}})
}

// buildAll builds the plan once and returns the build and its tasks.
func (e *env) buildAll(text string) (*providers.Build, map[string]*providers.Task, []*providers.Task) {
	e.t.Helper()
	pl, err := e.load(text)
	if err != nil {
		e.t.Fatal(err)
	}
	b := &providers.Build{Plan: pl, Clients: &providers.Clients{},
		ServerURL: func(u string) string { return e.world.ServerURLFor(e.ts.URL, u) }, TLSOverride: &plan.TLS{}}
	byID := map[string]*providers.Task{}
	var all []*providers.Task
	for _, it := range pl.Items {
		for _, k := range Kinds() {
			if k.Section() != it.Section {
				continue
			}
			ts, err := k.Build(b, it)
			if err != nil {
				e.t.Fatal(err)
			}
			for _, t := range ts {
				byID[t.ID] = t
				all = append(all, t)
			}
		}
	}
	return b, byID, all
}

// remote is the part of the world a destroy must restore: cloud systems, shares
// and each server's binding, set-up state, name and settings.
type remote struct {
	Systems []nxfake.CloudSystem
	Shares  map[string][]nxfake.Share
	Servers []string
}

func remoteOf(w *nxfake.World) remote {
	s := w.Snapshot()
	r := remote{Systems: s.Systems, Shares: map[string][]nxfake.Share{}}
	for id, l := range s.Shares {
		if len(l) > 0 {
			r.Shares[id] = l
		}
	}
	for _, srv := range s.Servers {
		r.Servers = append(r.Servers, srv.Key+" setup="+boolText(srv.SetUp)+" cloud="+srv.CloudID+" name="+srv.Name+" settings="+settingsText(srv.Settings))
	}
	return r
}

func boolText(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func settingsText(m map[string]any) string {
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, k+"="+settingText(m[k]))
	}
	return strings.Join(out, ",")
}

func checkNoSecret(t *testing.T, ocs []lifecycletest.Outcome, logs string) {
	t.Helper()
	for _, s := range []string{cloudPW, serverPW} {
		if strings.Contains(logs, s) {
			t.Fatalf("secret in the log: %s", logs)
		}
		for _, oc := range ocs {
			if oc.Err != nil && strings.Contains(oc.Err.Error(), s) {
				t.Fatalf("secret in an error: %v", oc.Err)
			}
		}
	}
}

func TestLifecycle_ApplyThenDestroy_LeavesTheWorldAsBefore(t *testing.T) {
	e := lifeEnv(t)
	before := remoteOf(e.world)
	b, byID, tasks := e.buildAll(lifePlan)
	path := filepath.Join(e.dir, "state.db")
	if res := lifecycletest.Apply(t, tasks, path, ""); !res.OK() {
		t.Fatalf("apply: %+v", res)
	}
	if n := len(e.world.Snapshot().Systems); n != 2 {
		t.Fatalf("apply made %d cloud systems, want 2", n)
	}
	saved := filepath.Join(e.dir, "saved.db")
	lifecycletest.CopyFile(t, path, saved)

	var logs strings.Builder
	log := zerolog.New(&logs)
	ocs := lifecycletest.Destroy(t, path, lifecycletest.Options{Registry: providers.NewRegistry(Kinds()...), Build: b, Planned: byID, Log: &log})
	if f := lifecycletest.Failed(ocs); len(f) > 0 {
		t.Fatalf("destroy failed: %v", f)
	}
	if len(ocs) != 5 {
		t.Fatalf("destroy touched %d tasks, want 5: %+v", len(ocs), ocs)
	}
	// Dependents first: every share before its system.
	pos := map[string]int{}
	for i, oc := range ocs {
		pos[oc.ID] = i
	}
	for _, sh := range []string{"store-1/share/manager@example.com", "store-1/share/noc@example.com"} {
		if pos[sh] > pos["store-1"] {
			t.Errorf("%s deleted after its system: %v", sh, ocs)
		}
	}
	if pos["audit-share"] > pos["store-2"] {
		t.Errorf("audit-share deleted after store-2")
	}
	if after := remoteOf(e.world); !reflect.DeepEqual(after, before) {
		t.Fatalf("world after destroy:\n%+v\nbefore apply:\n%+v", after, before)
	}
	if c := e.world.Snapshot().Counters; c.Unbinds != 2 {
		t.Errorf("servers told to disconnect: %d, want 2 (%+v)", c.Unbinds, c)
	}
	checkNoSecret(t, ocs, logs.String())
	st, err := state.Open(path, state.Options{PlanName: lifecycletest.PlanName})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := st.Load()
	st.Close()
	if len(recs) != 0 {
		t.Errorf("records left after destroy: %d", len(recs))
	}

	// A repeated destroy from the same records finds everything gone: no error,
	// no change.
	ocs = lifecycletest.Destroy(t, saved, lifecycletest.Options{Registry: providers.NewRegistry(Kinds()...), Build: b, Planned: byID})
	if f := lifecycletest.Failed(ocs); len(f) > 0 {
		t.Fatalf("repeated destroy failed: %v", f)
	}
	if after := remoteOf(e.world); !reflect.DeepEqual(after, before) {
		t.Fatalf("world after a repeated destroy: %+v", after)
	}
}

func TestLifecycle_Destroy_RemovedFromThePlan_ServerNotTold(t *testing.T) {
	e := lifeEnv(t)
	before := remoteOf(e.world)
	b, _, tasks := e.buildAll(lifePlan)
	path := filepath.Join(e.dir, "state.db")
	if res := lifecycletest.Apply(t, tasks, path, ""); !res.OK() {
		t.Fatalf("apply: %+v", res)
	}
	var logs strings.Builder
	log := zerolog.New(&logs)
	// No planned tasks: the records alone (no admin password).
	ocs := lifecycletest.Destroy(t, path, lifecycletest.Options{Registry: providers.NewRegistry(Kinds()...), Build: b, Log: &log})
	if f := lifecycletest.Failed(ocs); len(f) > 0 {
		t.Fatalf("destroy failed: %v", f)
	}
	if c := e.world.Snapshot().Counters; c.Unbinds != 0 || c.Deletes != 2 {
		t.Errorf("counters %+v: want no server unbind and 2 cloud deletes", c)
	}
	if !strings.Contains(logs.String(), "the server was not told") {
		t.Errorf("the destroy does not say the server was not told:\n%s", logs.String())
	}
	// The fake cloud drops the binding of a server whose system is removed.
	if after := remoteOf(e.world); !reflect.DeepEqual(after, before) {
		t.Fatalf("world after destroy:\n%+v\nbefore apply:\n%+v", after, before)
	}
	checkNoSecret(t, ocs, logs.String())
}

func TestLifecycle_Destroy_LostAnswersAreRetriedInDoubt(t *testing.T) {
	for _, c := range []struct {
		f nxfake.Failure
		// retried: the delete fails and is tried again; otherwise the provider
		// reads the server's state after the lost answer and sees it took effect.
		retried bool
	}{
		{nxfake.Failure{Method: "DELETE", Path: "/cdb/systems/", Lose: true}, true},
		{nxfake.Failure{Method: "POST", Path: "/users", Lose: true}, true},
		{nxfake.Failure{Method: "POST", Path: "/rest/v3/system/cloud/unbind", Lose: true}, false},
		{nxfake.Failure{Method: "DELETE", Path: "/cdb/systems/", Status: 503, Code: "serviceUnavailable", Text: "try later", Applied: true}, true},
	} {
		f := c.f
		t.Run(f.Method+" "+f.Path+" "+boolText(f.Lose), func(t *testing.T) {
			e := lifeEnv(t)
			before := remoteOf(e.world)
			b, byID, tasks := e.buildAll(lifePlan)
			path := filepath.Join(e.dir, "state.db")
			if res := lifecycletest.Apply(t, tasks, path, ""); !res.OK() {
				t.Fatalf("apply: %+v", res)
			}
			planned := byID
			if f.Path == "/cdb/systems/" {
				planned = nil // no unbind: the cloud DELETE does the work
			}
			e.world.FailNext(f)
			ocs := lifecycletest.Destroy(t, path, lifecycletest.Options{Registry: providers.NewRegistry(Kinds()...), Build: b, Planned: planned})
			if fl := lifecycletest.Failed(ocs); len(fl) > 0 {
				t.Fatalf("destroy failed: %v", fl)
			}
			retried := false
			for _, oc := range ocs {
				retried = retried || oc.Attempts > 1
			}
			if retried != c.retried {
				t.Errorf("a delete was retried: %v, want %v (%+v)", retried, c.retried, ocs)
			}
			if f.Path == "/rest/v3/system/cloud/unbind" {
				if n := e.world.Snapshot().Counters.Unbinds; n != 2 {
					t.Errorf("servers unbound: %d, want 2", n)
				}
			}
			if after := remoteOf(e.world); !reflect.DeepEqual(after, before) {
				t.Fatalf("world after destroy:\n%+v\nbefore apply:\n%+v", after, before)
			}
		})
	}
}

func TestLifecycle_Destroy_InDoubtBindIsFoundByName(t *testing.T) {
	e := lifeEnv(t)
	b, byID, _ := e.buildAll(lifePlan)
	task := byID["store-1"]
	cloud := task.Action.(*systemAction).cloud
	// A bind whose answer was never recorded, and an unrelated system of another name.
	if _, err := cloud.Bind(context.Background(), "store-1", "default", ""); err != nil {
		t.Fatal(err)
	}
	other, err := cloud.Bind(context.Background(), "somebody-elses", "default", "")
	if err != nil {
		t.Fatal(err)
	}
	k := &SystemKind{}
	mk := func(inDoubt bool) *providers.Deletion {
		return &providers.Deletion{Exec: &providers.Exec{Task: &providers.Task{ID: "store-1", Kind: SystemsSection, Endpoint: "nxcloud"},
			Attempt: 1, InDoubt: inDoubt, Log: zerolog.Nop(), Redactor: plan.NewRedactor()}, Planned: task}
	}
	// Not in doubt and nothing recorded: nothing is identified, nothing deleted.
	if err := k.Delete(context.Background(), b, mk(false)); err != nil {
		t.Fatal(err)
	}
	if n := len(e.world.Snapshot().Systems); n != 2 {
		t.Fatalf("%d systems after a delete that had nothing recorded, want 2", n)
	}
	if err := k.Delete(context.Background(), b, mk(true)); err != nil {
		t.Fatal(err)
	}
	snap := e.world.Snapshot()
	if len(snap.Systems) != 1 || snap.Systems[0].ID != other.ID {
		t.Fatalf("systems after the in-doubt delete: %+v, want only %s", snap.Systems, other.ID)
	}
	// Two candidates: it refuses to guess.
	for i := 0; i < 2; i++ {
		if _, err := cloud.Bind(context.Background(), "store-1", "default", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Delete(context.Background(), b, mk(true)); err == nil || !strings.Contains(err.Error(), "cannot tell which") {
		t.Fatalf("two candidates: %v", err)
	}
	if n := len(e.world.Snapshot().Systems); n != 3 {
		t.Fatalf("%d systems after a refused delete, want 3", n)
	}
}

func TestLifecycle_Adoption_FirstLookAdoptsInDoubtDoesNot(t *testing.T) {
	e := lifeEnv(t)
	_, byID, _ := e.buildAll(lifePlan)
	sys := byID["store-1"]
	// First apply binds; its outputs are then "lost" (a new state file).
	out, saved, err := apply(t, sys, call{})
	if err != nil {
		t.Fatal(err)
	}
	_ = saved
	for _, c := range []struct {
		name    string
		c       call
		adopted bool
	}{
		{"first look", call{}, true},
		{"in doubt", call{inDoubt: true, attempt: 2}, false},
		{"second attempt", call{attempt: 2}, false},
		{"own checkpointed system", call{prior: state.Outputs{"cloud_system_id": out["cloud_system_id"]}}, false},
	} {
		t.Run("system "+c.name, func(t *testing.T) {
			x := exec(sys, c.c)
			if _, err := sys.Action.Apply(context.Background(), x); err != nil {
				t.Fatal(err)
			}
			if x.Adopted != c.adopted {
				t.Errorf("Adopted = %v, want %v", x.Adopted, c.adopted)
			}
		})
	}
	share := byID["store-1/share/manager@example.com"]
	outs := map[string]state.Outputs{"store-1": out}
	x := exec(share, call{outs: outs})
	if _, err := share.Action.Apply(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	if x.Adopted {
		t.Errorf("a share this task created is marked adopted")
	}
	for _, c := range []struct {
		name    string
		c       call
		adopted bool
	}{
		{"first look", call{outs: outs}, true},
		{"in doubt", call{inDoubt: true, attempt: 2, outs: outs}, false},
	} {
		t.Run("share "+c.name, func(t *testing.T) {
			x := exec(share, c.c)
			if _, err := share.Action.Apply(context.Background(), x); err != nil {
				t.Fatal(err)
			}
			if x.Adopted != c.adopted {
				t.Errorf("Adopted = %v, want %v", x.Adopted, c.adopted)
			}
		})
	}
}

func TestLifecycle_Destroy_LeavesAdoptedUnlessAsked(t *testing.T) {
	e := lifeEnv(t)
	b, byID, tasks := e.buildAll(lifePlan)
	// The share with audit@ exists before the plan runs (made by hand).
	pre := lifecycletest.Apply(t, tasks, filepath.Join(e.dir, "other.db"), "")
	if !pre.OK() {
		t.Fatalf("apply: %+v", pre)
	}
	path := filepath.Join(e.dir, "state.db")
	_, byID2, tasks2 := e.buildAll(lifePlan)
	if res := lifecycletest.Apply(t, tasks2, path, ""); !res.OK() {
		t.Fatalf("apply: %+v", res)
	}
	st, err := state.Open(path, state.Options{PlanName: lifecycletest.PlanName})
	if err != nil {
		t.Fatal(err)
	}
	infos, _ := st.Infos()
	st.Close()
	for _, id := range []string{"store-1", "store-2", "audit-share", "store-1/share/noc@example.com"} {
		if infos[id] == nil || !infos[id].Adopted {
			t.Errorf("%s: info %+v, want adopted", id, infos[id])
		}
	}
	reg := providers.NewRegistry(Kinds()...)
	ocs := lifecycletest.Destroy(t, path, lifecycletest.Options{Registry: reg, Build: b, Planned: byID2})
	for _, oc := range ocs {
		if !oc.Skipped {
			t.Errorf("%s was deleted though adopted", oc.ID)
		}
	}
	if n := len(e.world.Snapshot().Systems); n != 2 {
		t.Fatalf("%d systems after a destroy that skips adopted ones, want 2", n)
	}
	ocs = lifecycletest.Destroy(t, path, lifecycletest.Options{Registry: reg, Build: b, Planned: byID, IncludeAdopted: true})
	if f := lifecycletest.Failed(ocs); len(f) > 0 {
		t.Fatal(f)
	}
	if n := len(e.world.Snapshot().Systems); n != 0 {
		t.Fatalf("%d systems after destroy --include-adopted, want 0", n)
	}
}

func TestLifecycle_Drift_ReportsChangesMadeInTheCloud(t *testing.T) {
	e := lifeEnv(t)
	_, byID, tasks := e.buildAll(lifePlan)
	path := filepath.Join(e.dir, "state.db")
	if res := lifecycletest.Apply(t, tasks, path, ""); !res.OK() {
		t.Fatalf("apply: %+v", res)
	}
	_, _, fresh := e.buildAll(lifePlan)
	diffs, errs := lifecycletest.Drift(t, path, "", fresh)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(diffs) != 5 {
		t.Fatalf("drift checked %d tasks, want 5", len(diffs))
	}
	for id, d := range diffs {
		if len(d) > 0 {
			t.Errorf("%s: drift %+v on an untouched object", id, d)
		}
	}

	// By hand in the portal: noc@ removed, manager@ made a viewer, store-2's
	// server disconnected.
	cloud := byID["store-1"].Action.(*systemAction).cloud
	sys1 := ""
	for _, cs := range e.world.Snapshot().Systems {
		if cs.Name == "store-1" {
			sys1 = cs.ID
		}
	}
	ctx := context.Background()
	if err := cloud.PutShare(ctx, sys1, Share{AccountEmail: "noc@example.com", AccessRole: "none", IsEnabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := cloud.PutShare(ctx, sys1, Share{AccountEmail: "manager@example.com", AccessRole: "viewer", IsEnabled: true}); err != nil {
		t.Fatal(err)
	}
	srv2, err := byID["store-2"].Action.(*systemAction).server()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv2.CloudUnbind(ctx, plan.NewSecret(serverPW)); err != nil {
		t.Fatal(err)
	}
	_, _, fresh = e.buildAll(lifePlan)
	diffs, errs = lifecycletest.Drift(t, path, "", fresh)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := map[string][]providers.FieldDiff{
		"store-1/share/noc@example.com":     {{Field: "", Want: "share with noc@example.com as viewer", Got: "(missing)"}},
		"store-1/share/manager@example.com": {{Field: "role", Want: "advancedViewer", Got: "viewer"}},
		"store-1":                           nil,
	}
	for id, w := range want {
		if !reflect.DeepEqual(diffs[id], w) {
			t.Errorf("%s: drift %+v, want %+v", id, diffs[id], w)
		}
	}
	// store-2's system went with the unbind: the system and its share are missing.
	for _, id := range []string{"store-2", "audit-share"} {
		if d := diffs[id]; len(d) != 1 || d[0].Field != "" || d[0].Got != "(missing)" {
			t.Errorf("%s: drift %+v, want missing", id, d)
		}
	}
	for id, d := range diffs {
		for _, f := range d {
			for _, s := range []string{cloudPW, serverPW} {
				if strings.Contains(f.Want+f.Got, s) {
					t.Fatalf("%s: secret in a drift line", id)
				}
			}
		}
	}
}

// exec is one Exec as the runner makes it (see apply).
func exec(task *providers.Task, c call) *providers.Exec {
	if c.attempt == 0 {
		c.attempt = 1
	}
	prior := state.Outputs{}
	for k, v := range c.prior {
		prior[k] = v
	}
	return &providers.Exec{Task: task, Attempt: c.attempt, InDoubt: c.inDoubt, Prior: prior, Log: zerolog.Nop(), Redactor: plan.NewRedactor(),
		Lookup: func(r plan.Ref) (string, error) {
			if v, ok := c.outs[r.Item][r.Key]; ok {
				return v.Value, nil
			}
			return "", errors.New("no output " + r.Item + "." + r.Key)
		}}
}

func TestLifecycle_Destroy_InDoubtWithoutAnySpecDeletesNothing(t *testing.T) {
	e := lifeEnv(t)
	b, byID, _ := e.buildAll(lifePlan)
	if _, err := byID["store-1"].Action.(*systemAction).cloud.Bind(context.Background(), "store-1", "default", ""); err != nil {
		t.Fatal(err)
	}
	// A task that never finished (no info) and that the plan no longer lists.
	d := &providers.Deletion{Exec: &providers.Exec{Task: &providers.Task{ID: "store-1", Kind: SystemsSection, Endpoint: "nxcloud"},
		Attempt: 2, InDoubt: true, Log: zerolog.Nop(), Redactor: plan.NewRedactor()}}
	err := (&SystemKind{}).Delete(context.Background(), b, d)
	if err == nil || errors.Is(err, providers.ErrCannotDelete) || !strings.Contains(err.Error(), "by hand") {
		t.Fatalf("err = %v", err)
	}
	if n := len(e.world.Snapshot().Systems); n != 1 {
		t.Fatalf("%d systems, want the unidentified one kept", n)
	}
}

func TestLifecycle_Adoption_SurvivesAFailedAttempt(t *testing.T) {
	e := lifeEnv(t)
	_, byID, _ := e.buildAll(lifePlan)
	out, _, err := apply(t, byID["store-1"], call{})
	if err != nil {
		t.Fatal(err)
	}
	cloud := byID["store-1"].Action.(*systemAction).cloud
	_, byID, _ = e.buildAll(lifePlan) // a new run: nothing cached
	share := byID["store-1/share/manager@example.com"]
	// The share exists (by hand) with another role; the first attempt finds it,
	// and its update fails.
	if err := cloud.PutShare(context.Background(), out["cloud_system_id"].Value, Share{AccountEmail: "manager@example.com", AccessRole: "viewer", IsEnabled: true}); err != nil {
		t.Fatal(err)
	}
	e.world.FailNext(nxfake.Failure{Method: "POST", Path: "/users", Status: 503, Code: "serviceUnavailable", Text: "later"})
	outs := map[string]state.Outputs{"store-1": out}
	_, saved, err := apply(t, share, call{outs: outs})
	if !providers.IsRetryable(err) {
		t.Fatalf("first attempt: %v", err)
	}
	if saved[providers.AdoptedOutput].Value != "true" {
		t.Fatalf("the failed attempt did not record the adoption: %v", saved)
	}
	x := exec(share, call{attempt: 2, prior: saved, outs: outs})
	if _, err := share.Action.Apply(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	if !x.Adopted {
		t.Error("the second attempt forgot that the share was adopted")
	}
}
