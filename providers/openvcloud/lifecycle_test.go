package openvcloud

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"provision/providers"
	"provision/providers/lifecycletest"
	"provision/providers/openvcloud/ovcfake"
	"provision/state"
)

const lifePlan = `version: 1
name: ovc-test
vars: {url: "http://127.0.0.1:1"}
endpoints:
  ovc: {kind: openvcloud, url: "${var.url}", auth: {client_id: app, client_secret: "${env.OVC_SECRET}", token_url: "${var.url}/v1/oauth/access_token"}}
openvcloud_cloudspaces:
  defaults: {endpoint: ovc, account_id: 42, location: be-gen-1}
  items:
    - {name: space-a, async: true}
    - {name: space-b, async: false, max_cpu_capacity: 8}
`

// loseOnce answers the first request whose path ends with suffix by applying it and
// hanging up (the change happened, the answer is lost).
type loseOnce struct {
	h      http.Handler
	suffix string
	mu     sync.Mutex
	done   bool
}

func (l *loseOnce) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	hit := !l.done && strings.HasSuffix(r.URL.Path, l.suffix)
	if hit {
		l.done = true
	}
	l.mu.Unlock()
	if !hit {
		l.h.ServeHTTP(w, r)
		return
	}
	l.h.ServeHTTP(httptest.NewRecorder(), r)
	panic(http.ErrAbortHandler)
}

func (l *loseOnce) landed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done
}

func buildAll(t *testing.T, url string) (*providers.Build, map[string]*providers.Task, []*providers.Task) {
	t.Helper()
	pl, err := loadPlan(t, lifePlan, url)
	if err != nil {
		t.Fatal(err)
	}
	b := &providers.Build{Plan: pl, Clients: &providers.Clients{}}
	byID := map[string]*providers.Task{}
	var all []*providers.Task
	for _, it := range pl.Items {
		ts, err := CloudSpaceKind{}.Build(b, it)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range ts {
			fast(task)
			byID[task.ID] = task
			all = append(all, task)
		}
	}
	return b, byID, all
}

// live lists the spaces that exist (neither DELETED nor DESTROYED).
func live(s *ovcfake.Server) []string {
	var out []string
	for _, sp := range s.Snapshot().Spaces {
		if !gone(sp.Status) {
			out = append(out, sp.Name)
		}
	}
	return out
}

func TestLifecycle_ApplyThenDestroy_LeavesNoSpace(t *testing.T) {
	for _, lose := range []string{"", "cloudspaces/delete"} {
		t.Run("lost answer on "+lose, func(t *testing.T) {
			srv := ovcfake.New(fakeOptions())
			lossy := &loseOnce{h: srv, suffix: lose}
			if lose == "" {
				lossy.done = true
			}
			ts := httptest.NewServer(lossy)
			t.Cleanup(ts.Close)
			before := live(srv)
			b, byID, tasks := buildAll(t, ts.URL)
			path := filepath.Join(t.TempDir(), "state.db")
			if res := lifecycletest.Apply(t, tasks, path, ""); !res.OK() {
				t.Fatalf("apply: %+v", res)
			}
			if l := live(srv); len(l) != 2 {
				t.Fatalf("live after apply: %v", l)
			}
			saved := filepath.Join(t.TempDir(), "saved.db")
			lifecycletest.CopyFile(t, path, saved)
			reg := providers.NewRegistry(Kinds()...)
			ocs := lifecycletest.Destroy(t, path, lifecycletest.Options{Registry: reg, Build: b, Planned: byID})
			if f := lifecycletest.Failed(ocs); len(f) > 0 {
				t.Fatal(f)
			}
			if !lossy.landed() {
				t.Fatal("the lost answer never happened")
			}
			retried := false
			for _, oc := range ocs {
				retried = retried || oc.Attempts > 1
			}
			if retried != (lose != "") {
				t.Errorf("retried: %v (%+v)", retried, ocs)
			}
			if after := live(srv); !reflect.DeepEqual(after, before) {
				t.Fatalf("live spaces after destroy: %v, before apply: %v", after, before)
			}
			for _, sp := range srv.Snapshot().Spaces {
				if sp.Status != "DESTROYED" {
					t.Errorf("space %s is %s, want DESTROYED (deleted permanently)", sp.Name, sp.Status)
				}
			}
			deletes := srv.Snapshot().Counters.Deletes
			// Repeated from the same records, without the plan: nothing left to do.
			ocs = lifecycletest.Destroy(t, saved, lifecycletest.Options{Registry: reg, Build: b})
			if f := lifecycletest.Failed(ocs); len(f) > 0 {
				t.Fatal(f)
			}
			if n := srv.Snapshot().Counters.Deletes; n != deletes {
				t.Errorf("a repeated destroy deleted again: %d deletes, was %d", n, deletes)
			}
		})
	}
}

