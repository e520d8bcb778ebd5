package runner

import (
	"fmt"
	"time"

	"provision/state"
)

// Verb is what a run will do with a task.
type Verb string

const (
	// Create: never applied.
	Create Verb = "create"
	// Update: done before with a different spec; applied again.
	Update Verb = "update"
	// Skip: done with this spec.
	Skip Verb = "skip"
	// Retry: failed or in doubt; applied again (in-doubt ones reconcile first).
	Retry Verb = "retry"
	// Remove: in the state but no longer in the plan; apply leaves it, apply
	// --prune deletes it.
	Remove Verb = "remove"
	// Adopt: never applied, but plan --probe found the object remotely: the run
	// takes it over instead of creating it (dry run only; Decide never says it).
	Adopt Verb = "adopt"
)

// Decision is the dry-run verdict for one task.
type Decision struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Verb   Verb   `json:"action"`
	Reason string `json:"reason"`
	// InDoubt: an attempt started and never recorded a result.
	InDoubt bool `json:"in_doubt,omitempty"`
	// Changes are the fields an update changes (or drift puts back), when known.
	Changes []Change `json:"changes,omitempty"`
}

// Change is one field that differs: Old is what the state recorded (or the remote
// object holds, for drift), New what the plan wants. Secret fields show only as
// "(changed)".
type Change struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// Decide returns what a run would do with a task given its record (nil: none).
// It is the single source of truth for both the dry run (provision plan) and the
// runner: Run applies the tasks whose Decision Runs, and tells each attempt
// whether it is InDoubt and Changed from the Decision on its record.
func Decide(id, kind string, hash [32]byte, rec *state.Record) Decision {
	d := Decision{ID: id, Kind: kind}
	if rec == nil {
		d.Verb, d.Reason = Create, "not applied yet"
		return d
	}
	switch rec.Status {
	case state.Done:
		if rec.Hash == hash {
			d.Verb, d.Reason = Skip, "done "+stamp(rec.FinishedAt)
		} else {
			d.Verb, d.Reason = Update, "spec changed since it was done "+stamp(rec.FinishedAt)
		}
	case state.Started:
		d.Verb, d.InDoubt = Retry, true
		d.Reason = fmt.Sprintf("in doubt: attempt %d started %s and recorded no result; will look it up before creating", rec.Attempts, stamp(rec.StartedAt))
	case state.Failed:
		d.Verb = Retry
		d.Reason = fmt.Sprintf("failed after %d attempt(s): %s", rec.Attempts, rec.LastError)
		if rec.MaybeApplied {
			d.InDoubt = true
			d.Reason = fmt.Sprintf("in doubt: attempt %d failed after its request may have taken effect (%s); will look it up before creating", rec.Attempts, rec.LastError)
		}
	default:
		d.Verb, d.Reason = Create, "not applied yet"
	}
	return d
}

// Runs reports whether a run applies the task: every verb but Skip, and Skip when
// the run is told to force it (apply --refresh puts drift back).
func (d Decision) Runs(force bool) bool { return d.Verb != Skip || force }

// Changed reports whether the task was done before and a run applies it again: its
// spec changed (Update), or it is done and forced. Providers then update rather
// than create.
func (d Decision) Changed(force bool) bool { return d.Verb == Update || d.Verb == Skip && force }

func stamp(t time.Time) string {
	if t.IsZero() {
		return "(time unknown)"
	}
	return t.UTC().Format(time.RFC3339)
}

// Totals counts decisions by verb.
type Totals struct {
	Create int `json:"create"`
	Adopt  int `json:"adopt"`
	Update int `json:"update"`
	Skip   int `json:"skip"`
	Retry  int `json:"retry"`
	Remove int `json:"remove"`
	Total  int `json:"total"`
}

// Add counts one decision.
func (t *Totals) Add(d Decision) {
	t.Total++
	switch d.Verb {
	case Create:
		t.Create++
	case Adopt:
		t.Adopt++
	case Update:
		t.Update++
	case Skip:
		t.Skip++
	case Retry:
		t.Retry++
	case Remove:
		t.Remove++
	}
}
