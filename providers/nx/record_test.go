package nx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"provision/plan"
	"provision/providers"
	"provision/providers/nx/nxfake"
	"provision/state"
)

// Tests of the behaviours the public record shows and the fake now follows
// (API-NOTES section 6): partners lists paged with next and system_state, 403 for
// removed systems, resultCode in 2xx answers, organizationId from VMS 6.1, and
// the ids the cloud echoes back in share lists.

// orgStores is an organization plan of n factory-new stores (server 10.0.0.i:7001).
func orgStores(n int) string {
	var b strings.Builder
	b.WriteString(`version: 1
name: nx-test
vars: {cloud_url: "http://127.0.0.1:1"}
endpoints:
  nxcloud: {kind: nx-cloud, url: "${var.cloud_url}", auth: {username: ops@example.com, password: "${env.NX_CLOUD_PASSWORD}"}}
nx_systems:
  defaults:
    cloud: nxcloud
    organization: org-7
    admin: {password: "${env.NX_ADMIN_PASSWORD}"}
    local_password: ${env.NX_ADMIN_PASSWORD}
  items:
`)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "    - {name: store-%d, url: \"https://10.0.0.%d:7001\"}\n", i, i)
	}
	return b.String()
}

func orgWanted(n int) map[string]string {
	want := map[string]string{}
	for i := 1; i <= n; i++ {
		want[fmt.Sprintf("store-%d", i)] = fmt.Sprintf("10.0.0.%d:7001", i)
	}
	return want
}

// TestSystem_Apply_OrganizationLostCreateIsReconciledOnAnyPage: five stores of the
// organization are connected, then the create answer of a sixth is lost. The fake
// pages its list two at a time, so the leftover system sits on the third page and
// reports system_state, not status. The next attempt follows next to that page,
// removes the leftover (its auth key is unknown) and binds again: no orphan, no
// duplicate.
func TestSystem_Apply_OrganizationLostCreateIsReconciledOnAnyPage(t *testing.T) {
	for _, version := range []string{"6.0.1.39873", "6.1.0.40000"} {
		t.Run("server "+version, func(t *testing.T) {
			e := newEnv(t, nxfake.Options{Organizations: []string{"org-7"}, PageSize: 2, ServerVersion: version, LogRequests: true})
			tasks := e.build(orgStores(6))
			for i := 1; i <= 5; i++ {
				if _, _, err := apply(t, tasks[fmt.Sprintf("store-%d", i)], call{}); err != nil {
					t.Fatalf("store-%d: %v", i, err)
				}
			}
			e.world.FailNext(nxfake.Failure{Method: "POST", Path: "/partners/api/v3/cloud_systems/", Lose: true})
			_, saved, err := apply(t, tasks["store-6"], call{})
			if err == nil || !providers.MaybeApplied(err) {
				t.Fatalf("lost create: %v, want a maybe-applied error", err)
			}
			e.world.ResetRequests()
			if _, _, err := apply(t, tasks["store-6"], call{attempt: 2, inDoubt: true, prior: saved}); err != nil {
				t.Fatalf("resume: %v", err)
			}
			noDamage(t, e.world, orgWanted(6))
			pages := 0
			for _, r := range e.world.Requests() {
				if strings.HasPrefix(r, "GET /partners/api/v2/organizations/org-7/cloud_systems/") {
					pages++
				}
			}
			if c := e.world.Snapshot().Counters; c.Binds != 7 || c.Deletes != 1 || pages != 3 {
				t.Errorf("binds %d deletes %d (want 7 and 1), list pages read %d (want 3)", c.Binds, c.Deletes, pages)
			}
		})
	}
}