func TestLifecycle_Destroy_InDoubtCreateIsFoundByName(t *testing.T) {
	srv, url := newFake(t, nil)
	b, byID, _ := buildAll(t, url)
	task := byID["space-b"]
	if _, _, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{}); err != nil {
		t.Fatal(err)
	}
	mk := func(inDoubt bool) *providers.Deletion {
		x := lifecycletest.Exec(task, lifecycletest.Attempt{Attempt: 2, InDoubt: inDoubt})
		x.Task = &providers.Task{ID: task.ID, Kind: Section, Endpoint: "ovc"}
		return &providers.Deletion{Exec: x, Planned: task}
	}
	// Nothing recorded and not in doubt: nothing identified, nothing deleted.
	if err := (CloudSpaceKind{}).Delete(context.Background(), b, mk(false)); err != nil {
		t.Fatal(err)
	}
	if l := live(srv); len(l) != 1 {
		t.Fatalf("live: %v", l)
	}
	if err := (CloudSpaceKind{}).Delete(context.Background(), b, mk(true)); err != nil {
		t.Fatal(err)
	}
	if l := live(srv); len(l) != 0 {
		t.Fatalf("live after the in-doubt delete: %v", l)
	}
}

// A run stops while its async create is still queued on the server (the task GUID
// is checkpointed, the space not there yet); a destroy right after must not take
// "not listed" for "not made": it waits for the task and deletes what it made, so no
// space appears once the destroy is done.
func TestLifecycle_Destroy_WaitsForAnInterruptedCreateTask(t *testing.T) {
	srv, url := newFake(t, func(o *ovcfake.Options) { o.AsyncDelay = 300 * time.Millisecond })
	b, byID, _ := buildAll(t, url)
	task := byID["space-a"] // async: true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{Ctx: ctx, OnSave: func(o state.Outputs) {
		if o[OutTaskGUID].Value != "" {
			cancel() // the run stops right after the checkpoint
		}
	}})
	if !errors.Is(err, context.Canceled) || saved[OutTaskGUID].Value == "" || saved[OutCloudSpaceID].Value != "" {
		t.Fatalf("err = %v, checkpoints %v", err, saved)
	}
	if l := live(srv); len(l) != 0 {
		t.Fatalf("the create ran before the destroy: %v (the test needs it still queued)", l)
	}
	x := lifecycletest.Exec(task, lifecycletest.Attempt{Attempt: 2, InDoubt: true, Prior: saved})
	x.Task = &providers.Task{ID: task.ID, Kind: Section, Endpoint: "ovc"}
	if err := (CloudSpaceKind{}).Delete(context.Background(), b, &providers.Deletion{Exec: x, Planned: task}); err != nil {
		t.Fatal(err)
	}
	srv.Settle() // anything still queued on the server runs now
	if l := live(srv); len(l) != 0 {
		t.Fatalf("live after the destroy: %v, want none", l)
	}
}

