package runner

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"provision/providers"
	"provision/state"
)

// holdFirst is a real store whose first Put of a record with a given status waits
// until release is closed (or a generous timeout, so that a regression fails
// instead of hanging); held is closed when it waits, and id names its task.
type holdFirst struct {
	*state.Store
	status  state.Status
	once    atomic.Bool
	id      atomic.Value
	held    chan struct{}
	release chan struct{}
	timeout atomic.Bool
}

func newHoldFirst(t *testing.T, status state.Status) *holdFirst {
	return &holdFirst{Store: openStore(t, filepath.Join(t.TempDir(), "s.db")), status: status,
		held: make(chan struct{}), release: make(chan struct{})}
}

func (h *holdFirst) PutWithin(_ time.Duration, recs ...*state.Record) error { return h.Put(recs...) }

func (h *holdFirst) Put(recs ...*state.Record) error {
	for _, r := range recs {
		if r.Status == h.status && h.once.CompareAndSwap(false, true) {
			h.id.Store(r.ID)
			close(h.held)
			select {
			case <-h.release:
			case <-time.After(10 * time.Second):
				h.timeout.Store(true)
			}
		}
	}
	return h.Store.Put(recs...)
}

// whileHeld is an Apply for two tasks on one slot: the first to apply returns at
// once; the second waits until the first's record is held, and releases it. The
// second can only apply while that record's commit is under way if the commit
// holds no slot.
func whileHeld(h *holdFirst, secondRan *atomic.Bool) fn {
	var calls atomic.Int32
	return func(context.Context, *providers.Exec) (state.Outputs, error) {
		if calls.Add(1) == 1 {
			return nil, nil
		}
		select {
		case <-h.held:
			secondRan.Store(true)
		case <-time.After(10 * time.Second):
		}
		close(h.release)
		return nil, nil
	}
}

// runOnOneSlot runs g on one apply slot and fails unless a task applied (ran) while
// the held record (what) was committing.
func runOnOneSlot(t *testing.T, g *Graph, st *holdFirst, ran *atomic.Bool, what string) *Result {
	t.Helper()
	o := opts()
	o.Parallel = 1
	res, err := Run(context.Background(), g, st, o)
	if err != nil {
		t.Fatal(err)
	}
	if st.timeout.Load() || !ran.Load() {
		t.Fatalf("no task applied while %v's %s was committing (timeout=%v)", st.id.Load(), what, st.timeout.Load())
	}
	return res
}

func TestRunner_Run_WorkerTakesNextTaskWhileDoneRecordCommits(t *testing.T) {
	st := newHoldFirst(t, state.Done)
	var secondRan atomic.Bool
	var userSaw atomic.Value
	apply := whileHeld(st, &secondRan)
	g := mustGraph(t,
		task("a", nil, apply),
		task("b", nil, apply),
		// A user starts only once the done record of what it uses is durable.
		task("c", []string{"a"}, func(context.Context, *providers.Exec) (state.Outputs, error) {
			rec, _, err := st.Get("a")
			if err != nil {
				return nil, err
			}
			userSaw.Store(rec.Status)
			return nil, nil
		}),
	)
	res := runOnOneSlot(t, g, st, &secondRan, "done record")
	if got, _ := userSaw.Load().(state.Status); got != state.Done {
		t.Errorf("c started while a's record was %v, want done (durable before its users start)", got)
	}
	if res.Applied != 3 || !res.OK() {
		t.Errorf("res = %+v", res)
	}
}

// The intent is made durable before the attempt takes an apply slot: with one
// slot, a task applies while another's intent is still being committed, and no
// task applies before its own intent is durable.
func TestRunner_Run_IntentCommitsHoldNoSlot(t *testing.T) {
	st := newHoldFirst(t, state.Started)
	var otherRan atomic.Bool
	apply := func(_ context.Context, x *providers.Exec) (state.Outputs, error) {
		if rec, _, err := st.Get(x.Task.ID); err != nil || rec.Status != state.Started {
			t.Errorf("%s applies with its record %+v (%v), want its intent durable", x.Task.ID, rec, err)
		}
		if st.id.Load() == x.Task.ID {
			return nil, nil // the held one: applies once its intent is released
		}
		// The other task: applying while the held intent still commits.
		otherRan.Store(true)
		close(st.release)
		return nil, nil
	}
	g := mustGraph(t, task("a", nil, apply), task("b", nil, apply))
	res := runOnOneSlot(t, g, st, &otherRan, "intent")
	if res.Applied != 2 || !res.OK() {
		t.Errorf("res = %+v", res)
	}
}

// lingerLog is a real store that notes, in order, the linger each record was
// written with.
type lingerLog struct {
	*state.Store
	mu     sync.Mutex
	writes []lingered
}

type lingered struct {
	id      string
	status  state.Status
	outputs int
	linger  time.Duration
}

func (l *lingerLog) Put(recs ...*state.Record) error { return l.PutWithin(0, recs...) }

func (l *lingerLog) PutWithin(linger time.Duration, recs ...*state.Record) error {
	l.mu.Lock()
	for _, r := range recs {
		l.writes = append(l.writes, lingered{r.ID, r.Status, len(r.Outputs), linger})
	}
	l.mu.Unlock()
	return l.Store.PutWithin(linger, recs...)
}

// While every apply slot is busy, records may wait to share a commit; while one is
// free, they commit at once. With one slot: the run's first intent is written with
// the slot free, and each checkpoint while its task holds the only slot.
func TestRunner_Run_RecordsLingerOnlyWhileEverySlotIsBusy(t *testing.T) {
	st := &lingerLog{Store: openStore(t, filepath.Join(t.TempDir(), "s.db"))}
	apply := func(_ context.Context, x *providers.Exec) (state.Outputs, error) {
		return nil, x.Checkpoint(state.Outputs{"step": state.Plain("1")})
	}
	o := opts()
	o.Parallel = 1
	res, err := Run(context.Background(), mustGraph(t, task("a", nil, apply), task("b", nil, apply)), st, o)
	if err != nil || !res.OK() {
		t.Fatalf("%v %+v", err, res)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if w := st.writes[0]; w.linger != 0 {
		t.Errorf("the run's first write (%s, no slot taken yet): linger %v, want 0", w.id, w.linger)
	}
	checkpoints := 0
	for _, w := range st.writes {
		if w.status != state.Started || w.outputs == 0 {
			continue // intents and results
		}
		checkpoints++
		if w.linger != commitLinger {
			t.Errorf("checkpoint of %s, written while it held the only slot: linger %v, want %v", w.id, w.linger, commitLinger)
		}
	}
	if checkpoints < 2 {
		t.Fatalf("writes %+v: want a checkpoint of each task", st.writes)
	}
}
