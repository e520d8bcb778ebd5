package runner

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// outcome is how one attempt ended, sent from a worker to the coordinator.
type outcome struct {
	i            int32
	err          error
	retryable    bool
	throttled    bool
	retryAfter   time.Duration
	maybeApplied bool
	interrupted  bool
	fatal        error
	// slot: the attempt still holds its apply slot; the coordinator frees it once
	// it has taken the outcome (so that a stop the outcome causes comes first).
	slot bool
	// withdrawn: a stop came while the attempt waited for a slot; it never applied
	// and its record is what it was before.
	withdrawn bool
	// applying: not an outcome, the attempt got its slot and applies now (sent
	// only when the run reports events).
	applying bool
}

// run is what the workers share: the graph, the store, the records and the
// outputs that flow along edges.
type run struct {
	g    *Graph
	st   Store
	o    Options
	recs []*state.Record // owned by the coordinator, lent to one worker at a time

	outMu   sync.RWMutex
	outputs map[int32]state.Outputs // outputs of referenced tasks

	applyCtx context.Context

	// slots bounds the attempts applied at once (Options.Parallel). An attempt takes
	// one only once its intent is durable, so that waiting for the intent's commit
	// does not hold a slot; stopped is closed when the run stops starting attempts.
	slots   chan struct{}
	stopped chan struct{}
	started chan<- outcome // the coordinator's results, for applying notes (nil: no events)
}

// attempt runs one attempt of task i on a worker: resolve references, record
// intent, take an apply slot, apply, record a failure. A slot bounds the tasks
// applied at once, not the records waiting for a commit: the intent is made
// durable before the slot is taken, and recording a done result is left to finish
// (nil otherwise), which the worker runs on a goroutine of its own after freeing
// the slot, so that it can take the next task while the result's commit is under
// way. The outcome (and so "done") comes back to the coordinator only once finish
// has made the result durable. The coordinator does not touch r.recs[i] until the
// outcome comes back.
func (r *run) attempt(i int32) (out outcome, finish func() outcome) {
	t := r.g.Tasks[i]
	prev := r.recs[i]
	// Decide on the record as it is now (this run's failed attempts included):
	// in doubt, or done before and applied again.
	d := Decide(t.ID, t.Kind, t.Hash, prev)
	changed := d.Changed(r.o.Force[t.ID])
	if len(t.Refs) > 0 && t.Spec != nil {
		if err := plan.ResolveRefs(t.Spec, r.lookup); err != nil {
			return outcome{i: i, err: fmt.Errorf("resolve references: %w", err)}, nil
		}
	}
	rec, err := r.recordIntent(i, prev)
	if err != nil {
		return outcome{i: i, fatal: err}, nil
	}
	if !r.takeSlot() {
		return r.withdraw(i, prev), nil
	}
	if r.started != nil {
		r.started <- outcome{i: i, applying: true}
	}
	r.o.Progress.Running.Add(1)
	// The task's logger, also in the context: the API clients log each request
	// with it (zerolog.Ctx), under the task and attempt.
	log := r.o.Log.With().Str("task", t.ID).Int("attempt", rec.Attempts).Logger()
	x := r.exec(t, rec, log, d.InDoubt, changed)
	if d.InDoubt && prev != nil {
		x.InDoubtSince = prev.StartedAt
	}
	log.Debug().Bool("in_doubt", x.InDoubt).Bool("changed", changed).Msg("apply")
	res, err := applySafely(log.WithContext(r.applyCtx), t, x)
	switch {
	case err != nil && r.applyCtx.Err() != nil:
		// Cancelled in flight: the outcome is unknown, the record stays "started".
		return outcome{i: i, interrupted: true, slot: true}, nil
	case errors.Is(err, ErrStateWrite):
		return outcome{i: i, fatal: err, slot: true}, nil
	case err != nil:
		// On the worker, holding the slot: the coordinator sees the failure before
		// another attempt can take that slot (fail-fast and the failure budget stop
		// exactly).
		out := r.recordFailure(i, rec, x, err)
		out.slot = true
		return out, nil
	}
	r.freeSlot()
	return outcome{}, func() outcome { return r.recordDone(i, rec, x, res, log) }
}

