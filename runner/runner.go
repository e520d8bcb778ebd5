// Package runner executes a task graph: bounded parallelism, dependencies, retries
// with backoff, checkpoints in the state store (intent before effect, result after),
// skipping of dependents after a failure, and a graceful stop.
//
// Concurrency: one coordinator goroutine owns the scheduling state; a fixed pool of
// workers runs attempts. A worker slot is taken only to run an attempt: tasks waiting
// for dependencies or sleeping before a retry hold nothing. Per-endpoint limits are
// applied inside the API clients, around each request.
package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// Store is the part of *state.Store the runner uses.
type Store interface {
	Load() (map[string]*state.Record, error)
	Put(recs ...*state.Record) error
}

var _ Store = (*state.Store)(nil)

// Options tune a run. The zero value is usable.
type Options struct {
	// Parallel bounds the tasks applied at once (default 16).
	Parallel int
	// MaxAttempts bounds attempts per task in this run, for retryable failures (default 5).
	// Throttled answers (429, or 503 with Retry-After) cost no attempt.
	MaxAttempts int
	// ThrottleTimeout bounds how long a task keeps being retried after throttled
	// answers, from its first attempt in this run (default 30m); then it fails.
	ThrottleTimeout time.Duration
	// Now is the clock for the throttle budget (tests); nil means time.Now.
	Now func() time.Time
	// BackoffBase and BackoffMax shape the exponential backoff with full jitter
	// (defaults 500ms and 30s). A server's Retry-After is honoured when longer, up
	// to BackoffMax: a longer request is capped and the retry's log line says so.
	BackoffBase, BackoffMax time.Duration
	// FailFast stops starting tasks after the first failure.
	FailFast bool
	// MaxFailures stops starting tasks after that many failures (0: no limit).
	MaxFailures int
	// Grace is how long in-flight tasks may finish after a stop request (default 30s);
	// then they are cancelled and stay in doubt.
	Grace time.Duration
	// Only limits the run to tasks matching these patterns and what they depend on.
	Only []string
	// Force re-applies these done, unchanged tasks (as updates): drift put back.
	Force map[string]bool
	// Log receives task events; Redactor masks secrets in recorded errors.
	Log      zerolog.Logger
	Redactor *plan.Redactor
	// Progress, when set, is updated live.
	Progress *Progress
	// Events, when set, receives every task event. It is called from the run's
	// coordinator goroutine, one event at a time, and must not block for long.
	Events func(Event)
}

func (o *Options) defaults() {
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.ThrottleTimeout <= 0 {
		o.ThrottleTimeout = 30 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 30 * time.Second
	}
	if o.Progress == nil {
		o.Progress = &Progress{}
	}
}

// Failure is a task that failed in this run.
type Failure struct {
	ID       string `json:"id"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error"`
}

// Skipped is a task not run because a dependency failed.
type Skipped struct {
	ID    string `json:"id"`
	Cause string `json:"failed_dependency"`
}

