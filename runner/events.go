package runner

import "time"

// EventType names what happened to a task.
type EventType string

// Task events, in the order a task may see them: started (an attempt's intent is
// durable and it takes an apply slot), then retrying (the attempt failed and
// another follows) and started again, until done or failed; skipped when a
// dependency failed.
const (
	EventStarted  EventType = "started"
	EventRetrying EventType = "retrying"
	EventDone     EventType = "done"
	EventFailed   EventType = "failed"
	EventSkipped  EventType = "skipped"
)

// Event is one task event (Options.Events). Error is redacted; no field holds a
// secret.
type Event struct {
	Time     time.Time
	Type     EventType
	Task     string
	Kind     string // plan section
	Endpoint string
	Attempt  int // attempts in this run so far (0 for skipped)
	// Took is how long the attempt ran, handed over to done from the worker
	// (done, failed, retrying).
	Took time.Duration
	// RetryIn is the delay before the next attempt (retrying).
	RetryIn time.Duration
	Error   string
	// MaybeApplied: the failed attempt may have taken effect (in doubt until a
	// later attempt looks the object up).
	MaybeApplied bool
	// Cause is the failed dependency (skipped).
	Cause string
}