// commitLinger is how long a task's record may wait for others to share its
// commit while every apply slot is busy. Then nothing is waiting for a free slot:
// an intent would wait for a slot anyway, a result's users would wait for one, and
// a checkpoint delays one of many tasks in flight. With 100 slots busy on 20 ms
// requests, it makes 254-265 commits of 34-35 records where there were 1,150 of 8
// (BenchmarkLimits_Latency1000Stores), and each commit costs two fsyncs. While a
// slot is free, records commit at once.
const commitLinger = 5 * time.Millisecond

// put records rec durably, in no hurry while every slot is busy.
func (r *run) put(rec *state.Record) error {
	if c := cap(r.slots); c > 0 && len(r.slots) == c {
		return r.st.PutWithin(commitLinger, rec)
	}
	return r.st.Put(rec)
}

// takeSlot waits for an apply slot; false when the run stopped meanwhile.
func (r *run) takeSlot() bool {
	select {
	case r.slots <- struct{}{}:
	case <-r.stopped:
		return false
	}
	select {
	case <-r.stopped: // both were ready: the stop wins
		<-r.slots
		return false
	default:
		return true
	}
}

// freeSlot gives an apply slot back.
func (r *run) freeSlot() {
	<-r.slots
	r.o.Progress.Running.Add(-1)
}

// withdraw puts task i's record back as it was before the intent (none: no record),
// for an attempt that never applied: the stop leaves it not started, or in doubt
// only if it already was.
func (r *run) withdraw(i int32, prev *state.Record) outcome {
	id := r.g.Tasks[i].ID
	var err error
	if prev == nil {
		err = r.st.Delete(id)
	} else {
		err = r.st.Put(prev)
	}
	if err != nil {
		return outcome{i: i, fatal: fmt.Errorf("%w: withdraw intent of %s: %v", ErrStateWrite, id, err)}
	}
	r.recs[i] = prev
	return outcome{i: i, withdrawn: true}
}

// recordIntent durably records that an attempt of task i starts (intent before
// effect) and lends the new record to the worker.
func (r *run) recordIntent(i int32, prev *state.Record) (*state.Record, error) {
	t := r.g.Tasks[i]
	rec := &state.Record{ID: t.ID, Outputs: state.Outputs{}}
	if prev != nil {
		*rec = *prev
		rec.Outputs = cloneOutputs(prev.Outputs)
	}
	rec.Status = state.Started
	rec.Attempts++
	rec.Hash = t.Hash
	rec.StartedAt = time.Now()
	if err := r.put(rec); err != nil {
		return nil, fmt.Errorf("%w: record intent of %s: %v", ErrStateWrite, t.ID, err)
	}
	r.recs[i] = rec
	return rec, nil
}

// exec is what the provider gets for one attempt; its checkpoints go to rec.
func (r *run) exec(t *providers.Task, rec *state.Record, log zerolog.Logger, inDoubt, changed bool) *providers.Exec {
	x := &providers.Exec{
		Task:     t,
		Attempt:  rec.Attempts,
		InDoubt:  inDoubt,
		Changed:  changed,
		Prior:    cloneOutputs(rec.Outputs),
		Log:      log,
		Redactor: r.o.Redactor,
		Lookup:   r.lookup,
	}
	x.CheckpointFunc = func(o state.Outputs) error {
		for k, v := range o {
			rec.Outputs[k] = v
		}
		if err := r.put(rec); err != nil {
			return fmt.Errorf("%w: checkpoint %s: %v", ErrStateWrite, t.ID, err)
		}
		return nil
	}
	return x
}

