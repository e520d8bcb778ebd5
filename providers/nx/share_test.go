package nx

import (
	"context"
	"strings"
	"testing"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/nx/nxfake"
	"provision/state"
)

const sharesPlan = onePlan + `nx_shares:
  defaults: {cloud: nxcloud}
  items:
    - {name: audit, system: store-1, email: Audit@Example.com, role: viewer}
    - {name: literal, cloud_system_id: "${var.literal_id}", email: lit@example.com, role: liveViewer, enabled: false}
`

// sharesEnv applies store-1 and returns the tasks built with the literal id.
func sharesEnv(t *testing.T, o nxfake.Options) (*env, map[string]*providers.Task, map[string]state.Outputs) {
	t.Helper()
	e := newEnv(t, o)
	tasks := e.build(strings.Replace(sharesPlan, `"${var.literal_id}"`, "00000000-0000-4000-8000-000000000001", 1))
	out, _, err := apply(t, tasks["store-1"], call{})
	if err != nil {
		t.Fatal(err)
	}
	id := out["cloud_system_id"].Value
	tasks = e.build(strings.Replace(sharesPlan, `"${var.literal_id}"`, id, 1))
	return e, tasks, map[string]state.Outputs{"store-1": out}
}

func TestShare_Apply_CreatesThenRerunIsNoOp(t *testing.T) {
	e, tasks, outs := sharesEnv(t, nxfake.Options{})
	id := outs["store-1"]["cloud_system_id"].Value
	for _, name := range []string{"audit", "literal", "store-1/share/manager@example.com"} {
		out, _, err := apply(t, tasks[name], call{outs: outs})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if out["email"].Value == "" || out["access_role"].Value == "" {
			t.Fatalf("%s outputs %+v", name, out)
		}
	}
	snap := e.world.Snapshot()
	if len(snap.Shares[id]) != 3 || snap.Counters.SharesCreated != 3 {
		t.Fatalf("shares %+v counters %+v", snap.Shares[id], snap.Counters)
	}
	for _, sh := range snap.Shares[id] {
		if sh.Email == "lit@example.com" && (sh.Enabled || sh.AccessRole != "liveViewer") {
			t.Errorf("share %+v", sh)
		}
	}
	for _, name := range []string{"audit", "literal", "store-1/share/manager@example.com"} {
		if _, _, err := apply(t, tasks[name], call{attempt: 2, inDoubt: true, outs: outs}); err != nil {
			t.Fatal(err)
		}
	}
	if c := e.world.Snapshot().Counters; c.SharesCreated != 3 || c.SharesUpdated != 0 {
		t.Errorf("rerun sent changes: %+v", c)
	}
}

func TestShare_Apply_UpdatesAndRemoves(t *testing.T) {
	e, tasks, outs := sharesEnv(t, nxfake.Options{})
	id := outs["store-1"]["cloud_system_id"].Value
	if _, _, err := apply(t, tasks["audit"], call{outs: outs}); err != nil {
		t.Fatal(err)
	}
	changed := e.build(strings.Replace(strings.Replace(sharesPlan, `"${var.literal_id}"`, id, 1), "email: Audit@Example.com, role: viewer", "email: Audit@Example.com, role: advancedViewer", 1))
	if _, _, err := apply(t, changed["audit"], call{attempt: 2, changed: true, outs: outs}); err != nil {
		t.Fatal(err)
	}
	if c := e.world.Snapshot().Counters; c.SharesUpdated != 1 {
		t.Errorf("role change not sent: %+v", c)
	}
	removed := e.build(strings.Replace(strings.Replace(sharesPlan, `"${var.literal_id}"`, id, 1), "email: Audit@Example.com, role: viewer", "email: Audit@Example.com, role: none", 1))
	for i := 0; i < 2; i++ {
		if _, _, err := apply(t, removed["audit"], call{attempt: 3 + i, changed: true, outs: outs}); err != nil {
			t.Fatal(err)
		}
	}
	snap := e.world.Snapshot()
	if len(snap.Shares[id]) != 0 || snap.Counters.SharesRemoved != 1 {
		t.Errorf("shares %+v counters %+v", snap.Shares[id], snap.Counters)
	}
}

func TestShare_Apply_InDoubtShareIsNotSentTwice(t *testing.T) {
	e, tasks, outs := sharesEnv(t, nxfake.Options{})
	e.world.FailNext(nxfake.Failure{Method: "POST", Path: "/users", Lose: true})
	_, _, err := apply(t, tasks["audit"], call{outs: outs})
	if err == nil || !providers.IsRetryable(err) || providers.MaybeApplied(err) {
		t.Fatalf("lost share answer: %v (an upsert is retryable and never in doubt)", err)
	}
	if _, _, err := apply(t, tasks["audit"], call{attempt: 2, outs: outs}); err != nil {
		t.Fatal(err)
	}
	if c := e.world.Snapshot().Counters; c.SharesCreated != 1 || c.SharesUpdated != 0 {
		t.Errorf("counters %+v", c)
	}
}

