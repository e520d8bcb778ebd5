package openvcloud

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/providers/fault"
	"provision/providers/lifecycletest"
	"provision/providers/openvcloud/ovcfake"
	"provision/state"
)

// Canary secrets: they must never appear in an error or a log line.
const (
	appSecret = "ovc-app-secret-canary-3391"
	password  = "ovc-password-canary-7720"
)

const basePlan = `version: 1
name: ovc-test
vars: {url: "http://127.0.0.1:1"}
endpoints:
  ovc:
    kind: openvcloud
    url: ${var.url}
    auth: AUTH
openvcloud_cloudspaces:
  defaults: {endpoint: ovc, account_id: 42, location: be-gen-1}
  items:
    - name: space-1
      FIELDS
`

const (
	jwtAuth     = `{client_id: app, client_secret: "${env.OVC_SECRET}", token_url: "${var.url}/v1/oauth/access_token"}`
	relJWTAuth  = `{type: itsyouonline, client_id: app, client_secret: "${env.OVC_SECRET}", token_url: /v1/oauth/access_token}`
	sessionAuth = `{type: session, username: ops, password: "${env.OVC_PASSWORD}"}`
)

func fakeOptions() ovcfake.Options {
	o := ovcfake.DemoOptions()
	o.Apps = map[string]string{"app": appSecret}
	o.AppUsers = map[string]string{"app": "jdoe"}
	o.Users = map[string]string{"ops": password, "alice": "alice-pw-1234"}
	o.Locations = append(o.Locations, "nl-ams-1")
	o.Accounts[43] = "read-only"
	o.ReadOnlyAccounts = []int{43}
	o.AsyncDelay = 30 * time.Millisecond
	o.DeployDelay = time.Hour // tests that wait for DEPLOYED shorten it
	return o
}

func newFake(t *testing.T, mut func(*ovcfake.Options)) (*ovcfake.Server, string) {
	t.Helper()
	o := fakeOptions()
	if mut != nil {
		mut(&o)
	}
	srv := ovcfake.New(o)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts.URL
}

func getenv(k string) (string, bool) {
	switch k {
	case "OVC_SECRET":
		return appSecret, true
	case "OVC_PASSWORD":
		return password, true
	}
	return "", false
}

func loadPlan(t *testing.T, text, url string) (*plan.Plan, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return plan.Load(p, plan.LoadOptions{Sections: []string{Section}, EndpointKinds: []plan.EndpointKind{endpointKind}, Vars: map[string]string{"url": url}, Getenv: getenv})
}

// build loads basePlan with auth and the item's extra fields (one "key: value" per
// line) and builds the first item's task with fast polling.
func build(t *testing.T, url, auth string, fields ...string) (*providers.Task, error) {
	t.Helper()
	if len(fields) == 0 {
		fields = []string{"async: true"}
	}
	text := strings.NewReplacer("AUTH", auth, "FIELDS", strings.Join(fields, "\n      ")).Replace(basePlan)
	pl, err := loadPlan(t, text, url)
	if err != nil {
		return nil, err
	}
	ts, err := CloudSpaceKind{}.Build(&providers.Build{Plan: pl, Clients: &providers.Clients{}}, pl.Items[0])
	if err != nil {
		return nil, err
	}
	fast(ts[0])
	return ts[0], nil
}

func fast(t *providers.Task) {
	c := t.Action.(*cloudSpace).c
	c.PollEvery, c.PollFor = 10*time.Millisecond, 5*time.Second
}