// A run dies between an async create's answer and the checkpoint of its task id:
// the create is queued on the server, no space of its name is listed yet. A destroy
// then must not forget the record while the create may still run (a space would
// appear that no record stands for): it keeps the record and says when to run
// again, and that time does not move with later attempts. Once the space is listed
// it is deleted; once the window is over, "not listed" means "not made".
func TestLifecycle_Destroy_KeepsTheRecordWhileAnUnrecordedCreateMayBeQueued(t *testing.T) {
	srv := ovcfake.New(func() ovcfake.Options { o := fakeOptions(); o.AsyncDelay = time.Hour; return o }())
	lossy := &loseOnce{h: srv, suffix: "cloudspaces/create"}
	ts := httptest.NewServer(lossy)
	t.Cleanup(ts.Close)
	b, byID, _ := buildAll(t, ts.URL)
	task := byID["space-a"] // async: true
	sent := time.Now()
	_, saved, err := lifecycletest.ApplyOnce(t, task, lifecycletest.Attempt{})
	if err == nil || !lossy.landed() || saved[OutTaskGUID].Value != "" {
		t.Fatalf("err = %v, checkpoints %v: want the create's answer lost, no task id", err, saved)
	}
	if l := live(srv); len(l) != 0 {
		t.Fatalf("the create ran: %v (the test needs it still queued)", l)
	}
	del := func(since time.Time, prior state.Outputs) (state.Outputs, error) {
		t.Helper()
		x := lifecycletest.Exec(task, lifecycletest.Attempt{Attempt: 2, InDoubt: true, InDoubtSince: since, Prior: prior})
		x.Task = &providers.Task{ID: task.ID, Kind: Section, Endpoint: "ovc"}
		kept := state.Outputs{}
		x.CheckpointFunc = func(o state.Outputs) error {
			for k, v := range o {
				kept[k] = v
			}
			return nil
		}
		return kept, (CloudSpaceKind{}).Delete(context.Background(), b, &providers.Deletion{Exec: x, Planned: task})
	}
	kept, err := del(sent, saved)
	if err == nil || !strings.Contains(err.Error(), "may still be queued") || !strings.Contains(err.Error(), "run destroy again after") {
		t.Fatalf("destroy while the create may be queued: err = %v, want the record kept", err)
	}
	until, perr := time.Parse(time.RFC3339, kept[outQueuedUntil].Value)
	if perr != nil || until.Before(sent.Add(queuedCreateWindow)) || until.After(sent.Add(queuedCreateWindow+2*time.Second)) {
		t.Fatalf("checkpointed bound %q (%v), want about %v", kept[outQueuedUntil].Value, perr, sent.Add(queuedCreateWindow))
	}
	if !strings.Contains(err.Error(), until.Format(time.RFC3339)) {
		t.Errorf("the error does not say when to run again (%s): %v", until.Format(time.RFC3339), err)
	}
	// A later attempt (its own attempt started later) keeps the first bound.
	prior := state.Outputs{outQueuedUntil: kept[outQueuedUntil]}
	kept, err = del(time.Now().Add(time.Minute), prior)
	if err == nil || !strings.Contains(err.Error(), until.Format(time.RFC3339)) || len(kept) != 0 {
		t.Errorf("a later attempt: err = %v, checkpoints %v, want the bound %s kept", err, kept, until.Format(time.RFC3339))
	}
	// The queued create runs: the space is listed, and deleted.
	srv.Settle()
	if l := live(srv); len(l) != 1 {
		t.Fatalf("live after the queued create ran: %v", l)
	}
	if _, err := del(sent, prior); err != nil {
		t.Fatal(err)
	}
	srv.Settle()
	if l := live(srv); len(l) != 0 {
		t.Fatalf("live after the destroy: %v, want none", l)
	}
	// Past the window, nothing listed means nothing made: the record may go.
	if _, err := del(sent.Add(-queuedCreateWindow-time.Second), saved); err != nil {
		t.Errorf("destroy past the window: %v", err)
	}
	past := state.Outputs{outQueuedUntil: state.Plain(time.Now().Add(-time.Second).UTC().Format(time.RFC3339))}
	if _, err := del(time.Now(), past); err != nil {
		t.Errorf("destroy past the recorded bound: %v", err)
	}
	// A synchronous create answers once the space exists: no window.
	x := lifecycletest.Exec(byID["space-b"], lifecycletest.Attempt{Attempt: 2, InDoubt: true, InDoubtSince: time.Now()})
	x.Task = &providers.Task{ID: "space-b", Kind: Section, Endpoint: "ovc"}
	if err := (CloudSpaceKind{}).Delete(context.Background(), b, &providers.Deletion{Exec: x, Planned: byID["space-b"]}); err != nil {
		t.Errorf("destroy of an in-doubt synchronous create: %v", err)
	}
}