// recordFailure records a failed attempt and classifies its error.
func (r *run) recordFailure(i int32, rec *state.Record, x *providers.Exec, err error) outcome {
	rec.Status = state.Failed
	rec.LastError = r.o.Redactor.RedactValue(err.Error())
	// A failed attempt that was in doubt leaves the doubt unresolved (its lookup
	// may be what failed): the next attempt looks the object up again.
	rec.MaybeApplied = x.InDoubt || providers.MaybeApplied(err)
	rec.FinishedAt = time.Now()
	if perr := r.put(rec); perr != nil {
		return outcome{i: i, fatal: fmt.Errorf("%w: record failure of %s: %v", ErrStateWrite, rec.ID, perr)}
	}
	return outcome{i: i, err: err, retryable: providers.IsRetryable(err), throttled: providers.IsThrottled(err),
		retryAfter: providers.RetryAfter(err), maybeApplied: providers.MaybeApplied(err)}
}

// recordDone records a done attempt with its outputs (secret ones registered with
// the redactor) and keeps the outputs other tasks reference.
func (r *run) recordDone(i int32, rec *state.Record, x *providers.Exec, out state.Outputs, log zerolog.Logger) outcome {
	t := r.g.Tasks[i]
	for k, v := range out {
		if v.Secret {
			r.o.Redactor.Add(v.Value)
		}
		rec.Outputs[k] = v
	}
	now := time.Now()
	rec.Status = state.Done
	rec.LastError = ""
	rec.MaybeApplied = false
	rec.FinishedAt = now
	rec.Info = &state.TaskInfo{Kind: t.Kind, Endpoint: t.Endpoint, Spec: providers.SpecJSON(t.Spec, r.o.Redactor), Deps: t.Deps, Adopted: x.Adopted}
	if err := r.put(rec); err != nil {
		return outcome{i: i, fatal: fmt.Errorf("%w: record result of %s: %v", ErrStateWrite, t.ID, err)}
	}
	if r.g.referenced[i] {
		r.outMu.Lock()
		r.outputs[i] = rec.Outputs
		r.outMu.Unlock()
	}
	log.Debug().Int64("took_ms", now.Sub(rec.StartedAt).Milliseconds()).Msg("done")
	return outcome{i: i}
}

// applySafely turns a provider panic into a task error instead of killing the run
// (and leaving every in-flight task in doubt).
func applySafely(ctx context.Context, t *providers.Task, x *providers.Exec) (out state.Outputs, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error in %s provider: %v", t.Kind, p)
		}
	}()
	return t.Action.Apply(ctx, x)
}

// lookup resolves an output reference from the outputs of done tasks.
func (r *run) lookup(ref plan.Ref) (string, error) {
	j, ok := r.g.index[ref.Item]
	if !ok {
		return "", fmt.Errorf("%s: unknown item %q", ref.Pos, ref.Item)
	}
	r.outMu.RLock()
	outs, done := r.outputs[j]
	r.outMu.RUnlock()
	if !done {
		return "", fmt.Errorf("%s: item %q has no outputs yet", ref.Pos, ref.Item)
	}
	v, ok := outs[ref.Key]
	if !ok {
		names := make([]string, 0, len(outs))
		for k := range outs {
			names = append(names, k)
		}
		sort.Strings(names)
		return "", fmt.Errorf("%s: item %q has no output %q (it has: %s; secret outputs are kept only with %s set)", ref.Pos, ref.Item, ref.Key, strings.Join(names, ", "), state.KeyEnv)
	}
	return v.Value, nil
}

// event is task i's event of a type, without the outcome's fields.
func (r *run) event(typ EventType, i int32, attempt int, at time.Time) Event {
	t := r.g.Tasks[i]
	return Event{Time: at, Type: typ, Task: t.ID, Kind: t.Kind, Endpoint: t.Endpoint, Attempt: attempt}
}
