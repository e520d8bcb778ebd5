package runner

import (
	"context"
	"crypto/sha256"
	"slices"
	"sort"
	"time"

	"provision/providers"
	"provision/state"
)

// Deleting what a plan created runs through Run like applying it: intent before
// each delete, the result after, retries, lookups for deletes in doubt, resume.
// A delete task has the ID of the task whose object it removes, so its record
// takes over that task's record; its spec hash is DeleteHash of the record's, so
// that a record done with it says the delete is done.

// DestroyedOutput marks a record whose object a delete task removed. The record
// is deleted right after the run (ForgetDestroyed), or by the next command that
// opens the state for writing: a kill in between leaves the mark, never a record
// that looks done.
const DestroyedOutput = "_destroyed"

// Destroyed reports whether rec carries the mark of a finished delete.
func Destroyed(rec *state.Record) bool {
	_, gone := rec.Outputs[DestroyedOutput]
	return gone
}

// Deletable reports whether a record may stand for a remote object: some attempt
// was made (a pending record without outputs made nothing) and no delete of it
// has finished.
func Deletable(rec *state.Record) bool {
	return rec != nil && !(rec.Status == state.Pending && len(rec.Outputs) == 0) && !Destroyed(rec)
}

// DeleteHash is the spec hash of the delete task of a task recorded with hash h.
func DeleteHash(h [32]byte) [32]byte {
	return sha256.Sum256(append([]byte("provision destroy\x00"), h[:]...))
}

// Delete is one object to delete: the recorded task that made it.
type Delete struct {
	ID, Kind, Endpoint string
	// Record is the task's record (its hash and outputs).
	Record *state.Record
	// Deps are what the task depended on (from the plan, or its recorded info).
	Deps []string
	// Remove deletes the object; x is the delete attempt's Exec (x.Prior: the
	// record's outputs, x.InDoubt: an earlier delete attempt may have taken effect).
	Remove func(ctx context.Context, x *providers.Exec) error
}

// DeleteTasks returns the delete tasks of dels, in their order, with the edges of
// the tasks reversed: the delete of a task waits for the deletes of the tasks
// among dels that depended on it (reverse dependency order). A done delete task's
// outputs are the DestroyedOutput mark.
func DeleteTasks(dels []Delete) []*providers.Task {
	in := make(map[string]bool, len(dels))
	for _, d := range dels {
		in[d.ID] = true
	}
	users := map[string][]string{}
	for _, d := range dels {
		for _, dep := range d.Deps {
			if in[dep] {
				users[dep] = append(users[dep], d.ID)
			}
		}
	}
	tasks := make([]*providers.Task, 0, len(dels))
	for _, d := range dels {
		deps := users[d.ID]
		slices.Sort(deps)
		remove := d.Remove
		tasks = append(tasks, &providers.Task{
			ID: d.ID, Kind: d.Kind, Endpoint: d.Endpoint, Deps: deps, Hash: DeleteHash(d.Record.Hash),
			Action: providers.ActionFunc(func(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
				if err := remove(ctx, x); err != nil {
					return nil, err
				}
				return state.Outputs{DestroyedOutput: state.Plain(time.Now().UTC().Format(time.RFC3339))}, nil
			}),
		})
	}
	return tasks
}

// ForgetDestroyed deletes the records of finished deletes (done and marked with
// DestroyedOutput) and returns how many it deleted.
func ForgetDestroyed(st *state.Store) (int, error) {
	recs, err := st.Load()
	if err != nil {
		return 0, err
	}
	var ids []string
	for id, r := range recs {
		if Destroyed(r) && r.Status == state.Done {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return len(ids), st.Delete(ids...)
}