func mustBuild(t *testing.T, url, auth string, fields ...string) *providers.Task {
	t.Helper()
	task, err := build(t, url, auth, fields...)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func checkFake(t *testing.T, srv *ovcfake.Server, spaces, creates int) ovcfake.Snapshot {
	t.Helper()
	if err := srv.Check(); err != nil {
		t.Fatal(err)
	}
	snap := srv.Snapshot()
	if len(snap.Spaces) != spaces || snap.Counters.Creates != creates {
		t.Fatalf("fake holds %d spaces after %d creates, want %d and %d: %+v", len(snap.Spaces), snap.Counters.Creates, spaces, creates, snap)
	}
	return snap
}

func TestCloudSpace_Apply_CreatesSpace(t *testing.T) {
	for _, tc := range []struct {
		name, auth string
		fields     []string
		tokenJSON  bool
		deploy     time.Duration
		wantStatus string
		wantAccess string
	}{
		{name: "itsyouonline async", auth: jwtAuth, fields: []string{"async: true"}, wantStatus: "VIRTUAL", wantAccess: "jdoe@itsyouonline"},
		{name: "itsyouonline sync", auth: jwtAuth, fields: []string{"async: false"}, wantStatus: "VIRTUAL", wantAccess: "jdoe@itsyouonline"},
		{name: "token answered as JSON", auth: jwtAuth, tokenJSON: true, wantStatus: "VIRTUAL", wantAccess: "jdoe@itsyouonline"},
		{name: "token url on the endpoint", auth: relJWTAuth, wantStatus: "VIRTUAL", wantAccess: "jdoe@itsyouonline"},
		{name: "session async", auth: sessionAuth, fields: []string{"async: true"}, wantStatus: "VIRTUAL", wantAccess: "ops"},
		{name: "session sync", auth: sessionAuth, fields: []string{"async: false"}, wantStatus: "VIRTUAL", wantAccess: "ops"},
		{name: "wait until deployed", auth: jwtAuth, fields: []string{"wait_deployed: true"}, deploy: 60 * time.Millisecond, wantStatus: "DEPLOYED", wantAccess: "jdoe@itsyouonline"},
		{name: "every field", auth: sessionAuth, fields: []string{"cloudspace_name: shop-7", "access: alice", "max_memory_capacity: 1.5", "max_vdisk_capacity: 100",
			"max_cpu_capacity: 4", "max_network_peer_transfer: 50", "max_num_public_ip: 2", "external_network_id: 1", "allowed_vm_sizes: [1, 2]",
			"private_network: 10.20.0.0/16", "type: vgw"}, wantStatus: "VIRTUAL", wantAccess: "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, url := newFake(t, func(o *ovcfake.Options) {
				o.TokenAsJSON = tc.tokenJSON
				if tc.deploy > 0 {
					o.DeployDelay = tc.deploy
				}
			})
			task := mustBuild(t, url, tc.auth, tc.fields...)
			out, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
			if err != nil {
				t.Fatal(err)
			}
			snap := checkFake(t, srv, 1, 1)
			sp := snap.Spaces[0]
			if out[OutCloudSpaceID].Value == "" || saved[OutCloudSpaceID].Value != out[OutCloudSpaceID].Value || out[OutStatus].Value != tc.wantStatus {
				t.Fatalf("outputs %v, checkpoints %v", out, saved)
			}
			async := !strings.Contains(strings.Join(tc.fields, " "), "async: false")
			if async != (saved[OutTaskGUID].Value != "") || out[OutTaskGUID] != saved[OutTaskGUID] {
				t.Errorf("task_guid checkpoint %q output %q (async %v)", saved[OutTaskGUID].Value, out[OutTaskGUID].Value, async)
			}
			if async != (snap.Counters.AsyncCalls == 1) {
				t.Errorf("async calls %d", snap.Counters.AsyncCalls)
			}
			if sp.Access != tc.wantAccess || sp.Location != "be-gen-1" || sp.AccountID != 42 {
				t.Errorf("space %+v", sp)
			}
			if tc.name == "every field" {
				want := ovcfake.Limits{Memory: 1.5, VDisk: 100, CPU: 4, NetworkPeer: 50, PublicIPs: 2}
				if sp.Name != "shop-7" || sp.Limits != want || sp.PrivateNetwork != "10.20.0.0/16" || sp.Type != "vgw" || len(sp.AllowedVMSizes) != 2 {
					t.Errorf("space %+v", sp)
				}
			} else if sp.Name != "space-1" || sp.Limits.CPU != -1 || sp.Limits.Memory != -1 || sp.PrivateNetwork != DefaultPrivateNetwork || sp.Type != "routeros" {
				t.Errorf("defaults not applied: %+v", sp)
			}
		})
	}
}

func TestCloudSpace_Apply_RerunIsNoOp(t *testing.T) {
	for _, async := range []string{"async: true", "async: false"} {
		t.Run(async, func(t *testing.T) {
			srv, url := newFake(t, nil)
			task := mustBuild(t, url, jwtAuth, async)
			out, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range []lifecycletest.Attempt{
				{Attempt: 2, Prior: saved},                                          // done before, rerun
				{Attempt: 2, InDoubt: true, Prior: saved},                           // crashed after the id checkpoint
				{Attempt: 3, InDoubt: true},                                         // state lost: lookup by name
				{Attempt: 2, Prior: state.Outputs{OutTaskGUID: saved[OutTaskGUID]}}, // only the GUID survived
			} {
				again, _, err := lifecycletest.ApplyOnce(t, task, o)
				if err != nil {
					t.Fatalf("%+v: %v", o, err)
				}
				if again[OutCloudSpaceID] != out[OutCloudSpaceID] {
					t.Fatalf("rerun gave %v, first run %v", again, out)
				}
			}
			snap := checkFake(t, srv, 1, 1)
			if snap.Counters.Updates != 0 {
				t.Errorf("a rerun with the same spec updated the space %d times", snap.Counters.Updates)
			}
		})
	}
}