// TestCloud_Systems_FollowsNextToTheEnd: every page is read; a next link to another
// host is refused (the token would go there).
func TestCloud_Systems_FollowsNextToTheEnd(t *testing.T) {
	e := newEnv(t, nxfake.Options{Organizations: []string{"org-7"}, PageSize: 2})
	cl := e.cloud(t, cloudPW)
	ctx := context.Background()
	var ids []string
	for i := 0; i < 5; i++ {
		s, err := cl.Bind(ctx, fmt.Sprintf("s%d", i), "default", "org-7")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	list, err := cl.Systems(ctx, "org-7")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 {
		t.Fatalf("%d systems listed, want 5", len(list))
	}
	for i, s := range list {
		if s.ID != ids[i] || s.Status != StatusNotActivated {
			t.Errorf("item %d: %+v", i, s)
		}
	}
	if _, err := cl.nextPath("https://elsewhere.example.com/partners/api/v2/organizations/org-7/cloud_systems/?page=2"); err == nil {
		t.Error("a next link to another host was accepted")
	}
}

// TestCloud_RemovedSystemIsGone: after a removal the cloud answers 403 to GET and
// DELETE; the client reads that as gone, and a delete of it succeeds.
func TestCloud_RemovedSystemIsGone(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	cl := e.cloud(t, cloudPW)
	ctx := context.Background()
	s, err := cl.Bind(ctx, "gone", "default", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	got, err := cl.System(ctx, s.ID)
	if err != nil || got != nil {
		t.Fatalf("removed system: %+v, %v; want nil, nil", got, err)
	}
	if err := cl.Delete(ctx, s.ID); err != nil {
		t.Fatalf("delete of a removed system: %v", err)
	}
}

// TestSystem_Apply_RemovedCheckpointedSystemIsBoundAgain: the system a killed run
// bound was removed meanwhile (403 now): the resume binds a new one.
func TestSystem_Apply_RemovedCheckpointedSystemIsBoundAgain(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	cl := tasks["store-1"].Action.(*systemAction).cloud
	old, err := cl.Bind(context.Background(), "store-1", "default", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Delete(context.Background(), old.ID); err != nil {
		t.Fatal(err)
	}
	prior := state.Outputs{"cloud_system_id": state.Plain(old.ID), "auth_key": state.SecretOutput(old.AuthKey), "owner": state.Plain(account)}
	out, _, err := apply(t, tasks["store-1"], call{attempt: 2, inDoubt: true, prior: prior})
	if err != nil {
		t.Fatal(err)
	}
	if out["cloud_system_id"].Value == old.ID {
		t.Fatal("adopted the removed system")
	}
	noDamage(t, e.world, map[string]string{"store-1": server1})
}

// TestCloud_ResultCodeInA2xxAnswerIsAnError: a 200 answer carrying a resultCode
// other than ok fails with that code (retryable when the code says so); "ok" passes.
func TestCloud_ResultCodeInA2xxAnswerIsAnError(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	cl := e.cloud(t, cloudPW)
	ctx := context.Background()
	if _, err := cl.Bind(ctx, "ok-code", "default", ""); err != nil {
		t.Fatalf("a bind answer with resultCode ok: %v", err)
	}
	e.world.FailNext(nxfake.Failure{Method: "POST", Path: "/cdb/systems/bind", Status: 200, Code: "notAllowedInCurrentState", Text: "account is blocked"})
	_, err := cl.Bind(ctx, "refused", "default", "")
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Code != "notAllowedInCurrentState" || pe.Status != 200 || pe.Retryable || !strings.Contains(err.Error(), "account is blocked") {
		t.Fatalf("bind: %v", err)
	}
	e.world.FailNext(nxfake.Failure{Method: "GET", Path: "/cdb/systems", Status: 200, Code: "tooManyRequests", Text: "slow down"})
	if _, err := cl.Systems(ctx, ""); !errors.As(err, &pe) || pe.Code != "tooManyRequests" || !pe.Retryable {
		t.Fatalf("list: %v", err)
	}
	if c := e.world.Snapshot().Counters; c.Binds != 1 {
		t.Errorf("binds %d, want 1", c.Binds)
	}
}

// TestSystem_Apply_OrganizationIDWhereTheServerTakesIt: on a 6.1 server the setup's
// cloud part and cloud/bind carry organizationId (the fake, like the cloud behind a
// 6.1 server, refuses an organization's system without it); a 6.0 server is never
// sent it and connects all the same.
func TestSystem_Apply_OrganizationIDWhereTheServerTakesIt(t *testing.T) {
	for _, tc := range []struct {
		version, wantOrg string
		preSetUp         bool
	}{
		{"6.1.0.40000", "org-7", false},
		{"6.1.0.40000", "org-7", true},
		{"6.0.1.39873", "", false},
		{"6.0.1.39873", "", true},
	} {
		mode := "setup"
		if tc.preSetUp {
			mode = "cloud bind"
		}
		t.Run(tc.version+" "+mode, func(t *testing.T) {
			o := nxfake.Options{Organizations: []string{"org-7"}, ServerVersion: tc.version}
			if tc.preSetUp {
				o.PreSetUp = []string{"10.0.0.1:7001"}
			}
			e := newEnv(t, o)
			tasks := e.build(orgStores(1))
			if _, _, err := apply(t, tasks["store-1"], call{}); err != nil {
				t.Fatal(err)
			}
			noDamage(t, e.world, orgWanted(1))
			srv, _ := e.world.Snapshot().Server("10.0.0.1:7001")
			if srv.CloudOrganization != tc.wantOrg {
				t.Errorf("server got organizationId %q, want %q", srv.CloudOrganization, tc.wantOrg)
			}
		})
	}
}

func TestInfo_TakesOrganizationID(t *testing.T) {
	for v, want := range map[string]bool{"6.1.0.40000": true, "6.2": true, "7.0.0.1": true, "6.0.1.39873": false, "5.1.3": false, "": false, "six": false} {
		if got := (Info{Version: v}).TakesOrganizationID(); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

// TestShare_Apply_EchoedIDsAreNoDrift: the cloud fills in vmsUserId, userRoleId and
// roleIds and lists them from then on; a fresh run (its own list read) sees the
// shares as done and writes nothing. A share whose plan names user_role_id still
// compares it.
func TestShare_Apply_EchoedIDsAreNoDrift(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	out, _, err := apply(t, tasks["store-1"], call{})
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]state.Outputs{"store-1": out}
	shares := []string{"store-1/share/manager@example.com", "store-1/share/noc@example.com"}
	for _, id := range shares {
		if _, _, err := apply(t, tasks[id], call{outs: outs}); err != nil {
			t.Fatal(err)
		}
	}
	snap := e.world.Snapshot()
	for _, sh := range snap.Shares[out["cloud_system_id"].Value] {
		if sh.VMSUserID == "" || sh.UserRoleID == "" {
			t.Fatalf("the fake did not fill in the VMS ids: %+v", sh)
		}
	}
	before := snap.Counters
	fresh := e.build(onePlan) // a new process: its own clients, its own list read
	for _, id := range shares {
		if _, _, err := apply(t, fresh[id], call{attempt: 2, outs: outs}); err != nil {
			t.Fatal(err)
		}
	}
	if after := e.world.Snapshot().Counters; after.SharesUpdated != before.SharesUpdated || after.SharesCreated != before.SharesCreated {
		t.Fatalf("echoed ids seen as drift: before %+v after %+v", before, after)
	}
	// A role id named in the plan that differs from the cloud's is drift.
	changed := e.build(strings.Replace(onePlan, "{email: noc@example.com, role: viewer}", "{email: noc@example.com, role: viewer, user_role_id: 00000000-0000-0000-0000-000000000abc}", 1))
	if _, _, err := apply(t, changed["store-1/share/noc@example.com"], call{attempt: 2, changed: true, outs: outs}); err != nil {
		t.Fatal(err)
	}
	if after := e.world.Snapshot().Counters; after.SharesUpdated != before.SharesUpdated+1 {
		t.Fatalf("a changed user_role_id was not written: %+v", after)
	}
}

// TestCloud_Systems_NextBehindAPathPrefix: an endpoint URL with a path prefix (a
// proxy, the sandbox): the next links carry the prefix, and every page is read.
func TestCloud_Systems_NextBehindAPathPrefix(t *testing.T) {
	w := nxfake.New(nxfake.Options{Accounts: map[string]string{account: cloudPW}, PageSize: 2})
	mux := http.NewServeMux()
	mux.Handle("/nxcloud/", http.StripPrefix("/nxcloud", w.Cloud()))
	ts := httptest.NewServer(mux)
	defer ts.Close()
	cl, err := NewCloud(&plan.Endpoint{Name: "nxcloud", URL: ts.URL + "/nxcloud", Auth: plan.Auth{Username: account, Password: plan.NewSecret(cloudPW)}}, plan.NewRedactor())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := cl.Bind(ctx, fmt.Sprintf("s%d", i), "default", "org-1"); err != nil {
			t.Fatal(err)
		}
	}
	list, err := cl.Systems(ctx, "org-1")
	if err != nil || len(list) != 5 {
		t.Fatalf("%d systems, %v; want 5", len(list), err)
	}
}

// TestNx_Apply_AdoptedOnlyWhenFoundBeforeAnyCreate: a system and a share that exist
// before the task's first attempt are adopted; the task's own earlier work found
// again is not.
func TestNx_Apply_AdoptedOnlyWhenFoundBeforeAnyCreate(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	tasks := e.build(onePlan)
	share := "store-1/share/noc@example.com"
	x := func(task string, c call) bool {
		t.Helper()
		task0 := tasks[task]
		adopted := false
		wrapped := *task0
		wrapped.Action = providers.ActionFunc(func(ctx context.Context, ex *providers.Exec) (state.Outputs, error) {
			o, err := task0.Action.Apply(ctx, ex)
			adopted = ex.Adopted
			return o, err
		})
		if _, _, err := apply(t, &wrapped, c); err != nil {
			t.Fatal(err)
		}
		return adopted
	}
	if x("store-1", call{}) {
		t.Error("a new bind counted as an adoption")
	}
	out, _, _ := apply(t, tasks["store-1"], call{attempt: 2})
	outs := map[string]state.Outputs{"store-1": out}
	if x(share, call{outs: outs}) {
		t.Error("a new share counted as an adoption")
	}
	fresh := e.build(onePlan) // the state file is lost: both are found on a first attempt
	tasks = fresh
	if !x("store-1", call{}) || !x(share, call{outs: outs}) {
		t.Error("objects found on a first attempt were not adopted")
	}
	if x("store-1", call{attempt: 2, inDoubt: true}) {
		t.Error("an in-doubt lookup counted as an adoption")
	}
}