// Result summarises a run.
type Result struct {
	Total      int `json:"total"`
	UpToDate   int `json:"up_to_date"`
	Applied    int `json:"applied"`
	Failed     int `json:"failed"`
	Skipped    int `json:"skipped"`
	NotStarted int `json:"not_started"`
	InDoubt    int `json:"in_doubt"`
	Retries    int `json:"retries"`
	// Throttled counts retries after throttled answers (they cost no attempt).
	Throttled int `json:"throttled_retries"`
	// Interrupted: a stop was requested (signal); Stopped: the failure budget ran out.
	Interrupted bool          `json:"interrupted"`
	Stopped     bool          `json:"stopped"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	Failures    []Failure     `json:"failures,omitempty"`
	SkippedBy   []Skipped     `json:"skipped_tasks,omitempty"`
}

// OK reports whether every selected task is done.
func (r *Result) OK() bool {
	return r.Failed == 0 && r.Skipped == 0 && r.NotStarted == 0 && r.InDoubt == 0 && !r.Interrupted
}

// ErrStateWrite wraps a failure to record a checkpoint: the run stops at once.
var ErrStateWrite = errors.New("cannot write state")

type outcome struct {
	i            int32
	err          error
	retryable    bool
	throttled    bool
	retryAfter   time.Duration
	maybeApplied bool
	interrupted  bool
	fatal        error
}

type run struct {
	g    *Graph
	st   Store
	o    Options
	recs []*state.Record // owned by the coordinator, lent to one worker at a time

	outMu   sync.RWMutex
	outputs map[int32]state.Outputs // outputs of referenced tasks

	applyCtx context.Context
}

// Run applies the graph. ctx ending is a stop request: no new task starts,
// in-flight ones get Options.Grace to finish, and Run returns with Interrupted set.
// The error is non-nil only when the run could not go on (state unreadable or unwritable).
func Run(ctx context.Context, g *Graph, st Store, o Options) (*Result, error) {
	o.defaults()
	start := time.Now()
	loaded, err := st.Load()
	if err != nil {
		return nil, err
	}
	RegisterSecrets(o.Redactor, loaded)
	sel, err := g.Select(o.Only)
	if err != nil {
		return nil, err
	}
	r := &run{g: g, st: st, o: o, recs: make([]*state.Record, len(g.Tasks)), outputs: map[int32]state.Outputs{}}
	res := &Result{}
	p := o.Progress

	// Classify every selected task.
	const (
		stSkip uint8 = iota + 1 // up to date
		stRun
	)
	class := make([]uint8, len(g.Tasks))
	for i, t := range g.Tasks {
		if sel != nil && !sel[int32(i)] {
			continue
		}
		res.Total++
		rec := loaded[t.ID]
		r.recs[i] = rec
		if rec != nil && rec.Status == state.Done && rec.Hash == t.Hash && !o.Force[t.ID] {
			class[i] = stSkip
			res.UpToDate++
			if g.referenced[i] {
				r.outputs[int32(i)] = rec.Outputs
			}
			continue
		}
		class[i] = stRun
	}
	p.Total.Store(int64(res.Total))
	p.UpToDate.Store(int64(res.UpToDate))

	// Pending dependency counts over the tasks that run.
	waiting := make([]int32, len(g.Tasks))
	var queue []int32
	remaining := 0
	for i := range g.Tasks {
		if class[i] != stRun {
			continue
		}
		remaining++
		for _, d := range g.deps[i] {
			if class[d] == stRun {
				waiting[i]++
			}
		}
		if waiting[i] == 0 {
			queue = append(queue, int32(i))
		}
	}
	p.Queued.Store(int64(remaining))

	applyCtx, cancelApply := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelApply()
	r.applyCtx = applyCtx

	ready := make(chan int32)
	results := make(chan outcome)
	retryCh := make(chan int32)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < o.Parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ready {
				results <- r.attempt(i)
			}
		}()
	}
	defer func() {
		close(quit)
		close(ready)
		wg.Wait()
	}()

	attempts := make([]int, len(g.Tasks)) // attempts in this run
	var sentAt []time.Time                // when each task's attempt was handed out (Events)
	if o.Events != nil {
		sentAt = make([]time.Time, len(g.Tasks))
	}
	// ended tells Events how an attempt ended.
	ended := func(typ EventType, i int32, out outcome, retryIn time.Duration) {
		if o.Events == nil {
			return
		}
		now := o.Now()
		e := r.event(typ, i, attempts[i], now)
		e.Took, e.RetryIn, e.MaybeApplied = now.Sub(sentAt[i]), retryIn, out.maybeApplied
		if out.err != nil {
			e.Error = o.Redactor.RedactValue(out.err.Error())
		}
		o.Events(e)
	}
	var firstTry []time.Time // when each task's first attempt in this run began
	resolved := make([]bool, len(g.Tasks))
	inflight, retrying := 0, 0
	stopping := false
	var grace <-chan time.Time
	var fatal error

	resolve := func(i int32) {
		resolved[i] = true
		remaining--
		p.Queued.Add(-1)
	}
	// skipUsers marks every not yet resolved task downstream of i as skipped.
	skipUsers := func(i int32) {
		stack := []int32{i}
		cause := g.Tasks[i].ID
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, u := range g.users[n] {
				if class[u] != stRun || resolved[u] {
					continue
				}
				resolve(u)
				res.Skipped++
				p.Skipped.Add(1)
				res.SkippedBy = append(res.SkippedBy, Skipped{ID: g.Tasks[u].ID, Cause: cause})
				if o.Events != nil {
					e := r.event(EventSkipped, u, 0, o.Now())
					e.Cause = cause
					o.Events(e)
				}
				o.Log.Debug().Str("task", g.Tasks[u].ID).Str("failed_dependency", cause).Msg("skipped")
				stack = append(stack, u)
			}
		}
	}
	stop := func() {
		if !stopping {
			stopping = true
			grace = time.After(o.Grace)
		}
	}

	ctxDone := ctx.Done()
	for remaining > 0 || inflight > 0 {
		if stopping && inflight == 0 {
			break
		}
		var send chan int32
		var next int32
		if len(queue) > 0 && !stopping {
			send, next = ready, queue[0]
		}
		select {
		case send <- next:
			queue = queue[1:]
			inflight++
			p.Running.Add(1)
			attempts[next]++
			if firstTry == nil {
				firstTry = make([]time.Time, len(g.Tasks))
			}
			if firstTry[next].IsZero() {
				firstTry[next] = o.Now()
			}
			if o.Events != nil {
				sentAt[next] = o.Now()
				o.Events(r.event(EventStarted, next, attempts[next], sentAt[next]))
			}
		case out := <-results:
			inflight--
			p.Running.Add(-1)
			i := out.i
			t := g.Tasks[i]
			switch {
			case out.fatal != nil:
				fatal = out.fatal
				stop()
			case out.interrupted:
				// Left in doubt; the next run reconciles it.
			case out.err == nil:
				resolve(i)
				res.Applied++
				p.Done.Add(1)
				ended(EventDone, i, out, 0)
				for _, u := range g.users[i] {
					if class[u] != stRun || resolved[u] {
						continue
					}
					waiting[u]--
					if waiting[u] == 0 {
						queue = append(queue, u)
					}
				}
			case out.throttled && !stopping && o.Now().Sub(firstTry[i]) < o.ThrottleTimeout:
				// Throttling is not failure: the endpoint slows down (rest's
				// adaptive rate and shared pause) and the attempt is given back.
				res.Throttled++
				retrying++
				p.Throttled.Add(1)
				d := backoff(o.BackoffBase, o.BackoffMax, 1, out.retryAfter)
				if out.retryAfter > o.BackoffMax {
					// Worth a line at info: the server asked for more than the cap.
					o.Log.Info().Str("task", t.ID).Bool("throttled", true).Int64("retry_in_ms", d.Milliseconds()).Int64("retry_after_asked_ms", out.retryAfter.Milliseconds()).
						Str("note", "the server asked to wait longer than --backoff-max ("+o.BackoffMax.String()+"); waiting at most that").
						Str("error", o.Redactor.RedactValue(out.err.Error())).Msg("retrying")
				} else {
					o.Log.Debug().Str("task", t.ID).Int64("retry_in_ms", d.Milliseconds()).Str("error", o.Redactor.RedactValue(out.err.Error())).Msg("throttled")
				}
				ended(EventRetrying, i, out, d)
				attempts[i]--
				time.AfterFunc(d, func() {
					select {
					case retryCh <- i:
					case <-quit:
					}
				})
			case out.retryable && !out.throttled && attempts[i] < o.MaxAttempts && !stopping:
				res.Retries++
				retrying++
				p.Retries.Add(1)
				d := backoff(o.BackoffBase, o.BackoffMax, attempts[i], out.retryAfter)
				ev := o.Log.Info().Str("task", t.ID).Int("attempt", attempts[i]).Int64("retry_in_ms", d.Milliseconds())
				if out.retryAfter > o.BackoffMax {
					ev = ev.Int64("retry_after_asked_ms", out.retryAfter.Milliseconds()).Str("note", "the server asked to wait longer than --backoff-max ("+o.BackoffMax.String()+"); waiting at most that")
				}
				ev.Str("error", o.Redactor.RedactValue(out.err.Error())).Msg("retrying")
				ended(EventRetrying, i, out, d)
				time.AfterFunc(d, func() {
					select {
					case retryCh <- i:
					case <-quit:
					}
				})
			default:
				resolve(i)
				res.Failed++
				p.Failed.Add(1)
				msg := o.Redactor.RedactValue(out.err.Error())
				if out.throttled && !stopping {
					msg = fmt.Sprintf("still throttled after %s (--throttle-timeout): %s", o.ThrottleTimeout, msg)
				}
				res.Failures = append(res.Failures, Failure{ID: t.ID, Attempts: r.recs[i].Attempts, Error: msg})
				o.Log.Error().Str("task", t.ID).Int("attempts", r.recs[i].Attempts).Str("error", msg).Msg("failed")
				ended(EventFailed, i, out, 0)
				skipUsers(i)
				if o.FailFast || (o.MaxFailures > 0 && res.Failed >= o.MaxFailures) {
					res.Stopped = true
					stop()
				}
			}
		case i := <-retryCh:
			retrying--
			if stopping {
				continue
			}
			queue = append(queue, i)
		case <-ctxDone:
			ctxDone = nil
			res.Interrupted = true
			o.Log.Warn().Int("in_flight", inflight).Int64("grace_ms", o.Grace.Milliseconds()).Msg("stop requested: no new tasks; waiting for in-flight tasks")
			stop()
		case <-grace:
			grace = nil
			o.Log.Warn().Int("in_flight", inflight).Msg("grace period over: cancelling in-flight tasks (they stay in doubt)")
			cancelApply()
		}
	}
	// Whatever was never resolved did not start (or is in doubt after a cancel).
	for i := range g.Tasks {
		if class[i] == stRun && !resolved[i] {
			if rec := r.recs[i]; rec != nil && rec.Status == state.Started {
				res.InDoubt++
			} else {
				res.NotStarted++
			}
		}
	}
	sort.Slice(res.Failures, func(a, b int) bool { return res.Failures[a].ID < res.Failures[b].ID })
	sort.Slice(res.SkippedBy, func(a, b int) bool { return res.SkippedBy[a].ID < res.SkippedBy[b].ID })
	res.Elapsed = time.Since(start)
	if fatal != nil {
		return res, fatal
	}
	return res, nil
}

// backoff returns the delay before attempt n+1: full jitter over an exponential
// ceiling, never shorter than the server's Retry-After, never longer than max.
func backoff(base, max time.Duration, n int, retryAfter time.Duration) time.Duration {
	retryAfter = min(retryAfter, max)
	ceil := base << min(n-1, 20)
	if ceil > max || ceil <= 0 {
		ceil = max
	}
	d := time.Duration(rand.Int64N(int64(ceil)/2+1)) + ceil/2
	if retryAfter > d {
		d = retryAfter
	}
	return d
}

// attempt runs one attempt of task i: resolve references, record intent, apply,
// record the result. It runs on a worker; the coordinator does not touch r.recs[i]
// until the outcome comes back.
func (r *run) attempt(i int32) outcome {
	t := r.g.Tasks[i]
	prev := r.recs[i]
	rec := &state.Record{ID: t.ID, Outputs: state.Outputs{}}
	inDoubt, changed := false, false
	if prev != nil {
		*rec = *prev
		rec.Outputs = cloneOutputs(prev.Outputs)
		inDoubt = prev.Status == state.Started
		changed = prev.Status == state.Done && (prev.Hash != t.Hash || r.o.Force[t.ID])
	}
	if len(t.Refs) > 0 && t.Spec != nil {
		if err := plan.ResolveRefs(t.Spec, r.lookup); err != nil {
			return outcome{i: i, err: fmt.Errorf("resolve references: %w", err)}
		}
	}
	rec.Status = state.Started
	rec.Attempts++
	// The task's logger, also in the context: the API clients log each request
	// with it (zerolog.Ctx), under the task and attempt.
	log := r.o.Log.With().Str("task", t.ID).Int("attempt", rec.Attempts).Logger()
	applyCtx := log.WithContext(r.applyCtx)
	rec.Hash = t.Hash
	rec.StartedAt = time.Now()
	if err := r.st.Put(rec); err != nil {
		return outcome{i: i, fatal: fmt.Errorf("%w: record intent of %s: %v", ErrStateWrite, t.ID, err)}
	}
	r.recs[i] = rec
	x := &providers.Exec{
		Task:     t,
		Attempt:  rec.Attempts,
		InDoubt:  inDoubt || (prev != nil && prev.Status == state.Failed && prev.MaybeApplied),
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
		if err := r.st.Put(rec); err != nil {
			return fmt.Errorf("%w: checkpoint %s: %v", ErrStateWrite, t.ID, err)
		}
		return nil
	}
	log.Debug().Bool("in_doubt", x.InDoubt).Bool("changed", changed).Msg("apply")
	out, err := applySafely(applyCtx, t, x)
	if err != nil && r.applyCtx.Err() != nil {
		// Cancelled in flight: the outcome is unknown, the record stays "started".
		return outcome{i: i, interrupted: true}
	}
	if errors.Is(err, ErrStateWrite) {
		return outcome{i: i, fatal: err}
	}
	now := time.Now()
	if err != nil {
		rec.Status = state.Failed
		rec.LastError = r.o.Redactor.RedactValue(err.Error())
		// A failed attempt that was in doubt leaves the doubt unresolved (its lookup
		// may be what failed): the next attempt looks the object up again.
		rec.MaybeApplied = x.InDoubt || providers.MaybeApplied(err)
		rec.FinishedAt = now
		if perr := r.st.Put(rec); perr != nil {
			return outcome{i: i, fatal: fmt.Errorf("%w: record failure of %s: %v", ErrStateWrite, t.ID, perr)}
		}
		return outcome{i: i, err: err, retryable: providers.IsRetryable(err), throttled: providers.IsThrottled(err), retryAfter: providers.RetryAfter(err), maybeApplied: providers.MaybeApplied(err)}
	}
	for k, v := range out {
		if v.Secret {
			r.o.Redactor.Add(v.Value)
		}
		rec.Outputs[k] = v
	}
	rec.Status = state.Done
	rec.LastError = ""
	rec.MaybeApplied = false
	rec.FinishedAt = now
	rec.Info = &state.TaskInfo{Kind: t.Kind, Endpoint: t.Endpoint, Spec: providers.SpecJSON(t.Spec, r.o.Redactor), Deps: t.Deps, Adopted: x.Adopted}
	if err := r.st.Put(rec); err != nil {
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

// RegisterSecrets gives the redactor every secret output the records hold (the ones
// decrypted from the state file), so that an answer echoing one of them back never
// reaches a log, a report or the state in clear. Call it the moment records are loaded.
func RegisterSecrets(red *plan.Redactor, recs map[string]*state.Record) {
	for _, rec := range recs {
		for _, v := range rec.Outputs {
			if v.Secret {
				red.Add(v.Value)
			}
		}
	}
}

func cloneOutputs(o state.Outputs) state.Outputs {
	c := make(state.Outputs, len(o))
	for k, v := range o {
		c[k] = v
	}
	return c
}

// Progress holds live counters, updated by the runner and read by a renderer.
type Progress struct {
	Total, UpToDate, Queued, Running, Done, Failed, Skipped, Retries atomic.Int64
	// Throttled counts retries after throttled answers.
	Throttled atomic.Int64
}