func TestCloudSpace_Apply_AdoptsExistingByName(t *testing.T) {
	for _, async := range []string{"async: true", "async: false"} {
		t.Run(async, func(t *testing.T) {
			srv, url := newFake(t, nil)
			// Another run (or a person) created the space already.
			if _, _, err := lifecycletest.ApplyOnce(t, mustBuild(t, url, jwtAuth), lifecycletest.Attempt{}); err != nil {
				t.Fatal(err)
			}
			out, _, err := lifecycletest.ApplyOnce(t, mustBuild(t, url, sessionAuth, async), lifecycletest.Attempt{})
			if err != nil {
				t.Fatal(err)
			}
			snap := checkFake(t, srv, 1, 1)
			if snap.Counters.Conflicts != 1 || out[OutCloudSpaceID].Value == "" {
				t.Fatalf("conflicts %d, outputs %v", snap.Counters.Conflicts, out)
			}
		})
	}
}

func TestCloudSpace_Apply_RefusesSpaceInOtherLocation(t *testing.T) {
	for _, o := range []lifecycletest.Attempt{{}, {Attempt: 2, InDoubt: true}} {
		srv, url := newFake(t, nil)
		if _, _, err := lifecycletest.ApplyOnce(t, mustBuild(t, url, jwtAuth, "location: nl-ams-1"), lifecycletest.Attempt{}); err != nil {
			t.Fatal(err)
		}
		_, _, err := lifecycletest.ApplyOnce(t, mustBuild(t, url, jwtAuth), o)
		if err == nil || !strings.Contains(err.Error(), "refusing to adopt") || providers.IsRetryable(err) {
			t.Fatalf("err = %v, want a permanent refusal", err)
		}
		checkFake(t, srv, 1, 1)
	}
}

// A create is applied by the server and its answer lost: the next attempt, in
// doubt, must adopt the space instead of creating a second one.
func TestCloudSpace_Apply_AdoptsInDoubtCreate(t *testing.T) {
	for _, tc := range []struct{ name, auth, async string }{
		{"async itsyouonline", jwtAuth, "async: true"},
		{"sync itsyouonline", jwtAuth, "async: false"},
		{"async session", sessionAuth, "async: true"},
		{"sync session", sessionAuth, "async: false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, url := newFake(t, nil)
			task := mustBuild(t, url, tc.auth, tc.async)
			// Fetch the credential first, so that the lost answer is the create's.
			if _, _, err := task.Action.(providers.Prober).Probe(context.Background(), &providers.Exec{Task: task, Log: zerolog.Nop()}); err != nil {
				t.Fatal(err)
			}
			srv.Faults.Set(fault.Config{LostRate: 1})
			_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
			if !providers.IsRetryable(err) || !providers.MaybeApplied(err) {
				t.Fatalf("lost create: err = %v, want retryable and maybe applied", err)
			}
			srv.Faults.Set(fault.Config{})
			if srv.Snapshot().Counters.Creates+srv.Snapshot().RunningTasks != 1 {
				t.Fatalf("the lost create was not applied: %+v", srv.Snapshot())
			}
			out, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, InDoubt: true, Prior: saved})
			if err != nil {
				t.Fatal(err)
			}
			if out[OutCloudSpaceID].Value == "" {
				t.Fatalf("outputs %v", out)
			}
			// The async create ran after the lookup: the second create's task fails
			// with "already exists" and the space is adopted.
			checkFake(t, srv, 1, 1)
		})
	}
}

// The process dies right after the task GUID is checkpointed: the next run polls the
// same task and never sends a second create.
func TestCloudSpace_Apply_ResumesCheckpointedTask(t *testing.T) {
	srv, url := newFake(t, func(o *ovcfake.Options) { o.AsyncDelay = 150 * time.Millisecond })
	task := mustBuild(t, url, jwtAuth)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Ctx: ctx, OnSave: func(o state.Outputs) {
		if o[OutTaskGUID].Value != "" {
			cancel() // "crash" right after the checkpoint
		}
	}})
	if !errors.Is(err, context.Canceled) || saved[OutTaskGUID].Value == "" {
		t.Fatalf("err = %v, checkpoints %v", err, saved)
	}
	out, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, InDoubt: true, Prior: saved})
	if err != nil {
		t.Fatal(err)
	}
	snap := checkFake(t, srv, 1, 1)
	if snap.Counters.AsyncCalls != 1 || out[OutTaskGUID] != saved[OutTaskGUID] {
		t.Fatalf("async calls %d, outputs %v", snap.Counters.AsyncCalls, out)
	}
}