func TestLifecycle_Adoption_OnlyWhenTheFirstCreateSaysItExists(t *testing.T) {
	srv, url := newFake(t, nil)
	_, byID, _ := buildAll(t, url)
	for _, name := range []string{"space-a", "space-b"} {
		task := byID[name]
		x := lifecycletest.Exec(task, lifecycletest.Attempt{})
		if _, err := task.Action.Apply(context.Background(), x); err != nil {
			t.Fatal(err)
		}
		if x.Adopted {
			t.Errorf("%s: a space the task created is marked adopted", name)
		}
		// The state is lost: the first attempt of a new run finds it (409).
		x = lifecycletest.Exec(task, lifecycletest.Attempt{})
		if _, err := task.Action.Apply(context.Background(), x); err != nil {
			t.Fatal(err)
		}
		if !x.Adopted {
			t.Errorf("%s: an existing space taken over on the first attempt is not marked adopted", name)
		}
		// In doubt, the space found is the task's own.
		x = lifecycletest.Exec(task, lifecycletest.Attempt{Attempt: 2, InDoubt: true})
		if _, err := task.Action.Apply(context.Background(), x); err != nil {
			t.Fatal(err)
		}
		if x.Adopted {
			t.Errorf("%s: an in-doubt lookup is marked adopted", name)
		}
	}
	if l := live(srv); len(l) != 2 {
		t.Fatalf("live: %v", l)
	}
}

func TestLifecycle_Drift_ReportsChangesMadeInTheCloud(t *testing.T) {
	srv, url := newFake(t, nil)
	_, byID, tasks := buildAll(t, url)
	path := filepath.Join(t.TempDir(), "state.db")
	if res := lifecycletest.Apply(t, tasks, path, ""); !res.OK() {
		t.Fatalf("apply: %+v", res)
	}
	_, _, fresh := buildAll(t, url)
	diffs, errs := lifecycletest.Drift(t, path, "", fresh)
	if len(errs) > 0 || len(diffs) != 2 {
		t.Fatalf("diffs %v errs %v", diffs, errs)
	}
	for id, d := range diffs {
		if len(d) > 0 {
			t.Errorf("%s: drift %+v on an untouched space", id, d)
		}
	}
	// By hand: space-b renamed and given 2 CPUs, space-a deleted.
	c := byID["space-a"].Action.(*cloudSpace).c
	ids := map[string]int{}
	for _, sp := range srv.Snapshot().Spaces {
		ids[sp.Name] = sp.ID
	}
	ctx := context.Background()
	if err := c.call(ctx, "cloudspaces/update", map[string]any{"cloudspaceId": ids["space-b"], "name": "space-b-old", "maxCPUCapacity": 2}, true, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.call(ctx, "cloudspaces/delete", map[string]any{"cloudspaceId": ids["space-a"]}, true, nil); err != nil {
		t.Fatal(err)
	}
	_, _, fresh = buildAll(t, url)
	diffs, errs = lifecycletest.Drift(t, path, "", fresh)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []providers.FieldDiff{{Field: "cloudspace_name", Want: "space-b", Got: "space-b-old"}, {Field: "max_cpu_capacity", Want: "8", Got: "2"}}
	if !reflect.DeepEqual(diffs["space-b"], want) {
		t.Errorf("space-b: %+v, want %+v", diffs["space-b"], want)
	}
	if d := diffs["space-a"]; len(d) != 1 || d[0].Field != "" || !strings.HasPrefix(d[0].Got, "(missing") {
		t.Errorf("space-a: %+v, want missing", d)
	}
}
