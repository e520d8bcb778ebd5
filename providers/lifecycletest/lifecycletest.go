// Package lifecycletest drives providers through a whole lifecycle in tests: apply
// with the real runner into a real state file, then destroy (every recorded task's
// Remover, dependents first, retried like the runner retries) and drift (every done
// task's Refresher), reading the same state file. It stands in for the engine's
// destroy and refresh commands so that each provider package can test its deletions
// and drift checks against its fake.
package lifecycletest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/runner"
	"provision/state"
)

// PlanName is the plan name of the state files this package writes.
const PlanName = "lifecycle-test"

// Apply runs tasks through the runner against the state file at path.
func Apply(t testing.TB, tasks []*providers.Task, path, key string) *runner.Result {
	t.Helper()
	g, err := runner.NewGraph(tasks)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(path, state.Options{PlanName: PlanName, Key: key, KDFIterations: state.MinKDFIterations})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := runner.Run(context.Background(), g, st, runner.Options{Parallel: 4, MaxAttempts: 8,
		BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond, Log: zerolog.Nop(), Redactor: plan.NewRedactor()})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Options of Destroy.
type Options struct {
	// Registry has the kinds of the recorded tasks (by section).
	Registry *providers.Registry
	// Build is what Delete gets (the current plan's endpoints and clients).
	Build *providers.Build
	// Planned are the tasks the current plan builds, by ID (nil: the plan lists none).
	Planned map[string]*providers.Task
	// Key is the state key.
	Key string
	// IncludeAdopted deletes adopted objects too.
	IncludeAdopted bool
	// Only, when set, limits the deletion to the tasks it accepts.
	Only func(id string) bool
	// MaxAttempts per task for retryable errors (default 6).
	MaxAttempts int
	// Log receives the providers' log lines (default: none).
	Log *zerolog.Logger
}

// Outcome is what Destroy did with one task.
type Outcome struct {
	ID string
	// Err is the last error (nil: deleted, the record is gone).
	Err error
	// Attempts made; InDoubt tells whether the last one was told it was in doubt.
	Attempts int
	InDoubt  bool
	// Skipped: adopted and not included.
	Skipped bool
}

// order returns the recorded task IDs in the order of the engine's delete graph
// (runner.DeleteTasks, from the recorded dependencies): every task before the
// tasks it depended on, ties in ID order.
func order(t testing.TB, recs map[string]*state.Record, infos map[string]*state.TaskInfo, ids []string) []string {
	t.Helper()
	dels := make([]runner.Delete, 0, len(ids))
	for _, id := range ids {
		d := runner.Delete{ID: id, Record: recs[id]}
		if ti := infos[id]; ti != nil {
			d.Deps = ti.Deps
		}
		dels = append(dels, d)
	}
	g, err := runner.NewGraph(runner.DeleteTasks(dels))
	if err != nil {
		t.Fatal(err)
	}
	return g.Order()
}

// Destroy deletes what the state at path records, dependents first (in the order
// of the engine's delete graph), one at a time. Unlike the engine's destroy it goes
// on past a failed delete: the tasks it depended on are still deleted. A task whose
// delete succeeded loses its record; one that failed keeps it. The returned
// outcomes are in deletion order.
func Destroy(t testing.TB, path string, o Options) []Outcome {
	t.Helper()
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 6
	}
	log := zerolog.Nop()
	if o.Log != nil {
		log = *o.Log
	}
	st, err := state.Open(path, state.Options{PlanName: PlanName, Key: o.Key, KDFIterations: state.MinKDFIterations})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	infos, err := st.Infos()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id, r := range recs {
		if r.Status == state.Pending || (o.Only != nil && !o.Only(id)) {
			continue
		}
		ids = append(ids, id)
	}
	lookup := func(r plan.Ref) (string, error) {
		rec, ok := recs[r.Item]
		if !ok {
			return "", fmt.Errorf("no record of %s", r.Item)
		}
		return rec.Outputs[r.Key].Value, nil
	}
	var out []Outcome
	for _, id := range order(t, recs, infos, ids) {
		rec, info := recs[id], infos[id]
		if rec.Status != state.Done {
			info = nil // a task that never finished left no info
		}
		oc := Outcome{ID: id}
		if info != nil && info.Adopted && !o.IncludeAdopted {
			oc.Skipped = true
			out = append(out, oc)
			continue
		}
		kindName, endpoint := "", ""
		if info := infos[id]; info != nil {
			kindName, endpoint = info.Kind, info.Endpoint
		}
		if p := o.Planned[id]; p != nil {
			kindName, endpoint = p.Kind, p.Endpoint
		}
		k, ok := o.Registry.Kind(kindName)
		if !ok {
			oc.Err = fmt.Errorf("%s: no kind %q", id, kindName)
			out = append(out, oc)
			continue
		}
		rm, ok := k.(providers.Remover)
		if !ok {
			oc.Err = fmt.Errorf("%s: kind %s has no Remover", id, kindName)
			out = append(out, oc)
			continue
		}
		inDoubt := rec.Status == state.Started || rec.MaybeApplied
		for oc.Attempts < o.MaxAttempts {
			oc.Attempts++
			oc.InDoubt = inDoubt
			d := &providers.Deletion{Info: info, Planned: o.Planned[id], Exec: &providers.Exec{
				Task:    &providers.Task{ID: id, Kind: kindName, Endpoint: endpoint},
				Attempt: oc.Attempts, InDoubt: inDoubt, Prior: clone(rec.Outputs),
				Log: log.With().Str("task", id).Logger(), Redactor: plan.NewRedactor(), Lookup: lookup,
			}}
			oc.Err = rm.Delete(context.Background(), o.Build, d)
			if oc.Err == nil || !providers.IsRetryable(oc.Err) {
				break
			}
			if providers.MaybeApplied(oc.Err) {
				inDoubt = true
			}
		}
		if oc.Err == nil {
			if err := st.Delete(id); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, oc)
	}
	return out
}