func TestCloudSpace_Apply_UnknownOrExpiredTask(t *testing.T) {
	t.Run("unknown GUID and no space: creates", func(t *testing.T) {
		srv, url := newFake(t, nil)
		out, _, err := lifecycletest.ApplyOnce(t, mustBuild(t, url, jwtAuth), lifecycletest.Attempt{Attempt: 2, InDoubt: true, Prior: state.Outputs{OutTaskGUID: state.Plain("0a0b0c0d-0000-4000-8000-000000000000")}})
		if err != nil || out[OutCloudSpaceID].Value == "" {
			t.Fatalf("out %v err %v", out, err)
		}
		checkFake(t, srv, 1, 1)
	})
	t.Run("expired result and a space: adopts", func(t *testing.T) {
		clk := &clock{}
		srv, url := newFake(t, func(o *ovcfake.Options) { o.ResultTTL, o.Now = time.Hour, clk.Now })
		task := mustBuild(t, url, jwtAuth)
		_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
		if err != nil {
			t.Fatal(err)
		}
		clk.Jump(2 * time.Hour)
		srv.RevokeCredentials() // the JWT's exp claim is from before the jump
		if _, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, InDoubt: true, Prior: state.Outputs{OutTaskGUID: saved[OutTaskGUID]}}); err != nil {
			t.Fatal(err)
		}
		checkFake(t, srv, 1, 1)
	})
}

func TestCloudSpace_Apply_FailedTaskIsPermanentAndForgotten(t *testing.T) {
	srv, url := newFake(t, nil)
	task := mustBuild(t, url, jwtAuth, "location: mars-1")
	_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
	if err == nil || providers.IsRetryable(err) || !strings.Contains(err.Error(), "Location mars-1 does not exists") {
		t.Fatalf("err = %v, want the API's permanent message", err)
	}
	if _, ok := saved[OutTaskGUID]; !ok || saved[OutTaskGUID].Value != "" {
		t.Fatalf("the failed task's GUID must be cleared from the checkpoint: %v", saved)
	}
	checkFake(t, srv, 0, 0)
}

func TestCloudSpace_Apply_PollTimeoutIsRetryableAndResumes(t *testing.T) {
	clk := &clock{}
	srv, url := newFake(t, func(o *ovcfake.Options) { o.AsyncDelay, o.Now = time.Hour, clk.Now })
	task := mustBuild(t, url, jwtAuth)
	task.Action.(*cloudSpace).c.PollFor = 50 * time.Millisecond
	_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
	if !providers.IsRetryable(err) || !strings.Contains(err.Error(), "still running") || saved[OutTaskGUID].Value == "" {
		t.Fatalf("err = %v, checkpoints %v", err, saved)
	}
	clk.Jump(time.Hour)
	task.Action.(*cloudSpace).c.PollFor = 5 * time.Second
	if _, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, Prior: saved}); err != nil {
		t.Fatal(err)
	}
	if snap := checkFake(t, srv, 1, 1); snap.Counters.AsyncCalls != 1 {
		t.Fatalf("async calls %d, want 1", snap.Counters.AsyncCalls)
	}
}

func TestCloudSpace_Apply_RenewsExpiredCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, auth string
		revoke     bool
	}{
		{"jwt lifetime", jwtAuth, false},
		{"jwt revoked: 401", jwtAuth, true},
		{"session lifetime: 419", sessionAuth, false},
		{"session revoked: 419", sessionAuth, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, url := newFake(t, func(o *ovcfake.Options) { o.TokenLifetime, o.DeployDelay = 700*time.Millisecond, 50*time.Millisecond })
			task := mustBuild(t, url, tc.auth, "wait_deployed: true")
			out, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.revoke {
				srv.RevokeCredentials()
			} else {
				time.Sleep(time.Second)
			}
			again, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, Prior: saved})
			if err != nil {
				t.Fatalf("after expiry: %v", err)
			}
			if again[OutCloudSpaceID] != out[OutCloudSpaceID] {
				t.Fatalf("outputs %v then %v", out, again)
			}
			c := srv.Snapshot().Counters
			if c.Tokens+c.Sessions < 2 {
				t.Errorf("credentials issued %d+%d, want a renewal", c.Tokens, c.Sessions)
			}
			checkFake(t, srv, 1, 1)
		})
	}
}

