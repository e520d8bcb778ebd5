// Package runner executes a task graph: bounded parallelism, dependencies, retries
// with backoff, checkpoints in the state store (intent before effect, result after),
// skipping of dependents after a failure, and a graceful stop.
//
// Concurrency: one coordinator goroutine owns the scheduling state; a fixed pool of
// workers runs attempts. An apply slot (Options.Parallel of them) is taken only to
// apply: tasks waiting for dependencies or sleeping before a retry hold nothing, and
// neither do the commits of an attempt's intent and of its result. Per-endpoint limits are
// applied inside the API clients, around each request.
package runner

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/state"
)

// Store is the part of *state.Store the runner uses.
type Store interface {
	Load() (map[string]*state.Record, error)
	Put(recs ...*state.Record) error
	PutWithin(linger time.Duration, recs ...*state.Record) error
	Delete(ids ...string) error
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
	ID       string
	Attempts int
	Error    string
}

// Skipped is a task not run because a dependency failed.
type Skipped struct {
	ID    string
	Cause string
}

// Result summarises a run. It has no JSON form of its own: the commands print
// theirs (cmd/provision jsonview.go, docs/json.md).
type Result struct {
	Total      int
	UpToDate   int
	Applied    int
	Failed     int
	Skipped    int
	NotStarted int
	InDoubt    int
	Retries    int
	// Throttled counts retries after throttled answers (they cost no attempt).
	Throttled int
	// Interrupted: a stop was requested (signal); Stopped: the failure budget ran out.
	Interrupted bool
	Stopped     bool
	Elapsed     time.Duration
	Failures    []Failure
	SkippedBy   []Skipped
}

// OK reports whether every selected task is done.
func (r *Result) OK() bool {
	return r.Failed == 0 && r.Skipped == 0 && r.NotStarted == 0 && r.InDoubt == 0 && !r.Interrupted
}

// ErrStateWrite wraps a failure to record a checkpoint: the run stops at once.
var ErrStateWrite = errors.New("cannot write state")

// Run applies the graph. ctx ending is a stop request: no new task starts,
// in-flight ones get Options.Grace to finish, and Run returns with Interrupted set.
// The error is non-nil only when the run could not go on (state unreadable or unwritable).
// What Run does with each task is what Decide says of its record, so that the dry
// run (provision plan) and the run cannot disagree.
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
	s := newScheduler(g, st, o, loaded, sel)
	err = s.walk(ctx)
	s.finish()
	s.res.Elapsed = time.Since(start)
	return s.res, err
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