// Failed returns the outcomes with an error that is not ErrCannotDelete, as text.
func Failed(ocs []Outcome) []string {
	var out []string
	for _, oc := range ocs {
		if oc.Err != nil && !errors.Is(oc.Err, providers.ErrCannotDelete) {
			out = append(out, oc.ID+": "+oc.Err.Error())
		}
	}
	return out
}

// Find returns the outcome of task id.
func Find(ocs []Outcome, id string) (Outcome, bool) {
	for _, oc := range ocs {
		if oc.ID == id {
			return oc, true
		}
	}
	return Outcome{}, false
}

// Drift re-reads every done task of the state at path whose planned task's action
// is a Refresher, with the task's recorded outputs and output references resolved
// from the records, and returns the differences by task ID (an entry per task
// checked, empty when in sync) and the errors.
func Drift(t testing.TB, path, key string, planned []*providers.Task) (map[string][]providers.FieldDiff, map[string]error) {
	t.Helper()
	st, err := state.Open(path, state.Options{PlanName: PlanName, Key: key, KDFIterations: state.MinKDFIterations})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(r plan.Ref) (string, error) {
		rec, ok := recs[r.Item]
		if !ok {
			return "", fmt.Errorf("no record of %s", r.Item)
		}
		return rec.Outputs[r.Key].Value, nil
	}
	diffs, errs := map[string][]providers.FieldDiff{}, map[string]error{}
	for _, task := range planned {
		rec := recs[task.ID]
		rf, ok := task.Action.(providers.Refresher)
		if rec == nil || rec.Status != state.Done || !ok {
			continue
		}
		if len(task.Refs) > 0 && task.Spec != nil {
			if err := plan.ResolveRefs(task.Spec, lookup); err != nil {
				errs[task.ID] = err
				continue
			}
		}
		x := &providers.Exec{Task: task, Attempt: rec.Attempts, Prior: clone(rec.Outputs), Log: zerolog.Nop(), Redactor: plan.NewRedactor(), Lookup: lookup}
		d, err := rf.Drift(context.Background(), x)
		if err != nil {
			errs[task.ID] = err
			continue
		}
		diffs[task.ID] = d
	}
	return diffs, errs
}

func clone(o state.Outputs) state.Outputs {
	c := state.Outputs{}
	for k, v := range o {
		c[k] = v
	}
	return c
}

// ApplyTwice runs tasks through the runner twice into one new state file (up to 20
// attempts a task; the first run meets whatever faults the fakes are set to) and
// calls between after the first run. Both runs must succeed and the second must
// find every task up to date. It returns the runs' debug log (to look for secrets).
func ApplyTwice(t testing.TB, tasks []*providers.Task, planName string, red *plan.Redactor, between func()) string {
	t.Helper()
	g, err := runner.NewGraph(tasks)
	if err != nil {
		t.Fatal(err)
	}
	sp := filepath.Join(t.TempDir(), "state.db")
	var logs bytes.Buffer
	for round := 0; round < 2; round++ {
		st, err := state.Open(sp, state.Options{PlanName: planName})
		if err != nil {
			t.Fatal(err)
		}
		res, err := runner.Run(context.Background(), g, st, runner.Options{Parallel: 4, MaxAttempts: 20, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
			Log: zerolog.New(zerolog.SyncWriter(&logs)).Level(zerolog.DebugLevel), Redactor: red})
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK() {
			t.Fatalf("round %d: %+v", round, res)
		}
		if round == 1 && res.UpToDate != len(tasks) {
			t.Fatalf("rerun: %+v, want %d up to date", res, len(tasks))
		}
		if round == 0 && between != nil {
			between()
		}
	}
	return logs.String()
}

// ExamplePlan loads the example plan at path (a copy in a temporary directory, so
// that whatever a run writes beside its plan stays there; a plan that reads a CSV
// file beside it needs that file copied too) with opts and builds every item with
// kind, calling prep on each task it builds (tests shorten waits there).
func ExamplePlan(t testing.TB, path string, kind providers.Kind, opts plan.LoadOptions, prep func(*providers.Task)) (*plan.Plan, []*providers.Task) {
	t.Helper()
	p := filepath.Join(t.TempDir(), filepath.Base(path))
	CopyFile(t, path, p)
	pl, err := plan.Load(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	b := &providers.Build{Plan: pl, Clients: &providers.Clients{}}
	var tasks []*providers.Task
	for _, it := range pl.Items {
		ts, err := kind.Build(b, it)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range ts {
			if prep != nil {
				prep(task)
			}
		}
		tasks = append(tasks, ts...)
	}
	return pl, tasks
}