func TestCloudSpace_Apply_ErrorAnswers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		auth       string
		fields     []string
		mut        func(*ovcfake.Options)
		faults     fault.Config
		want       string
		retryable  bool
		retryAfter bool
	}{
		{name: "unknown account 404", fields: []string{"account_id: 7", "async: false"}, want: "HTTP 404: Account does not exist"},
		{name: "unknown account async", fields: []string{"account_id: 7"}, want: "Account does not exist"},
		{name: "unknown location 400", fields: []string{"location: mars-1", "async: false"}, want: "HTTP 400: Location mars-1 does not exists"},
		{name: "unknown external network", fields: []string{"external_network_id: 9", "async: false"}, want: "Could not find externalnetwork with id 9"},
		{name: "read-only account 403", fields: []string{"account_id: 43", "async: false"}, want: "HTTP 403: User jdoe@itsyouonline has no create rights"},
		{name: "no external IP 503", fields: []string{"async: false"}, mut: func(o *ovcfake.Options) { o.NoExternalIPs = true }, want: "HTTP 503: No available external IP Addresses", retryable: true},
		{name: "500 answers", faults: fault.Config{ErrorRate: 1}, want: "HTTP 500", retryable: true},
		{name: "429 answers", faults: fault.Config{TooManyRate: 1, RetryAfter: 2 * time.Second}, want: "HTTP 429", retryable: true, retryAfter: true},
		{name: "wrong client secret", mut: func(o *ovcfake.Options) { o.Apps["app"] = "other" }, want: "ItsYou.online token request: HTTP 401: invalid client_id or client_secret"},
		{name: "wrong password", auth: sessionAuth, mut: func(o *ovcfake.Options) { o.Users["ops"] = "other" }, want: "session login as ops: HTTP 401: Unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, url := newFake(t, tc.mut)
			srv.Faults.Set(tc.faults)
			if tc.auth == "" {
				tc.auth = jwtAuth
			}
			var logs bytes.Buffer
			_, _, err := lifecycletest.ApplyOnce(t, mustBuild(t, url, tc.auth, tc.fields...), lifecycletest.Attempt{Log: zerolog.New(&logs).Level(zerolog.DebugLevel)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if providers.IsRetryable(err) != tc.retryable {
				t.Errorf("retryable = %v, want %v", providers.IsRetryable(err), tc.retryable)
			}
			if tc.retryAfter && providers.RetryAfter(err) != 2*time.Second {
				t.Errorf("RetryAfter = %v", providers.RetryAfter(err))
			}
			for _, s := range []string{appSecret, password, "other"} {
				if strings.Contains(err.Error(), s) || strings.Contains(logs.String(), s) {
					t.Errorf("a secret leaked: err %q, logs %q", err, logs.String())
				}
			}
			if srv.Snapshot().Counters.Creates != 0 {
				t.Errorf("a space was created")
			}
		})
	}
}

func TestCloudSpace_Apply_UpdatesChangedLimitsAndRefusesNewLocation(t *testing.T) {
	srv, url := newFake(t, nil)
	_, saved, err := lifecycletest.ApplyOnce(t, mustBuild(t, url, jwtAuth, "max_cpu_capacity: 4"), lifecycletest.Attempt{})
	if err != nil {
		t.Fatal(err)
	}
	changed := mustBuild(t, url, jwtAuth, "max_cpu_capacity: 8", "allowed_vm_sizes: [3]")
	if _, _, err := lifecycletest.ApplyOnce(t, changed, lifecycletest.Attempt{Attempt: 2, Changed: true, Prior: saved}); err != nil {
		t.Fatal(err)
	}
	snap := checkFake(t, srv, 1, 1)
	if sp := snap.Spaces[0]; snap.Counters.Updates != 1 || sp.Limits.CPU != 8 || len(sp.AllowedVMSizes) != 1 {
		t.Fatalf("updates %d, space %+v", snap.Counters.Updates, sp)
	}
	moved := mustBuild(t, url, jwtAuth, "location: nl-ams-1")
	_, _, err = lifecycletest.ApplyOnce(t, moved, lifecycletest.Attempt{Attempt: 3, Changed: true, Prior: saved})
	if err == nil || providers.IsRetryable(err) || !strings.Contains(err.Error(), "cannot be changed on an existing space") {
		t.Fatalf("err = %v", err)
	}
}

