// Package state keeps one bbolt file per plan: a record per task (spec hash, status,
// attempts, timestamps, last error, outputs) and the lock that keeps two runs off one
// file. Writes are durable when Put returns; concurrent Puts are group-committed into
// one transaction. Secret outputs are encrypted with AES-256-GCM under the operator's
// key, or not stored at all when no key is given. A Store is safe for concurrent use.
package state

import (
	"encoding/json"
	"errors"
	"time"
)

// Status of a task record.
type Status uint8

const (
	// Pending: known, never started.
	Pending Status = iota
	// Started: intent recorded, no result yet. Found on open, it means "in doubt".
	Started
	// Done: applied; Hash says for which spec.
	Done
	// Failed: the last attempt failed; LastError says why.
	Failed
)

func (s Status) String() string {
	switch s {
	case Pending:
		return "pending"
	case Started:
		return "started"
	case Done:
		return "done"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Output is one task output. Secret outputs are encrypted at rest (or dropped).
type Output struct {
	Value  string `json:"v"`
	Secret bool   `json:"s,omitempty"`
}

// Outputs by name.
type Outputs map[string]Output

// Plain returns a non-secret output.
func Plain(v string) Output { return Output{Value: v} }

// SecretOutput returns a secret output.
func SecretOutput(v string) Output { return Output{Value: v, Secret: true} }

// Record is the state of one task.
type Record struct {
	ID         string
	Hash       [32]byte
	Status     Status
	Attempts   int
	StartedAt  time.Time
	FinishedAt time.Time
	LastError  string
	Outputs    Outputs
	// SecretsDropped is set when secret outputs were produced but not stored (no key),
	// or could not be decrypted on read (key missing): the provider must recover.
	SecretsDropped bool
	// MaybeApplied: the last attempt failed after its request may have taken effect;
	// the next attempt is in doubt and must look the object up first.
	MaybeApplied bool
	// Info, when set, is stored beside the record by Put (Load does not read it
	// back: see Store.Infos).
	Info *TaskInfo
}

// TaskInfo is what a done task leaves for the lifecycle commands (removed items,
// destroy, field-by-field changes): never a secret.
type TaskInfo struct {
	Kind     string `json:"kind"`
	Endpoint string `json:"endpoint,omitempty"`
	// Spec is the task's resolved spec as JSON, secret fields masked.
	Spec json.RawMessage `json:"spec,omitempty"`
	// Deps are the tasks it depended on (reverse order for deletes).
	Deps []string `json:"deps,omitempty"`
	// Adopted: the task found its object existing and took it over rather than
	// creating it; destroy leaves such objects alone unless asked. Once set, it
	// stays set for the task (Put keeps it).
	Adopted bool `json:"adopted,omitempty"`
}

// Sentinel errors; match with errors.Is.
var (
	// ErrLocked: another process holds the state file (a run is going on).
	ErrLocked = errors.New("state file is in use by another provision process")
	// ErrCorrupt: the file is not a valid provision state file; it is left untouched.
	ErrCorrupt = errors.New("state file is corrupt or not a provision state file")
	// ErrOtherPlan: the file belongs to a different plan.
	ErrOtherPlan = errors.New("state file belongs to another plan")
	// ErrOtherTarget: the file was written against other endpoints (another URL,
	// account, or the sandbox): its records say nothing about this run's target.
	ErrOtherTarget = errors.New("state file was written against other endpoints")
	// ErrWrongKey: the state key does not decrypt this file's secret outputs.
	ErrWrongKey = errors.New("state key does not match the key this state file was written with")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("state store is closed")
)

// KeyEnv is the environment variable that holds the state key: 32 bytes in base64
// (or 64 hex digits), or any other string used as a passphrase (PBKDF2-SHA256 with a
// per-file salt).
const KeyEnv = "PROVISION_STATE_KEY"
