package main

// The JSON every command prints shares one vocabulary (docs/json.md): snake_case
// keys, the same name for the same thing in every document (a count "failed", the
// list "failures"; "in_doubt", never "started"; durations in "_ms"), timestamps
// omitted when zero, top-level lists [] rather than null, and schema_version.

import (
	"time"

	"provision/providers/rest"
	"provision/runner"
)

// jsonSchemaVersion is the version of the vocabulary (docs/json.md). 2: the shared
// vocabulary; plan --json and the state commands said 1 before it.
const jsonSchemaVersion = 2

// nonNil turns a nil list into an empty one, so that JSON says [] and not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// runJSON is a run of the runner (apply, destroy, apply --prune's deletes): the
// only JSON form of a runner.Result, which has none of its own.
type runJSON struct {
	Total      int `json:"total"`
	UpToDate   int `json:"up_to_date"`
	Applied    int `json:"applied"`
	Failed     int `json:"failed"`
	Skipped    int `json:"skipped"`
	NotStarted int `json:"not_started"`
	InDoubt    int `json:"in_doubt"`
	Retries    int `json:"retries"`
	// Throttled: retries after throttled answers (they cost no attempt).
	Throttled int `json:"throttled_retries"`
	// Interrupted: a stop was requested (signal); Stopped: the failure budget ran out.
	Interrupted    bool      `json:"interrupted"`
	Stopped        bool      `json:"stopped"`
	ElapsedMS      int64     `json:"elapsed_ms"`
	TasksPerSecond float64   `json:"tasks_per_second"`
	Failures       []failure `json:"failures"`
	SkippedTasks   []skipped `json:"skipped_tasks"`
}

// failure is a failed task, in a run's report or in status.
type failure struct {
	ID       string `json:"id"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error"`
	// FinishedAt: when its last attempt ended (status; omitted when unknown).
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// skipped is a task not run because a dependency failed.
type skipped struct {
	ID    string `json:"id"`
	Cause string `json:"failed_dependency"`
}

func runOf(res *runner.Result) runJSON {
	r := runJSON{Total: res.Total, UpToDate: res.UpToDate, Applied: res.Applied, Failed: res.Failed, Skipped: res.Skipped,
		NotStarted: res.NotStarted, InDoubt: res.InDoubt, Retries: res.Retries, Throttled: res.Throttled, Interrupted: res.Interrupted, Stopped: res.Stopped,
		ElapsedMS: res.Elapsed.Milliseconds(), TasksPerSecond: rate(res.Applied+res.Failed, res.Elapsed),
		Failures: []failure{}, SkippedTasks: []skipped{}}
	for _, f := range res.Failures {
		r.Failures = append(r.Failures, failure{ID: f.ID, Attempts: f.Attempts, Error: f.Error})
	}
	for _, s := range res.SkippedBy {
		r.SkippedTasks = append(r.SkippedTasks, skipped{ID: s.ID, Cause: s.Cause})
	}
	return r
}

// applyJSON is apply --json.
type applyJSON struct {
	SchemaVersion int    `json:"schema_version"`
	Plan          string `json:"plan"`
	State         string `json:"state"`
	runJSON
	// Removed: tasks in the state the plan no longer lists, left alone (no --prune).
	Removed []string `json:"removed"`
	// Pruned: the deletes of removed tasks (--prune).
	Pruned *deletesJSON `json:"pruned,omitempty"`
	// Endpoints: per endpoint, the rate it settled at and its throttled answers.
	Endpoints []rest.RateStats `json:"endpoints"`
	// Sandbox: requests and injected faults of an in-process sandbox.
	Sandbox *sandboxJSON `json:"sandbox,omitempty"`
}

// deletesJSON is a run of deletes (destroy --json, apply --prune).
type deletesJSON struct {
	runJSON
	Kept []keptLine `json:"kept"`
}

// destroyJSON is destroy --json.
type destroyJSON struct {
	SchemaVersion int    `json:"schema_version"`
	Plan          string `json:"plan"`
	State         string `json:"state"`
	deletesJSON
}

// sandboxJSON is the sandbox's count of requests and injected faults.
type sandboxJSON struct {
	Requests      int64 `json:"requests"`
	Faults5xx     int64 `json:"faults_5xx"`
	Faults429     int64 `json:"faults_429"`
	FaultsDropped int64 `json:"faults_dropped"`
	FaultsLost    int64 `json:"faults_lost"`
	// Throttled: requests the fakes' rate limit (--fault-rate-limit) answered 429.
	Throttled int64 `json:"throttled"`
}

func applyJSONOf(r *applyReport, sb *sandboxRun) applyJSON {
	out := applyJSON{SchemaVersion: jsonSchemaVersion, Plan: r.Plan, State: r.State, runJSON: runOf(r.Result), Removed: nonNil(r.Removed), Endpoints: nonNil(r.Endpoints)}
	if r.Pruned != nil {
		out.Pruned = &deletesJSON{runJSON: runOf(r.Pruned.Result), Kept: nonNil(r.Pruned.Kept)}
	}
	if sb != nil {
		out.Sandbox = sb.Stats()
	}
	return out
}

// eventJSON is one line of apply --events FILE.
type eventJSON struct {
	SchemaVersion int       `json:"schema_version"`
	Time          time.Time `json:"time"`
	Event         string    `json:"event"` // started, retrying, done, failed, skipped
	Plan          string    `json:"plan"`
	Task          string    `json:"task"`
	Kind          string    `json:"kind"`
	Endpoint      string    `json:"endpoint,omitempty"`
	Attempt       int       `json:"attempt,omitempty"`
	TookMS        *int64    `json:"took_ms,omitempty"`
	RetryInMS     *int64    `json:"retry_in_ms,omitempty"`
	Error         string    `json:"error,omitempty"`
	MaybeApplied  bool      `json:"maybe_applied,omitempty"`
	Cause         string    `json:"failed_dependency,omitempty"`
}

func eventJSONOf(plan string, e runner.Event) eventJSON {
	out := eventJSON{SchemaVersion: jsonSchemaVersion, Time: e.Time.UTC(), Event: string(e.Type), Plan: plan, Task: e.Task, Kind: e.Kind,
		Endpoint: e.Endpoint, Attempt: e.Attempt, Error: e.Error, MaybeApplied: e.MaybeApplied, Cause: e.Cause}
	switch e.Type {
	case runner.EventDone, runner.EventFailed, runner.EventRetrying:
		ms := e.Took.Milliseconds()
		out.TookMS = &ms
	}
	if e.Type == runner.EventRetrying {
		ms := e.RetryIn.Milliseconds()
		out.RetryInMS = &ms
	}
	return out
}