func TestCloudSpace_Apply_RecreatesDestroyedSpace(t *testing.T) {
	srv, url := newFake(t, nil)
	task := mustBuild(t, url, jwtAuth)
	_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
	if err != nil {
		t.Fatal(err)
	}
	// Someone destroyed the space; the changed item is applied again.
	c := task.Action.(*cloudSpace).c
	id := saved[OutCloudSpaceID].Value
	if err := c.call(context.Background(), "cloudspaces/delete", map[string]any{"cloudspaceId": id, "permanently": true}, true, nil); err != nil {
		t.Fatal(err)
	}
	out, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 2, Changed: true, Prior: saved})
	if err != nil || out[OutCloudSpaceID].Value == id {
		t.Fatalf("out %v err %v", out, err)
	}
	checkFake(t, srv, 2, 2)
}

func TestCloudSpace_Build_RejectsBadFields(t *testing.T) {
	for _, tc := range []struct {
		name   string
		auth   string
		fields []string
		want   []string
	}{
		{name: "unknown field", fields: []string{"acount_id: 1"}, want: []string{`unknown field "acount_id"`}},
		{name: "account and location", fields: []string{"account_id: 0", "location: ''"}, want: []string{"space-1: account_id: required", "space-1: location: required"}},
		{name: "not a CIDR", fields: []string{"private_network: 10.0.0.0/33"}, want: []string{`private_network: "10.0.0.0/33" is not an IPv4 CIDR`}},
		{name: "public network", fields: []string{"private_network: 8.8.8.0/24"}, want: []string{"private_network: \"8.8.8.0/24\" is not a private network"}},
		{name: "host bits", fields: []string{"private_network: 10.1.2.3/24"}, want: []string{"has host bits set; write the network address 10.1.2.0/24"}},
		{name: "prefix too long", fields: []string{"private_network: 10.1.2.0/31"}, want: []string{"between /8 and /30"}},
		{name: "type", fields: []string{"type: bridge"}, want: []string{`type: "bridge" must be routeros or vgw`}},
		{name: "limits", fields: []string{"max_cpu_capacity: -5", "max_memory_capacity: -0.5", "max_num_public_ip: 0"},
			want: []string{"max_cpu_capacity: -5", "max_memory_capacity: -0.5 GB", "max_num_public_ip: 0: want -1 (unlimited) or at least 1"}},
		{name: "wrong type", fields: []string{"max_cpu_capacity: lots"}, want: []string{`got string "lots", want an integer`}},
		{name: "external network", fields: []string{"external_network_id: 0"}, want: []string{"external_network_id: 0: want a positive id"}},
		{name: "vm sizes", fields: []string{"allowed_vm_sizes: [1, 1, -2]"}, want: []string{"allowed_vm_sizes: size 1 listed twice", "allowed_vm_sizes: -2"}},
		{name: "cloudspace name", fields: []string{"cloudspace_name: ' padded '"}, want: []string{"cloudspace_name: \" padded \" must be 1-128 characters"}},
		{name: "endpoint", fields: []string{"endpoint: nope"}, want: []string{`endpoint "nope": no such endpoint`}},
		{name: "session without password", auth: `{type: session, username: ops}`, want: []string{"endpoint ovc: auth.password: required for session auth"}},
		{name: "itsyouonline without secret", auth: `{client_id: app}`, want: []string{"auth.client_secret: required"}},
		{name: "no credentials", auth: `{}`, want: []string{"auth.client_id: required", "auth.client_secret: required"}},
		{name: "auth type", auth: `{type: basic, username: a, password: "${env.OVC_SECRET}"}`, want: []string{`auth.type: "basic" is not supported by openvcloud endpoints`}},
		{name: "token url", auth: `{client_id: a, client_secret: "${env.OVC_SECRET}", token_url: "ftp://x"}`, want: []string{`auth.token_url: "ftp://x" is not an http(s) URL`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.auth == "" {
				tc.auth = jwtAuth
			}
			_, err := build(t, "http://127.0.0.1:1", tc.auth, tc.fields...)
			lifecycletest.CheckBuildError(t, err, "p.yaml", tc.want, appSecret)
		})
	}
}

func TestCloudSpace_Build_FieldPositions(t *testing.T) {
	_, err := build(t, "http://127.0.0.1:1", jwtAuth, "type: bridge")
	if err == nil || !strings.Contains(err.Error(), "p.yaml:13:13: space-1: type:") {
		t.Fatalf("err = %v, want the position of the type field's value (13:13)", err)
	}
}

