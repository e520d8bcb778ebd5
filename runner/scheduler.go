package runner

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"provision/state"
)

// scheduler walks one run's graph, in the manner of a DAG walker. Each task that
// runs goes through named steps:
//
//   - ready: the last of its dependencies is done (or its backoff ended); it waits
//     in the queue for a free worker;
//   - start: a worker takes it and runs one attempt (run.attempt);
//   - done: the attempt succeeded; its users whose dependencies are all done
//     become ready;
//   - retryLater: the attempt failed in a way another attempt may fix (or was
//     throttled); after a backoff the task is ready again;
//   - failed: no more attempts; everything downstream is skipped.
//
// Unlike terraform's dag.Walker, which runs a goroutine per vertex and one more per
// vertex's dependency wait, a single coordinator and a fixed pool of workers carry
// any number of tasks (100,000 and more); the step names are the same ideas: a
// task is walked once its dependencies are, and an upstream failure skips it
// without a diagnostic of its own.
//
// Only the coordinator goroutine (walk) touches the scheduler's fields. Workers
// get a task index and send back an outcome; while an attempt is out, its task's
// record (run.recs[i]) belongs to the worker.
type scheduler struct {
	*run
	res *Result
	p   *Progress

	runs     []bool      // selected and not up to date: this run applies it
	waiting  []int32     // dependencies not done yet, over the tasks that run
	resolved []bool      // done, failed or skipped in this run
	attempts []int       // attempts handed out in this run
	sentAt   []time.Time // when the current attempt was handed out (Events only)
	firstTry []time.Time // when the task's first attempt in this run began (throttle budget)

	queue     []int32 // ready tasks, in the order they became ready
	remaining int     // tasks that run and are not resolved
	inflight  int     // attempts out on workers

	stopping    bool
	grace       <-chan time.Time // fires Options.Grace after the stop
	cancelApply context.CancelFunc
	fatal       error // the state could not be written: the run stops

	retryCh chan int32    // tasks whose backoff ended
	quit    chan struct{} // closed when walk returns: pending backoff timers give up
}

// newScheduler decides, with Decide, which selected tasks run (sel nil: all) and
// queues those with nothing to wait for.
func newScheduler(g *Graph, st Store, o Options, loaded map[string]*state.Record, sel map[int32]bool) *scheduler {
	n := len(g.Tasks)
	s := &scheduler{
		run: &run{g: g, st: st, o: o, recs: make([]*state.Record, n), outputs: map[int32]state.Outputs{}},
		res: &Result{}, p: o.Progress,
		runs: make([]bool, n), waiting: make([]int32, n), resolved: make([]bool, n), attempts: make([]int, n),
	}
	for i, t := range g.Tasks {
		if sel != nil && !sel[int32(i)] {
			continue
		}
		s.res.Total++
		rec := loaded[t.ID]
		s.recs[i] = rec
		if Decide(t.ID, t.Kind, t.Hash, rec).Runs(o.Force[t.ID]) {
			s.runs[i] = true
			continue
		}
		s.res.UpToDate++
		if g.referenced[i] {
			s.outputs[int32(i)] = rec.Outputs
		}
	}
	s.p.Total.Store(int64(s.res.Total))
	s.p.UpToDate.Store(int64(s.res.UpToDate))
	for i := range g.Tasks {
		if !s.runs[i] {
			continue
		}
		s.remaining++
		for _, d := range g.deps[i] {
			if s.runs[d] {
				s.waiting[i]++
			}
		}
		if s.waiting[i] == 0 {
			s.ready(int32(i))
		}
	}
	s.p.Queued.Store(int64(s.remaining))
	if o.Events != nil {
		s.sentAt = make([]time.Time, n)
	}
	return s
}