func TestShare_Apply_ErrorsAreClear(t *testing.T) {
	for _, tc := range []struct {
		name      string
		f         nxfake.Failure
		want      string
		retryable bool
		wait      time.Duration
	}{
		{"404 notFound", nxfake.Failure{Method: "GET", Path: "/users", Times: 2, Status: 404, Code: "notFound", Text: "System not found"}, "HTTP 404 notFound: System not found", false, 0},
		{"403 forbidden", nxfake.Failure{Method: "POST", Path: "/users", Status: 403, Code: "forbidden", Text: "Not allowed"}, "HTTP 403 forbidden: Not allowed", false, 0},
		{"403 accountBlocked", nxfake.Failure{Method: "POST", Path: "/users", Status: 403, Code: "accountBlocked", Text: "Account is blocked"}, "accountBlocked: Account is blocked", false, 0},
		{"400 invalidFormat", nxfake.Failure{Method: "POST", Path: "/users", Status: 400, Code: "invalidFormat", Text: "bad email"}, "HTTP 400 invalidFormat: bad email", false, 0},
		{"409 updateConflict", nxfake.Failure{Method: "POST", Path: "/users", Status: 409, Code: "updateConflict", Text: "conflict"}, "HTTP 409 updateConflict", false, 0},
		{"503 retryLater", nxfake.Failure{Method: "POST", Path: "/users", Status: 503, Code: "retryLater", Text: "later", RetryAfter: 3 * time.Second}, "HTTP 503 retryLater: later", true, 3 * time.Second},
		{"429 tooManyRequests", nxfake.Failure{Method: "POST", Path: "/users", Status: 429, Code: "tooManyRequests", Text: "slow down", RetryAfter: time.Second}, "HTTP 429 tooManyRequests", true, time.Second},
		{"403 tooManyRequests", nxfake.Failure{Method: "POST", Path: "/users", Status: 403, Code: "tooManyRequests", Text: "slow down"}, "HTTP 403 tooManyRequests", true, 0},
		{"500 dbError", nxfake.Failure{Method: "POST", Path: "/users", Status: 500, Code: "dbError", Text: "db"}, "HTTP 500 dbError: db", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, tasks, outs := sharesEnv(t, nxfake.Options{})
			e.world.FailNext(tc.f)
			_, _, err := apply(t, tasks["audit"], call{outs: outs})
			if err == nil || !strings.Contains(err.Error(), tc.want) || providers.IsRetryable(err) != tc.retryable || providers.RetryAfter(err) != tc.wait {
				t.Fatalf("err = %v (retryable %v, after %v), want %q retryable %v after %v", err, providers.IsRetryable(err), providers.RetryAfter(err), tc.want, tc.retryable, tc.wait)
			}
		})
	}
}

func TestShare_Apply_AlreadyExistsAnswerIsAdopted(t *testing.T) {
	e, tasks, outs := sharesEnv(t, nxfake.Options{})
	e.world.FailNext(nxfake.Failure{Method: "POST", Path: "/users", Applied: true, Status: 403, Code: "alreadyExists", Text: "Already shared"})
	if _, _, err := apply(t, tasks["audit"], call{outs: outs}); err != nil {
		t.Fatal(err)
	}
}

func TestShare_Apply_OwnerCannotBeShared(t *testing.T) {
	e, _, outs := sharesEnv(t, nxfake.Options{})
	id := outs["store-1"]["cloud_system_id"].Value
	tasks := e.build(strings.Replace(strings.Replace(sharesPlan, `"${var.literal_id}"`, id, 1), "email: Audit@Example.com", "email: "+account, 1))
	_, _, err := apply(t, tasks["audit"], call{outs: outs})
	if err == nil || !strings.Contains(err.Error(), "owns cloud system") {
		t.Fatalf("err = %v", err)
	}
}

func TestShare_Apply_SystemWithoutOutputFails(t *testing.T) {
	_, tasks, _ := sharesEnv(t, nxfake.Options{})
	_, _, err := apply(t, tasks["audit"], call{outs: map[string]state.Outputs{}})
	if err == nil || !strings.Contains(err.Error(), "store-1 has no cloud_system_id output") {
		t.Fatalf("err = %v", err)
	}
}

func TestShare_Probe(t *testing.T) {
	_, tasks, outs := sharesEnv(t, nxfake.Options{})
	pr := tasks["audit"].Action.(providers.Prober)
	x := &providers.Exec{Task: tasks["audit"], Lookup: func(r plan.Ref) (string, error) { return outs[r.Item][r.Key].Value, nil }}
	if ok, _, err := pr.Probe(context.Background(), x); err != nil || ok {
		t.Fatalf("before: %v %v", ok, err)
	}
	if _, _, err := apply(t, tasks["audit"], call{outs: outs}); err != nil {
		t.Fatal(err)
	}
	if ok, detail, err := pr.Probe(context.Background(), x); err != nil || !ok || detail != "shared as viewer" {
		t.Fatalf("after: %v %q %v", ok, detail, err)
	}
}