func TestCloudSpace_Build_HashIgnoresHowItIsCreated(t *testing.T) {
	a := mustBuild(t, "http://127.0.0.1:1", jwtAuth, "async: true")
	b := mustBuild(t, "http://127.0.0.1:1", jwtAuth, "async: false", "wait_deployed: true")
	c := mustBuild(t, "http://127.0.0.1:1", jwtAuth, "max_cpu_capacity: -1")
	d := mustBuild(t, "http://127.0.0.1:1", jwtAuth, "max_cpu_capacity: 2")
	if a.Hash != b.Hash || a.Hash != c.Hash || a.Hash == d.Hash {
		t.Fatal("hash must ignore async/wait_deployed and explicit defaults, and follow limits")
	}
}

// The example plan runs against the fake under faults, creates its ten spaces once,
// and a rerun is a no-op.
func TestCloudSpace_ExamplePlan_AppliesOnceUnderFaults(t *testing.T) {
	o := ovcfake.DemoOptions()
	o.Apps = map[string]string{ovcfake.DemoClientID: appSecret}
	o.AsyncDelay, o.DeployDelay = 20*time.Millisecond, 40*time.Millisecond
	o.Faults = fault.Config{ErrorRate: 0.1, LostRate: 0.1, DropRate: 0.05, Seed: 11}
	srv := ovcfake.New(o)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	pl, tasks := lifecycletest.ExamplePlan(t, "../../examples/plans/openvcloud.yaml", CloudSpaceKind{},
		plan.LoadOptions{Sections: []string{Section}, EndpointKinds: []plan.EndpointKind{endpointKind},
			Vars:   map[string]string{"ovc_url": ts.URL, "ovc_token_url": ts.URL + "/v1/oauth/access_token"},
			Getenv: func(k string) (string, bool) { return appSecret, k == "OVC_CLIENT_SECRET" }}, fast)
	if len(tasks) != 10 || tasks[0].ID != "store-space-01" || tasks[9].ID != "store-space-10" {
		t.Fatalf("tasks: %d, first %s", len(tasks), tasks[0].ID)
	}
	logs := lifecycletest.ApplyTwice(t, tasks, pl.Name, pl.Redactor, func() { srv.Faults.Set(fault.Config{}) })
	snap := checkFake(t, srv, 10, 10)
	for _, s := range snap.Spaces {
		if s.Status != "DEPLOYED" || s.Limits.CPU != 16 {
			t.Errorf("space %+v", s)
		}
	}
	if strings.Contains(logs, appSecret) {
		t.Error("the client secret reached the logs")
	}
}

// clock is the fakes' clock (real time; Jump moves it forward).
type clock = lifecycletest.Clock

// cloudspaces/create requires access: without one in the plan the client sends the
// authenticated user, <username>@itsyouonline from the JWT's username claim, or the
// session's user (the fake answers 400 "Param with name:access is missing."
// otherwise). TestCloudSpace_Apply_CreatesSpace checks the space's ACL; this checks
// the claim reading and that the default is not the client id.
func TestCloudSpace_DefaultAccess_FromJWTClaimOrSession(t *testing.T) {
	_, url := newFake(t, nil)
	for _, tc := range []struct{ auth, want string }{{jwtAuth, "jdoe@itsyouonline"}, {sessionAuth, "ops"}} {
		c := mustBuild(t, url, tc.auth).Action.(*cloudSpace).c
		got, err := c.DefaultAccess(context.Background())
		if err != nil || got != tc.want {
			t.Errorf("%s: DefaultAccess = %q, %v; want %q", tc.auth, got, err, tc.want)
		}
	}
	mk := func(claims string) string {
		return "eyJhbGciOiJFUzM4NCJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2ln"
	}
	for claims, want := range map[string]string{`{"username":"jdoe","exp":1}`: "jdoe", `{"azp":"app"}`: "", `{"username":"a b"}`: "", `{"username":"x@y"}`: ""} {
		if got := JWTUsername(mk(claims)); got != want {
			t.Errorf("JWTUsername(%s) = %q, want %q", claims, got, want)
		}
	}
}