// walk runs the tasks on a pool of Options.Parallel workers until every task is
// resolved, or a stop (ctx, fail-fast, the failure budget, a state write that
// failed) has let the in-flight attempts end. The error is the fatal one.
func (s *scheduler) walk(ctx context.Context) error {
	applyCtx, cancelApply := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelApply()
	s.applyCtx, s.cancelApply = applyCtx, cancelApply

	work := make(chan int32)
	results := make(chan outcome)
	s.retryCh = make(chan int32)
	s.quit = make(chan struct{})
	s.slots, s.stopped = make(chan struct{}, s.o.Parallel), make(chan struct{})
	if s.o.Events != nil {
		s.started = results
	}
	// Twice as many workers as slots: while Parallel attempts apply, as many more
	// can be recording their intent, so that a freed slot is taken at once by an
	// attempt whose intent is already durable.
	var wg sync.WaitGroup
	for w := 0; w < 2*s.o.Parallel; w++ {
		wg.Add(1)
		go func(r *run) {
			defer wg.Done()
			for i := range work {
				out, finish := r.attempt(i)
				if finish == nil {
					results <- out
					continue
				}
				// The walk receives an outcome for every task in flight before it
				// returns, so this goroutine always ends.
				go func() { results <- finish() }()
			}
		}(s.run)
	}
	defer func() {
		close(s.quit)
		close(work)
		wg.Wait()
	}()

	ctxDone := ctx.Done()
	for s.remaining > 0 || s.inflight > 0 {
		if s.stopping && s.inflight == 0 {
			break
		}
		var send chan int32
		var next int32
		if len(s.queue) > 0 && !s.stopping {
			send, next = work, s.queue[0]
		}
		select {
		case send <- next:
			s.queue = s.queue[1:]
			s.start(next)
		case out := <-results:
			if out.applying {
				s.applying(out.i)
				continue
			}
			s.ended(out)
		case i := <-s.retryCh:
			if !s.stopping {
				s.ready(i)
			}
		case <-ctxDone:
			ctxDone = nil
			s.res.Interrupted = true
			s.o.Log.Warn().Int("in_flight", s.inflight).Int64("grace_ms", s.o.Grace.Milliseconds()).Msg("stop requested: no new tasks; waiting for in-flight tasks")
			s.stop()
		case <-s.grace:
			s.grace = nil
			s.o.Log.Warn().Int("in_flight", s.inflight).Msg("grace period over: cancelling in-flight tasks (they stay in doubt)")
			s.cancelApply()
		}
	}
	return s.fatal
}

// ready queues task i for a worker.
func (s *scheduler) ready(i int32) {
	s.queue = append(s.queue, i)
}

// start counts the attempt of task i a worker just took.
func (s *scheduler) start(i int32) {
	s.inflight++
	s.attempts[i]++
	if s.firstTry == nil {
		s.firstTry = make([]time.Time, len(s.g.Tasks))
	}
	if s.firstTry[i].IsZero() {
		s.firstTry[i] = s.o.Now()
	}
}

// applying: the attempt of task i has its intent durable and a slot (events only).
func (s *scheduler) applying(i int32) {
	s.sentAt[i] = s.o.Now()
	s.o.Events(s.event(EventStarted, i, s.attempts[i], s.sentAt[i]))
}

// ended takes an attempt's outcome to the next step, then frees the slot the
// attempt still holds.
func (s *scheduler) ended(out outcome) {
	s.inflight--
	if out.slot {
		defer s.freeSlot()
	}
	i := out.i
	switch {
	case out.withdrawn:
		s.attempts[i]--
	case out.fatal != nil:
		s.fatal = out.fatal
		s.stop()
	case out.interrupted:
		// Left in doubt; the next run reconciles it.
	case out.err == nil:
		s.done(i, out)
	case out.throttled && !s.stopping && s.o.Now().Sub(s.firstTry[i]) < s.o.ThrottleTimeout:
		s.throttled(i, out)
	case out.retryable && !out.throttled && s.attempts[i] < s.o.MaxAttempts && !s.stopping:
		s.retryable(i, out)
	default:
		s.failed(i, out)
	}
}

// done: task i is applied; users with nothing left to wait for become ready.
func (s *scheduler) done(i int32, out outcome) {
	s.resolve(i)
	s.res.Applied++
	s.p.Done.Add(1)
	s.report(EventDone, i, out, 0)
	for _, u := range s.g.users[i] {
		if !s.runs[u] || s.resolved[u] {
			continue
		}
		s.waiting[u]--
		if s.waiting[u] == 0 {
			s.ready(u)
		}
	}
}

// throttled: throttling is not failure. The endpoint slows down (rest's adaptive
// rate and shared pause) and the attempt is given back.
func (s *scheduler) throttled(i int32, out outcome) {
	o := s.o
	s.res.Throttled++
	s.p.Throttled.Add(1)
	d := backoff(o.BackoffBase, o.BackoffMax, 1, out.retryAfter)
	id := s.g.Tasks[i].ID
	if out.retryAfter > o.BackoffMax {
		// Worth a line at info: the server asked for more than the cap.
		o.Log.Info().Str("task", id).Bool("throttled", true).Int64("retry_in_ms", d.Milliseconds()).Int64("retry_after_asked_ms", out.retryAfter.Milliseconds()).
			Str("note", "the server asked to wait longer than --backoff-max ("+o.BackoffMax.String()+"); waiting at most that").
			Str("error", o.Redactor.RedactValue(out.err.Error())).Msg("retrying")
	} else {
		o.Log.Debug().Str("task", id).Int64("retry_in_ms", d.Milliseconds()).Str("error", o.Redactor.RedactValue(out.err.Error())).Msg("throttled")
	}
	s.report(EventRetrying, i, out, d)
	s.attempts[i]--
	s.retryLater(i, d)
}

