package providertest

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"provision/providers"
	"provision/runner"
	"provision/state"
)

// deletes are the delete tasks of one destroy run and the errors their Deletes
// returned, by task ID.
type deletes struct {
	tasks []*providers.Task
	mu    sync.Mutex
	errs  map[string]error
}

func (d *deletes) err(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.errs[id]
}

// deleteTasks builds, from the state file, one delete task per recorded task (as
// cmd/provision's destroy does): edges reversed, so that a task's delete waits for
// the deletes of everything that depended on it; each calls the kind's Remover with
// the record's outputs and info and the task as the plan builds it.
func (e *env) deleteTasks() *deletes {
	e.t.Helper()
	_, b, planned := e.buildAll()
	byID := map[string]*providers.Task{}
	for _, t := range planned {
		byID[t.ID] = t
	}
	kinds := map[string]providers.Kind{}
	for _, k := range e.target.Kinds {
		kinds[k.Section()] = k
	}
	recs, infos := e.readState()
	d := &deletes{errs: map[string]error{}}
	e.addDeletes(d, b, recs, infos, byID, kinds)
	return d
}

func (e *env) addDeletes(d *deletes, b *providers.Build, recs map[string]*state.Record, infos map[string]*state.TaskInfo, byID map[string]*providers.Task, kinds map[string]providers.Kind) {
	var ids []string
	for id, r := range recs {
		if runner.Deletable(r) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var dels []runner.Delete
	for _, id := range ids {
		p := byID[id]
		if p == nil {
			e.t.Fatalf("the state records %s, which the plan does not build", id)
		}
		rm, ok := kinds[p.Kind].(providers.Remover)
		if !ok {
			e.t.Fatalf("kind %s is not a providers.Remover: list its section in Target.CannotDelete", p.Kind)
		}
		info := infos[id]
		dels = append(dels, runner.Delete{ID: id, Kind: p.Kind, Endpoint: p.Endpoint, Record: recs[id], Deps: p.Deps,
			Remove: func(ctx context.Context, x *providers.Exec) error {
				err := rm.Delete(ctx, b, &providers.Deletion{Exec: x, Info: info, Planned: p})
				d.mu.Lock()
				d.errs[id] = err
				d.mu.Unlock()
				return err
			}})
	}
	d.tasks = runner.DeleteTasks(dels)
}

// destroy deletes what the state file records through the runner (intent before
// each delete, the result after, retries; a record left "started" makes the next
// delete attempt in doubt), then forgets the records of finished deletes.
func (e *env) destroy(ctx context.Context, maxAttempts int) (*runner.Result, *deletes) {
	e.t.Helper()
	d := e.deleteTasks()
	res := e.runTasks(ctx, d.tasks, maxAttempts)
	st, err := state.Open(e.state, state.Options{Key: e.stateKey(), KDFIterations: state.MinKDFIterations})
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	if _, err := runner.ForgetDestroyed(st); err != nil {
		e.t.Fatal(err)
	}
	return res, d
}

// kept returns the tasks a destroy must leave: those of the Target's CannotDelete
// sections (only those recorded is non-nil: those it holds) and, transitively, what
// they depend on (an object that stays keeps what it uses, as the engine's destroy
// does).
func (e *env) kept(recorded map[string]bool) map[string]bool {
	e.t.Helper()
	_, tasks := e.build()
	byID := map[string]*providers.Task{}
	for _, t := range tasks {
		byID[t.ID] = t
	}
	keep := map[string]bool{}
	var add func(id string)
	add = func(id string) {
		if keep[id] || byID[id] == nil {
			return
		}
		keep[id] = true
		for _, d := range byID[id].Deps {
			add(d)
		}
	}
	for _, t := range tasks {
		if slices.Contains(e.target.CannotDelete, t.Kind) && (recorded == nil || recorded[t.ID]) {
			add(t.ID)
		}
	}
	return keep
}

// reference returns the snapshot of a fresh fake on which only the kept tasks were
// applied: what a destroy must leave behind (a fresh fake's own objects alone when
// everything can be deleted).
func reference(t *testing.T, tg *Target, keep map[string]bool) []string {
	t.Helper()
	r := newEnv(t, tg)
	if len(keep) > 0 {
		_, tasks := r.build()
		var sel []*providers.Task
		for _, task := range tasks {
			if keep[task.ID] {
				sel = append(sel, task)
			}
		}
		mustOK(t, r.runTasks(context.Background(), sel, 3), "apply of the undeletable objects alone")
	}
	return r.fake.Snapshot()
}

// checkDestroyed requires of a finished destroy: every task deleted (its record
// gone) except the kept ones; every failure an ErrCannotDelete of a CannotDelete
// section; every other kept task skipped or failed that way; the fake's objects
// those of the reference (as before the apply, for what the API can delete).
//
// With partial (the apply before the destroy was killed), only the undeletable
// tasks the state recorded stay, with what they use; as the kill may have left
// them half made, they are applied again (a fresh state: lookups find them) before
// the fake is compared with the reference.
func (e *env) checkDestroyed(res *runner.Result, d *deletes, what string, partial bool) {
	e.t.Helper()
	ran := map[string]bool{}
	for _, task := range d.tasks {
		ran[task.ID] = true
	}
	keep := e.kept(nil)
	if partial {
		keep = e.kept(ran)
	}
	failed := map[string]bool{}
	for _, f := range res.Failures {
		failed[f.ID] = true
		err := d.err(f.ID)
		task, _ := e.taskKind(f.ID)
		switch {
		case !slices.Contains(e.target.CannotDelete, task):
			e.t.Errorf("%s: the delete of %s failed: %s", what, f.ID, f.Error)
		case !errors.Is(err, providers.ErrCannotDelete):
			e.t.Errorf("%s: %s is of a section the API cannot delete, but its delete failed with %v, not ErrCannotDelete", what, f.ID, err)
		}
	}
	for id := range keep {
		kind, _ := e.taskKind(id)
		if slices.Contains(e.target.CannotDelete, kind) && !failed[id] && !skipped(res, id) && (!partial || ran[id]) {
			e.t.Errorf("%s: %s (%s, which the API cannot delete) was neither reported as ErrCannotDelete nor skipped", what, id, kind)
		}
	}
	if res.InDoubt > 0 || res.NotStarted > 0 || res.Interrupted {
		e.t.Errorf("%s: the destroy did not finish: %+v", what, res)
	}
	recs, _ := e.readState()
	for id := range recs {
		if !keep[id] {
			e.t.Errorf("%s: %s still has a record: its delete did not finish", what, id)
		}
	}
	for id := range keep {
		if recs[id] == nil && (!partial || ran[id]) {
			e.t.Errorf("%s: %s, which must stay, lost its record", what, id)
		}
	}
	if partial && len(keep) > 0 {
		e.completeKept(keep)
	}
	got, want := e.fake.Snapshot(), reference(e.t, e.target, keep)
	if !slices.Equal(got, want) {
		e.t.Errorf("%s: the fake after the destroy differs from a fake with only the undeletable objects:\n  after destroy: %s\n  want:          %s",
			what, strings.Join(got, "; "), strings.Join(want, "; "))
	}
}

// completeKept applies the kept tasks again on the env's fake with a fresh state
// file (the env's own is left as it is).
func (e *env) completeKept(keep map[string]bool) {
	e.t.Helper()
	_, tasks := e.build()
	var sel []*providers.Task
	for _, task := range tasks {
		if keep[task.ID] {
			sel = append(sel, task)
		}
	}
	saved := e.state
	e.state = filepath.Join(e.t.TempDir(), "complete.db")
	defer func() { e.state = saved }()
	mustOK(e.t, e.runTasks(context.Background(), sel, 6), "apply of the undeletable objects left by a killed apply")
}

func skipped(res *runner.Result, id string) bool {
	for _, s := range res.SkippedBy {
		if s.ID == id {
			return true
		}
	}
	return false
}

// taskKind returns the kind (section) of a planned task.
func (e *env) taskKind(id string) (string, bool) {
	_, tasks := e.build()
	for _, t := range tasks {
		if t.ID == id {
			return t.Kind, true
		}
	}
	return "", false
}

// applyForDestroy applies the plan on a fresh fake and requires that nothing was
// adopted (a fresh fake holds nothing the plan asks for).
func (e *env) applyForDestroy() {
	e.t.Helper()
	mustOK(e.t, e.run(3), "apply")
	_, infos := e.readState()
	for id, info := range infos {
		if info.Adopted {
			e.t.Fatalf("%s was marked adopted by an apply on a fresh fake: destroy would leave it", id)
		}
	}
}

// runDestroy runs the destroy checks (see the package doc).
func runDestroy(t *testing.T, tg *Target) {
	t.Helper()
	if len(tg.Deletes) == 0 && len(tg.CannotDelete) == 0 {
		t.Fatal("providertest: Target needs Deletes (the delete routes) or CannotDelete (sections the API cannot delete)")
	}
	fresh := func(t *testing.T) *env {
		e := newEnv(t, tg)
		if e.fake.Snapshot == nil {
			t.Fatal("providertest: Fake.Snapshot is needed for the destroy checks")
		}
		return e
	}
	t.Run("Destroy", func(t *testing.T) {
		e := fresh(t)
		if before, ref := e.fake.Snapshot(), reference(t, tg, nil); !slices.Equal(before, ref) {
			t.Fatalf("two fresh fakes differ: %v and %v", before, ref)
		}
		e.applyForDestroy()
		e.rec.reset()
		res, d := e.destroy(context.Background(), 6)
		e.checkDestroyed(res, d, "destroy", false)
		_, writes, _ := e.rec.counts()
		for _, r := range tg.Deletes {
			if !anyMatch(writes, r) {
				t.Errorf("the destroy never used delete route %s: its lost-answer check would prove nothing", r)
			}
		}
		for _, w := range writes {
			if !slices.ContainsFunc(tg.Deletes, func(r Route) bool { return anyMatch([]string{w}, r) }) {
				t.Errorf("the destroy wrote %s, which is none of the Target's delete routes", w)
			}
		}
		t.Logf("destroy: %d deleted, %d failed (cannot delete), %d skipped; %d writes", res.Applied, res.Failed, res.Skipped, len(writes))
		// A second destroy finds nothing left to delete and sends no write.
		e.rec.reset()
		res, d = e.destroy(context.Background(), 6)
		e.checkDestroyed(res, d, "second destroy", false)
		if _, writes, _ := e.rec.counts(); len(writes) != 0 {
			t.Errorf("a second destroy wrote: %v", writes)
		}
		e.checkLeaks()
	})
	for _, route := range tg.Creates {
		t.Run("Destroy/AfterKilledCreate/"+strings.ReplaceAll(route.String(), "/", "_"), func(t *testing.T) {
			e := fresh(t)
			// The apply dies while a create's answer is awaited (the create took
			// effect, its record says "started"); the operator then destroys: the
			// in-doubt task's object is found by its natural key and deleted too.
			res := e.killedRun(route, func(ctx context.Context) *runner.Result {
				_, tasks := e.build()
				return e.runTasks(ctx, tasks, 1)
			})
			if !res.Interrupted || e.started() == 0 {
				t.Fatalf("the apply with a hung create left nothing in doubt: %+v", res)
			}
			e.settle()
			res, d := e.destroy(context.Background(), 6)
			e.checkDestroyed(res, d, "destroy after a killed create on "+route.String(), true)
			e.checkLeaks()
		})
	}
	for _, route := range tg.Deletes {
		name := strings.ReplaceAll(route.String(), "/", "_")
		t.Run("Destroy/LostAnswer/"+name, func(t *testing.T) {
			e := fresh(t)
			e.applyForDestroy()
			e.rec.loseNext(route)
			res, d := e.destroy(context.Background(), 6)
			if _, _, lost := e.rec.counts(); lost != 1 {
				t.Fatalf("no answer on %s was lost (the destroy does not reach it)", route)
			}
			e.checkDestroyed(res, d, "destroy with a lost answer on "+route.String(), false)
			e.checkLeaks()
		})
		t.Run("Destroy/KillBetweenIntentAndResult/"+name, func(t *testing.T) {
			e := fresh(t)
			e.applyForDestroy()
			res := e.killedRun(route, func(ctx context.Context) *runner.Result {
				res, _ := e.destroy(ctx, 1)
				return res
			})
			if !res.Interrupted {
				t.Fatalf("the destroy with a hung delete was not interrupted: %+v", res)
			}
			if n := e.started(); n == 0 {
				t.Fatal("no record is left started after the kill")
			}
			e.settle()
			res, d := e.destroy(context.Background(), 6)
			e.checkDestroyed(res, d, "fresh destroy after a kill on "+route.String(), false)
			e.checkLeaks()
		})
	}
}