// A space soft-deleted by someone else is gone: the checkpointed id is not adopted
// again, the name is not adopted either, and since a DELETED space still holds its
// name the task fails with what to do, creating nothing. Once the space is deleted
// permanently, the next attempt creates a new one.
func TestCloudSpace_Apply_NeverAdoptsDeletedSpace(t *testing.T) {
	srv, url := newFake(t, nil)
	task := mustBuild(t, url, jwtAuth)
	_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
	if err != nil {
		t.Fatal(err)
	}
	c := task.Action.(*cloudSpace).c
	id := saved[OutCloudSpaceID].Value
	if err := c.call(context.Background(), "cloudspaces/delete", map[string]any{"cloudspaceId": id}, true, nil); err != nil {
		t.Fatal(err)
	}
	for _, o := range []lifecycletest.Attempt{{Attempt: 2, Changed: true, Prior: saved}, {Attempt: 2, InDoubt: true}} {
		out, _, err := lifecycletest.ApplyOnce(t, task, o)
		if err == nil || providers.IsRetryable(err) || !strings.Contains(err.Error(), "a DELETED cloud space of that name (id "+id+")") {
			t.Fatalf("out %v err %v: want a permanent error naming the DELETED space", out, err)
		}
	}
	checkFake(t, srv, 1, 1)
	if err := c.call(context.Background(), "cloudspaces/delete", map[string]any{"cloudspaceId": id, "permanently": true}, true, nil); err != nil {
		t.Fatal(err)
	}
	out, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Attempt: 3, Prior: saved})
	if err != nil || out[OutCloudSpaceID].Value == id {
		t.Fatalf("out %v err %v", out, err)
	}
	checkFake(t, srv, 2, 2)
}

// wait_deployed stops at once, permanently, when the space it waits for is deleted.
func TestCloudSpace_Apply_WaitDeployedStopsOnDeletedSpace(t *testing.T) {
	srv, url := newFake(t, nil) // DeployDelay: an hour
	task := mustBuild(t, url, jwtAuth, "wait_deployed: true", "async: false")
	c := task.Action.(*cloudSpace).c
	c.PollFor = time.Minute
	go func() {
		// Delete the space once it exists; the waiting task must notice.
		for i := 0; i < 2000; i++ {
			if snap := srv.Snapshot(); len(snap.Spaces) == 1 {
				_ = c.call(context.Background(), "cloudspaces/delete", map[string]any{"cloudspaceId": snap.Spaces[0].ID}, true, nil)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Ctx: ctx})
	if err == nil || providers.IsRetryable(err) || !strings.Contains(err.Error(), "status is DELETED, it will not deploy") {
		t.Fatalf("err = %v", err)
	}
}

// system/task/get answers of older servers: [] while running and a single 404 right
// after the create mean "still running"; a task whose result is gone before it was
// read falls back to the lookup, which adopts the space the task created.
func TestCloudSpace_Apply_TaskAnswersOfOlderServers(t *testing.T) {
	t.Run("[] and an early 404", func(t *testing.T) {
		srv, url := newFake(t, func(o *ovcfake.Options) { o.RunningAnswer, o.EarlyTaskNotFound = "[]", true })
		out, _, err := lifecycletest.ApplyOnce(t, mustBuild(t, url, jwtAuth), lifecycletest.Attempt{})
		if err != nil || out[OutCloudSpaceID].Value != "100" {
			t.Fatalf("out %v err %v", out, err)
		}
		checkFake(t, srv, 1, 1)
	})
	t.Run("result gone before it was read", func(t *testing.T) {
		srv, url := newFake(t, func(o *ovcfake.Options) { o.ResultTTL = time.Nanosecond })
		out, saved, err := lifecycletest.ApplyOnce(t, mustBuild(t, url, jwtAuth), lifecycletest.Attempt{})
		if err != nil || out[OutCloudSpaceID].Value != "100" || saved[OutCloudSpaceID].Value != "100" {
			t.Fatalf("out %v saved %v err %v", out, saved, err)
		}
		checkFake(t, srv, 1, 1)
	})
	t.Run("a 429 while polling is waited out", func(t *testing.T) {
		srv := ovcfake.New(fakeOptions())
		var polls atomic.Int32
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Only the first system/task/get is throttled: the create went through.
			if r.URL.Path == "/restmachine/system/task/get" && polls.Add(1) == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write([]byte(`"Too many requests"`))
				return
			}
			srv.ServeHTTP(w, r)
		}))
		defer ts.Close()
		task := mustBuild(t, ts.URL, jwtAuth)
		out, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
		if err != nil || out[OutCloudSpaceID].Value != "100" {
			t.Fatalf("out %v err %v", out, err)
		}
		checkFake(t, srv, 1, 1)
	})
}