// retryable: the attempt failed in a way another attempt may fix, and attempts are
// left.
func (s *scheduler) retryable(i int32, out outcome) {
	o := s.o
	s.res.Retries++
	s.p.Retries.Add(1)
	d := backoff(o.BackoffBase, o.BackoffMax, s.attempts[i], out.retryAfter)
	ev := o.Log.Info().Str("task", s.g.Tasks[i].ID).Int("attempt", s.attempts[i]).Int64("retry_in_ms", d.Milliseconds())
	if out.retryAfter > o.BackoffMax {
		ev = ev.Int64("retry_after_asked_ms", out.retryAfter.Milliseconds()).Str("note", "the server asked to wait longer than --backoff-max ("+o.BackoffMax.String()+"); waiting at most that")
	}
	ev.Str("error", o.Redactor.RedactValue(out.err.Error())).Msg("retrying")
	s.report(EventRetrying, i, out, d)
	s.retryLater(i, d)
}

// retryLater makes task i ready again after d. The task holds no worker meanwhile.
func (s *scheduler) retryLater(i int32, d time.Duration) {
	retryCh, quit := s.retryCh, s.quit
	time.AfterFunc(d, func() {
		select {
		case retryCh <- i:
		case <-quit:
		}
	})
}

// failed: task i gets no more attempts in this run. What depends on it is skipped;
// fail-fast and the failure budget stop the run.
func (s *scheduler) failed(i int32, out outcome) {
	o := s.o
	id := s.g.Tasks[i].ID
	s.resolve(i)
	s.res.Failed++
	s.p.Failed.Add(1)
	msg := o.Redactor.RedactValue(out.err.Error())
	if out.throttled && !s.stopping {
		msg = fmt.Sprintf("still throttled after %s (--throttle-timeout): %s", o.ThrottleTimeout, msg)
	}
	attempts := 0
	if rec := s.recs[i]; rec != nil { // nil when the attempt failed before recording intent
		attempts = rec.Attempts
	}
	s.res.Failures = append(s.res.Failures, Failure{ID: id, Attempts: attempts, Error: msg})
	o.Log.Error().Str("task", id).Int("attempts", attempts).Str("error", msg).Msg("failed")
	s.report(EventFailed, i, out, 0)
	s.skipDependents(i)
	if o.FailFast || (o.MaxFailures > 0 && s.res.Failed >= o.MaxFailures) {
		s.res.Stopped = true
		s.stop()
	}
}

// skipDependents marks every not yet resolved task downstream of i as skipped,
// naming i as the cause (reported once, not as a cascade of failures).
func (s *scheduler) skipDependents(i int32) {
	stack := []int32{i}
	cause := s.g.Tasks[i].ID
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, u := range s.g.users[n] {
			if !s.runs[u] || s.resolved[u] {
				continue
			}
			s.resolve(u)
			s.res.Skipped++
			s.p.Skipped.Add(1)
			s.res.SkippedBy = append(s.res.SkippedBy, Skipped{ID: s.g.Tasks[u].ID, Cause: cause})
			if s.o.Events != nil {
				e := s.event(EventSkipped, u, 0, s.o.Now())
				e.Cause = cause
				s.o.Events(e)
			}
			s.o.Log.Debug().Str("task", s.g.Tasks[u].ID).Str("failed_dependency", cause).Msg("skipped")
			stack = append(stack, u)
		}
	}
}

func (s *scheduler) resolve(i int32) {
	s.resolved[i] = true
	s.remaining--
	s.p.Queued.Add(-1)
}

// stop starts no new attempt; in-flight ones get Options.Grace.
func (s *scheduler) stop() {
	if !s.stopping {
		s.stopping = true
		close(s.stopped)
		s.grace = time.After(s.o.Grace)
	}
}

// report tells Options.Events how an attempt of task i ended.
func (s *scheduler) report(typ EventType, i int32, out outcome, retryIn time.Duration) {
	if s.o.Events == nil {
		return
	}
	now := s.o.Now()
	e := s.event(typ, i, s.attempts[i], now)
	e.Took, e.RetryIn, e.MaybeApplied = now.Sub(s.sentAt[i]), retryIn, out.maybeApplied
	if out.err != nil {
		e.Error = s.o.Redactor.RedactValue(out.err.Error())
	}
	s.o.Events(e)
}

// finish counts what was never resolved (not started, or in doubt after a cancel)
// and sorts the lists of the result.
func (s *scheduler) finish() {
	for i := range s.g.Tasks {
		if s.runs[i] && !s.resolved[i] {
			if rec := s.recs[i]; rec != nil && rec.Status == state.Started {
				s.res.InDoubt++
			} else {
				s.res.NotStarted++
			}
		}
	}
	sort.Slice(s.res.Failures, func(a, b int) bool { return s.res.Failures[a].ID < s.res.Failures[b].ID })
	sort.Slice(s.res.SkippedBy, func(a, b int) bool { return s.res.SkippedBy[a].ID < s.res.SkippedBy[b].ID })
}
