package runner

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// fn is a test action.
type fn func(ctx context.Context, x *providers.Exec) (state.Outputs, error)

func (f fn) Apply(ctx context.Context, x *providers.Exec) (state.Outputs, error) { return f(ctx, x) }

func task(id string, deps []string, a fn) *providers.Task {
	return &providers.Task{ID: id, Kind: "test", Deps: deps, Hash: sha256.Sum256([]byte(id)), Action: a}
}

func ok() fn {
	return func(context.Context, *providers.Exec) (state.Outputs, error) { return nil, nil }
}

func openStore(t testing.TB, path string) *state.Store {
	t.Helper()
	st, err := state.Open(path, state.Options{PlanName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustGraph(t testing.TB, tasks ...*providers.Task) *Graph {
	t.Helper()
	g, err := NewGraph(tasks)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func opts() Options {
	return Options{Parallel: 4, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, Log: zerolog.Nop(), Redactor: plan.NewRedactor()}
}

func TestRunner_Run_RespectsDependencies(t *testing.T) {
	var mu sync.Mutex
	done := map[string]bool{}
	check := func(id string, deps ...string) fn {
		return func(context.Context, *providers.Exec) (state.Outputs, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, d := range deps {
				if !done[d] {
					return nil, fmt.Errorf("%s ran before its dependency %s", id, d)
				}
			}
			done[id] = true
			return nil, nil
		}
	}
	g := mustGraph(t,
		task("c", []string{"a", "b"}, check("c", "a", "b")),
		task("a", nil, check("a")),
		task("b", []string{"a"}, check("b", "a")),
		task("d", []string{"c"}, check("d", "c")),
	)
	for i := 0; i < 20; i++ { // timing-sensitive: repeat (and run under -race)
		mu.Lock()
		done = map[string]bool{}
		mu.Unlock()
		st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
		res, err := Run(context.Background(), g, st, opts())
		if err != nil || !res.OK() || res.Applied != 4 {
			t.Fatalf("run %d: res=%+v err=%v", i, res, err)
		}
	}
}

func TestRunner_Run_SkipsDependentsOfFailure(t *testing.T) {
	boom := fn(func(context.Context, *providers.Exec) (state.Outputs, error) {
		return nil, &providers.Error{Op: "POST /x", Status: 403, Message: "forbidden"}
	})
	var ranIndependent atomic.Bool
	g := mustGraph(t,
		task("root", nil, boom),
		task("child", []string{"root"}, ok()),
		task("grandchild", []string{"child"}, ok()),
		task("independent", nil, func(context.Context, *providers.Exec) (state.Outputs, error) {
			ranIndependent.Store(true)
			return nil, nil
		}),
	)
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	res, err := Run(context.Background(), g, st, opts())
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 1 || res.Skipped != 2 || res.Applied != 1 || !ranIndependent.Load() {
		t.Fatalf("res = %+v", res)
	}
	if res.Failures[0].Attempts != 1 {
		t.Errorf("a permanent 403 was attempted %d times, want 1", res.Failures[0].Attempts)
	}
	for _, s := range res.SkippedBy {
		if s.Cause != "root" {
			t.Errorf("%s skipped because of %q, want root", s.ID, s.Cause)
		}
	}
	rec, _, _ := st.Get("root")
	if rec.Status != state.Failed || !strings.Contains(rec.LastError, "forbidden") {
		t.Errorf("root record = %+v", rec)
	}
}

func TestRunner_Run_RetriesRetryableErrors(t *testing.T) {
	var calls atomic.Int32
	flaky := fn(func(_ context.Context, x *providers.Exec) (state.Outputs, error) {
		if calls.Add(1) < 3 {
			return nil, &providers.Error{Op: "GET /x", Status: 503, Retryable: true}
		}
		return state.Outputs{"id": state.Plain("42")}, nil
	})
	g := mustGraph(t, task("flaky", nil, flaky))
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	res, err := Run(context.Background(), g, st, opts())
	if err != nil || !res.OK() {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	if calls.Load() != 3 || res.Retries != 2 {
		t.Errorf("calls=%d retries=%d, want 3 and 2", calls.Load(), res.Retries)
	}
	rec, _, _ := st.Get("flaky")
	if rec.Attempts != 3 || rec.Status != state.Done || rec.Outputs["id"].Value != "42" {
		t.Errorf("record = %+v", rec)
	}
}

func TestRunner_Run_GivesUpAfterMaxAttempts(t *testing.T) {
	var calls atomic.Int32
	g := mustGraph(t, task("down", nil, func(context.Context, *providers.Exec) (state.Outputs, error) {
		calls.Add(1)
		return nil, &providers.Error{Op: "GET /x", Status: 500, Retryable: true}
	}))
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	o := opts()
	o.MaxAttempts = 3
	res, _ := Run(context.Background(), g, st, o)
	if res.Failed != 1 || calls.Load() != 3 {
		t.Fatalf("failed=%d calls=%d, want 1 and 3", res.Failed, calls.Load())
	}
}

func TestRunner_Run_ResumeSkipsDoneAndRerunsFailed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	var aCalls, bCalls atomic.Int32
	failB := atomic.Bool{}
	failB.Store(true)
	mk := func() *Graph {
		return mustGraph(t,
			task("a", nil, func(context.Context, *providers.Exec) (state.Outputs, error) { aCalls.Add(1); return nil, nil }),
			task("b", nil, func(_ context.Context, x *providers.Exec) (state.Outputs, error) {
				bCalls.Add(1)
				if failB.Load() {
					return nil, errors.New("permanent problem")
				}
				if x.Attempt != 2 {
					return nil, fmt.Errorf("attempt = %d, want 2 (counted across runs)", x.Attempt)
				}
				return nil, nil
			}),
		)
	}
	st, err := state.Open(path, state.Options{PlanName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := Run(context.Background(), mk(), st, opts())
	st.Close()
	if res.Applied != 1 || res.Failed != 1 {
		t.Fatalf("first run: %+v", res)
	}
	failB.Store(false)
	st = openStore(t, path)
	res, err = Run(context.Background(), mk(), st, opts())
	if err != nil || !res.OK() {
		t.Fatalf("second run: %+v %v", res, err)
	}
	if res.UpToDate != 1 || res.Applied != 1 || aCalls.Load() != 1 || bCalls.Load() != 2 {
		t.Errorf("res=%+v a=%d b=%d", res, aCalls.Load(), bCalls.Load())
	}
}

func TestRunner_Run_ChangedSpecIsReapplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	var changed atomic.Bool
	a := task("a", nil, func(_ context.Context, x *providers.Exec) (state.Outputs, error) {
		changed.Store(x.Changed)
		return nil, nil
	})
	st, _ := state.Open(path, state.Options{PlanName: "test"})
	if _, err := Run(context.Background(), mustGraph(t, a), st, opts()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	a.Hash = sha256.Sum256([]byte("edited"))
	st = openStore(t, path)
	res, err := Run(context.Background(), mustGraph(t, a), st, opts())
	if err != nil || res.Applied != 1 || !changed.Load() {
		t.Fatalf("res=%+v err=%v changed=%v", res, err, changed.Load())
	}
}

func TestRunner_Run_InDoubtTaskIsToldOnResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := openStore(t, path)
	h := sha256.Sum256([]byte("a"))
	// A crashed run left this: intent recorded, no result.
	crashed := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := st.Put(&state.Record{ID: "a", Hash: h, Status: state.Started, Attempts: 1, StartedAt: crashed, Outputs: state.Outputs{"handle": state.Plain("guid-1")}}); err != nil {
		t.Fatal(err)
	}
	var got providers.Exec
	g := mustGraph(t, task("a", nil, func(_ context.Context, x *providers.Exec) (state.Outputs, error) {
		got = *x
		return nil, nil
	}))
	if d := Decide("a", "test", h, mustGet(t, st, "a")); d.Verb != Retry || !d.InDoubt {
		t.Errorf("dry run decision = %+v, want retry in doubt", d)
	}
	if _, err := Run(context.Background(), g, st, opts()); err != nil {
		t.Fatal(err)
	}
	if !got.InDoubt || got.Attempt != 2 || got.Prior["handle"].Value != "guid-1" || !got.InDoubtSince.Equal(crashed) {
		t.Errorf("exec = in_doubt %v since %v attempt %d prior %v, want in doubt since %v", got.InDoubt, got.InDoubtSince, got.Attempt, got.Prior, crashed)
	}
}

func mustGet(t *testing.T, st *state.Store, id string) *state.Record {
	t.Helper()
	r, ok, err := st.Get(id)
	if err != nil || !ok {
		t.Fatalf("get %s: %v %v", id, ok, err)
	}
	return r
}

type refSpec struct {
	Path string
	Name plan.Secret
}

func TestRunner_Run_OutputsFlowAlongEdges(t *testing.T) {
	spec := &refSpec{Path: "/systems/${outputs.sys.id}/users"}
	var seen string
	user := task("user", nil, func(context.Context, *providers.Exec) (state.Outputs, error) {
		seen = spec.Path
		return nil, nil
	})
	user.Spec = spec
	user.Refs = []plan.Ref{{Item: "sys", Key: "id"}}
	sys := task("sys", nil, func(_ context.Context, x *providers.Exec) (state.Outputs, error) {
		return state.Outputs{"id": state.Plain("abc-123")}, nil
	})
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	res, err := Run(context.Background(), mustGraph(t, user, sys), st, opts())
	if err != nil || !res.OK() {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	if seen != "/systems/abc-123/users" {
		t.Errorf("path = %q", seen)
	}
}

func TestRunner_Run_CheckpointIsDurableBeforeFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st := openStore(t, path)
	g := mustGraph(t, task("bind", nil, func(_ context.Context, x *providers.Exec) (state.Outputs, error) {
		if err := x.Checkpoint(state.Outputs{"cloud_system_id": state.Plain("cs-1")}); err != nil {
			return nil, err
		}
		return nil, errors.New("server refused the bind")
	}))
	if _, err := Run(context.Background(), g, st, opts()); err != nil {
		t.Fatal(err)
	}
	rec := mustGet(t, st, "bind")
	if rec.Status != state.Failed || rec.Outputs["cloud_system_id"].Value != "cs-1" {
		t.Errorf("record = %+v", rec)
	}
}

func TestRunner_Run_FailFastAndFailureBudget(t *testing.T) {
	for _, tc := range []struct {
		name        string
		failFast    bool
		maxFailures int
		wantFailed  int
	}{
		{"no limit", false, 0, 10},
		{"fail fast", true, 0, 1},
		{"budget of 3", false, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tasks []*providers.Task
			for i := 0; i < 10; i++ {
				tasks = append(tasks, task(fmt.Sprintf("t%02d", i), nil, func(context.Context, *providers.Exec) (state.Outputs, error) {
					return nil, errors.New("nope")
				}))
			}
			st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
			// One task failed in an earlier run.
			if err := st.Put(&state.Record{ID: "t05", Status: state.Failed, Attempts: 2, LastError: "earlier"}); err != nil {
				t.Fatal(err)
			}
			o := opts()
			o.Parallel = 1
			o.FailFast, o.MaxFailures = tc.failFast, tc.maxFailures
			res, err := Run(context.Background(), mustGraph(t, tasks...), st, o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Failed != tc.wantFailed || res.Failed+res.NotStarted != 10 {
				t.Errorf("failed=%d not started=%d, want %d failed", res.Failed, res.NotStarted, tc.wantFailed)
			}
			// The stop withdraws the intents of attempts that were waiting for the
			// slot: what never applied has the record it had before the run.
			failed := map[string]bool{}
			for _, f := range res.Failures {
				failed[f.ID] = true
			}
			for _, tk := range tasks {
				rec, ok, err := st.Get(tk.ID)
				switch {
				case err != nil:
					t.Fatal(err)
				case failed[tk.ID]:
				case tk.ID == "t05" && (!ok || rec.Status != state.Failed || rec.Attempts != 2 || rec.LastError != "earlier"):
					t.Errorf("t05 never applied in this run, record now %+v, want the earlier failure", rec)
				case tk.ID != "t05" && ok:
					t.Errorf("%s never applied, has a record %+v", tk.ID, rec)
				}
			}
			if (tc.failFast || tc.maxFailures > 0) != res.Stopped {
				t.Errorf("stopped = %v", res.Stopped)
			}
		})
	}
}

func TestRunner_Run_BoundsParallelism(t *testing.T) {
	var cur, peak atomic.Int32
	var tasks []*providers.Task
	for i := 0; i < 40; i++ {
		tasks = append(tasks, task(fmt.Sprintf("t%02d", i), nil, func(context.Context, *providers.Exec) (state.Outputs, error) {
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			cur.Add(-1)
			return nil, nil
		}))
	}
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	o := opts()
	o.Parallel = 3
	if _, err := Run(context.Background(), mustGraph(t, tasks...), st, o); err != nil {
		t.Fatal(err)
	}
	if peak.Load() > 3 || peak.Load() < 2 {
		t.Errorf("peak concurrency %d, want <= 3 (and some parallelism)", peak.Load())
	}
}

func TestRunner_Run_StopLetsInFlightFinish(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 10)
	var finished atomic.Int32
	var tasks []*providers.Task
	for i := 0; i < 10; i++ {
		tasks = append(tasks, task(fmt.Sprintf("t%02d", i), nil, func(actx context.Context, x *providers.Exec) (state.Outputs, error) {
			started <- struct{}{}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-actx.Done():
				return nil, actx.Err()
			}
			finished.Add(1)
			return nil, nil
		}))
	}
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	o := opts()
	o.Parallel = 2
	go func() { <-started; cancel() }()
	res, err := Run(ctx, mustGraph(t, tasks...), st, o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Applied < 1 || res.Applied > 2 || int(finished.Load()) != res.Applied || res.NotStarted != 10-res.Applied {
		t.Fatalf("res = %+v finished=%d", res, finished.Load())
	}
}

func TestRunner_Run_GraceOverLeavesTaskInDoubt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := mustGraph(t, task("slow", nil, func(actx context.Context, x *providers.Exec) (state.Outputs, error) {
		cancel()
		<-actx.Done()
		return nil, actx.Err()
	}))
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	o := opts()
	o.Grace = 20 * time.Millisecond
	res, err := Run(ctx, g, st, o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.InDoubt != 1 {
		t.Fatalf("res = %+v", res)
	}
	if rec := mustGet(t, st, "slow"); rec.Status != state.Started {
		t.Errorf("status = %v, want started (in doubt)", rec.Status)
	}
}

func TestRunner_Run_ProviderPanicFailsOnlyThatTask(t *testing.T) {
	g := mustGraph(t,
		task("bad", nil, func(context.Context, *providers.Exec) (state.Outputs, error) { panic("nil map") }),
		task("good", nil, ok()),
	)
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	res, err := Run(context.Background(), g, st, opts())
	if err != nil || res.Failed != 1 || res.Applied != 1 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestRunner_Run_RedactsSecretsInRecordedErrors(t *testing.T) {
	red := plan.NewRedactor()
	red.Add("hunter2-canary")
	g := mustGraph(t, task("a", nil, func(context.Context, *providers.Exec) (state.Outputs, error) {
		return nil, errors.New("login as admin:hunter2-canary refused")
	}))
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	o := opts()
	o.Redactor = red
	res, _ := Run(context.Background(), g, st, o)
	if strings.Contains(res.Failures[0].Error, "hunter2") || strings.Contains(mustGet(t, st, "a").LastError, "hunter2") {
		t.Fatal("secret reached the report or the state")
	}
}

func TestNewGraph_RejectsBadGraphs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tasks []*providers.Task
		want  string
	}{
		{"unknown dependency", []*providers.Task{task("a", []string{"ghost"}, ok())}, `depends on unknown item "ghost"`},
		{"duplicate", []*providers.Task{task("a", nil, ok()), task("a", nil, ok())}, `duplicate task "a"`},
		{"self", []*providers.Task{task("a", []string{"a"}, ok())}, "depends on itself"},
		{"cycle", []*providers.Task{task("a", []string{"c"}, ok()), task("b", []string{"a"}, ok()), task("c", []string{"b"}, ok())}, "dependency cycle: a -> c -> b -> a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewGraph(tc.tasks)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// selectedIDs is what g.Select(patterns) selects, the IDs in graph order joined by commas.
func selectedIDs(t *testing.T, g *Graph, patterns ...string) string {
	t.Helper()
	sel, err := g.Select(patterns)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, tk := range g.Tasks {
		if sel[int32(i)] {
			got = append(got, tk.ID)
		}
	}
	return strings.Join(got, ",")
}

func TestGraph_Select_IncludesDependencies(t *testing.T) {
	g := mustGraph(t,
		task("store-1", nil, ok()),
		task("store-1/share/a@x.io", []string{"store-1"}, ok()),
		task("store-2", nil, ok()),
		task("app", []string{"store-2"}, ok()),
	)
	if got := selectedIDs(t, g, "app", "store-1"); got != "store-1,store-1/share/a@x.io,store-2,app" {
		t.Errorf("selected %v", got)
	}
	if _, err := g.Select([]string{"nothing-*"}); err == nil {
		t.Error("a pattern that matches nothing must be an error")
	}
}

// Match is depends_on's dialect (path.Match: * and ? stop at "/", [...] classes),
// applied to the whole ID and to the ID up to each "/" (an item's sub-tasks).
func TestMatch_IsTheDependsOnDialect(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "a", true},
		{"*", "a/b", true}, // through the item "a"
		{"store-*", "store-17/share/x", true},
		{"store-1", "store-1/share/x", true},
		{"store-1", "store-12", false},
		{"store-1", "store-12/share/x", false},
		{"*@x.io", "store-1/share/a@x.io", false}, // * stops at "/"
		{"*/share/*@x.io", "store-1/share/a@x.io", true},
		{"store-?", "store-1", true}, {"store-?", "store-12", false},
		{"a?b", "a/b", false}, // ? stops at "/" too
		{"store-[12]", "store-2", true}, {"store-[12]", "store-3", false},
		{"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false}, {"", "", true},
		{"[", "[", false}, // malformed: matches nothing
	} {
		if got := Match(tc.p, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
	if err := CheckPattern("store-[1"); err == nil {
		t.Error("CheckPattern accepts an unclosed [")
	}
	if err := CheckPattern("store-[12]*"); err != nil {
		t.Errorf("CheckPattern: %v", err)
	}
}

func TestGraph_Select_StarStopsAtSlash(t *testing.T) {
	g := mustGraph(t,
		task("store-1", nil, ok()),
		task("store-1/share/a@x.io", []string{"store-1"}, ok()),
		task("store-1/share/b@y.io", []string{"store-1"}, ok()),
		task("hq/share/a@x.io", nil, ok()),
	)
	selected := func(patterns ...string) string { t.Helper(); return selectedIDs(t, g, patterns...) }
	if got := selected("*/share/a@x.io"); got != "store-1,store-1/share/a@x.io,hq/share/a@x.io" {
		t.Errorf("*/share/a@x.io selected %s", got)
	}
	if got := selected("store-*"); got != "store-1,store-1/share/a@x.io,store-1/share/b@y.io" {
		t.Errorf("store-* selected %s", got)
	}
	if _, err := g.Select([]string{"*a@x.io"}); err == nil || !strings.Contains(err.Error(), "matches no task") {
		t.Errorf("*a@x.io (a star does not cross /): err %v, want matches no task", err)
	}
	if _, err := g.Select([]string{"store-[1"}); err == nil || !strings.Contains(err.Error(), "--only \"store-[1\"") {
		t.Errorf("a malformed pattern: err %v", err)
	}
}

func TestShard_SplitsAlongComponentsStably(t *testing.T) {
	var tasks []*providers.Task
	for i := 0; i < 200; i++ {
		sys := fmt.Sprintf("sys-%03d", i)
		tasks = append(tasks, task(sys, nil, ok()), task(sys+"/share/a", []string{sys}, ok()), task(sys+"/share/b", []string{sys}, ok()))
	}
	g := mustGraph(t, tasks...)
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		sg, err := Shard(g, i, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range sg.Tasks {
			seen[tk.ID]++
			for _, d := range tk.Deps {
				if _, ok := sg.Task(d); !ok {
					t.Fatalf("shard %d: %s depends on %s in another shard", i, tk.ID, d)
				}
			}
		}
		if len(sg.Tasks) == 0 {
			t.Errorf("shard %d is empty", i)
		}
	}
	for _, tk := range tasks {
		if seen[tk.ID] != 1 {
			t.Errorf("%s in %d shards", tk.ID, seen[tk.ID])
		}
	}
	a, b := ShardOf(g, 4), ShardOf(mustGraph(t, tasks...), 4)
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("shard assignment is not stable")
		}
	}
}

// A failure whose request may have taken effect makes the next attempt, in this run
// or the next one, in doubt; a plain failure does not.
func TestRunner_Run_MaybeAppliedFailureMakesNextAttemptInDoubt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	var seen []bool
	var mu sync.Mutex
	mk := func(fail error) *Graph {
		return mustGraph(t, task("a", nil, func(_ context.Context, x *providers.Exec) (state.Outputs, error) {
			mu.Lock()
			seen = append(seen, x.InDoubt)
			mu.Unlock()
			return nil, fail
		}))
	}
	lost := &providers.Error{Op: "POST /x", Err: errors.New("EOF"), MaybeApplied: true}
	st, _ := state.Open(path, state.Options{PlanName: "test"})
	o := opts()
	o.MaxAttempts = 1
	if _, err := Run(context.Background(), mk(lost), st, o); err != nil {
		t.Fatal(err)
	}
	rec := mustGet(t, st, "a")
	st.Close()
	if !rec.MaybeApplied || !Decide("a", "test", rec.Hash, rec).InDoubt {
		t.Fatalf("record %+v: want maybe-applied and a dry run saying in doubt", rec)
	}
	st = openStore(t, path)
	if _, err := Run(context.Background(), mk(errors.New("plain failure")), st, o); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), mk(nil), st, o); err != nil {
		t.Fatal(err)
	}
	// The plain failure of the in-doubt attempt does not resolve the doubt: the
	// third attempt must still look the object up before creating.
	if len(seen) != 3 || seen[0] || !seen[1] || !seen[2] {
		t.Fatalf("in doubt per attempt = %v, want [false true true]", seen)
	}
	if rec := mustGet(t, st, "a"); rec.MaybeApplied || rec.Status != state.Done {
		t.Errorf("record after success %+v", rec)
	}
}

// A secret output checkpointed by an earlier run (sealed in the state file) must be
// known to the redactor of a resumed run before any task runs: a server that echoes
// it back in an error must not put it in clear into the report, the log or the
// state file's last error.
func TestRunner_Run_SecretOutputsFromStateAreRedactedOnResume(t *testing.T) {
	const authKey = "resumed-auth-key-canary-5150"
	path := filepath.Join(t.TempDir(), "s.db")
	key := "a state passphrase for the test"
	st, err := state.Open(path, state.Options{PlanName: "test", Key: key, KDFIterations: state.MinKDFIterations})
	if err != nil {
		t.Fatal(err)
	}
	g := mustGraph(t,
		task("bind", nil, func(context.Context, *providers.Exec) (state.Outputs, error) {
			return state.Outputs{"auth_key": {Value: authKey, Secret: true}}, nil
		}),
		task("use", []string{"bind"}, func(context.Context, *providers.Exec) (state.Outputs, error) {
			return nil, errors.New("first run fails early")
		}))
	if _, err := Run(context.Background(), g, st, opts()); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// Second run: a new process, a new redactor; the server echoes the key.
	st, err = state.Open(path, state.Options{PlanName: "test", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs strings.Builder
	o := opts()
	o.Log = zerolog.New(o.Redactor.Writer(&logs))
	g = mustGraph(t,
		task("bind", nil, ok()),
		task("use", []string{"bind"}, func(context.Context, *providers.Exec) (state.Outputs, error) {
			return nil, &providers.Error{Op: "POST /use", Status: 400, Message: `echo: {"authKey":"` + authKey + `"}`}
		}))
	res, err := Run(context.Background(), g, st, o)
	if err != nil || res.Failed != 1 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	if strings.Contains(res.Failures[0].Error, authKey) {
		t.Errorf("report: %s", res.Failures[0].Error)
	}
	if strings.Contains(mustGet(t, st, "use").LastError, authKey) {
		t.Errorf("state: %s", mustGet(t, st, "use").LastError)
	}
	if strings.Contains(logs.String(), authKey) {
		t.Errorf("log: %s", logs.String())
	}
}

// A server asking to wait 999999999 s is waited for --backoff-max at most, and the
// retry's log line says that the server asked for longer.
func TestRunner_Run_RetryAfterIsCappedByBackoffMax(t *testing.T) {
	var calls atomic.Int64
	g := mustGraph(t, task("a", nil, func(context.Context, *providers.Exec) (state.Outputs, error) {
		if calls.Add(1) == 1 {
			return nil, &providers.Error{Op: "GET /x", Status: 429, Retryable: true, RetryAfter: 999999999 * time.Second}
		}
		return nil, nil
	}))
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	var logs strings.Builder
	o := opts()
	o.Log = zerolog.New(&logs)
	// A guard only: the run needs milliseconds; a wait for the server's value would
	// be stopped here and reported as interrupted.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o.Grace = time.Millisecond
	res, err := Run(ctx, g, st, o)
	if err != nil || res.Interrupted || res.Applied != 1 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	line := logs.String()
	if !strings.Contains(line, `"message":"retrying"`) || !strings.Contains(line, `"retry_after_asked_ms"`) || !strings.Contains(line, "asked to wait longer") {
		t.Errorf("the retry's log line does not say the server asked for longer:\n%s", line)
	}
}

func TestGraph_Order_DependenciesFirstTiesByID(t *testing.T) {
	g := mustGraph(t,
		task("c", nil, ok()),
		task("b/x", []string{"c"}, ok()),
		task("a", []string{"b/x", "d"}, ok()),
		task("d", nil, ok()),
		task("e", nil, ok()),
	)
	if got := strings.Join(g.Order(), ","); got != "c,b/x,d,a,e" {
		t.Errorf("order %s", got)
	}
	// The delete graph runs the other way: a task's delete before its dependencies'.
	var dels []Delete
	for _, tk := range g.Tasks {
		dels = append(dels, Delete{ID: tk.ID, Record: &state.Record{Hash: tk.Hash}, Deps: tk.Deps})
	}
	dg := mustGraph(t, DeleteTasks(dels)...)
	if got := strings.Join(dg.Order(), ","); got != "a,b/x,c,d,e" {
		t.Errorf("delete order %s", got)
	}
}
