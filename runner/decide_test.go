package runner

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"provision/providers"
	"provision/state"
)

// The dry run and the run cannot disagree: for every kind of record a state can
// hold, Run applies a task exactly when Decide says it runs, and tells the attempt
// it is in doubt or changed exactly when the Decision says so.
func TestRunner_Run_AppliesWhatDecideSays(t *testing.T) {
	h := sha256.Sum256([]byte("spec"))
	other := sha256.Sum256([]byte("older spec"))
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		rec   *state.Record // nil: no record
		force bool
		verb  Verb
	}{
		{"no record", nil, false, Create},
		{"pending", &state.Record{Status: state.Pending, Hash: h}, false, Create},
		{"done unchanged", &state.Record{Status: state.Done, Hash: h, Attempts: 1, FinishedAt: at}, false, Skip},
		{"done unchanged forced", &state.Record{Status: state.Done, Hash: h, Attempts: 1, FinishedAt: at}, true, Skip},
		{"done with another spec", &state.Record{Status: state.Done, Hash: other, Attempts: 1, FinishedAt: at}, false, Update},
		{"started", &state.Record{Status: state.Started, Hash: h, Attempts: 1, StartedAt: at}, false, Retry},
		{"failed", &state.Record{Status: state.Failed, Hash: h, Attempts: 2, LastError: "400 bad"}, false, Retry},
		{"failed maybe applied", &state.Record{Status: state.Failed, Hash: h, Attempts: 1, MaybeApplied: true, LastError: "timeout"}, false, Retry},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
			if c.rec != nil {
				c.rec.ID = "a"
				if err := st.Put(c.rec); err != nil {
					t.Fatal(err)
				}
			}
			var rec *state.Record
			if c.rec != nil {
				rec = mustGet(t, st, "a")
			}
			d := Decide("a", "test", h, rec)
			if d.Verb != c.verb {
				t.Fatalf("Decide = %s (%s), want %s", d.Verb, d.Reason, c.verb)
			}
			var mu sync.Mutex
			var execs []providers.Exec
			a := task("a", nil, func(_ context.Context, x *providers.Exec) (state.Outputs, error) {
				mu.Lock()
				execs = append(execs, *x)
				mu.Unlock()
				return nil, nil
			})
			a.Hash = h
			o := opts()
			if c.force {
				o.Force = map[string]bool{"a": true}
			}
			res, err := Run(context.Background(), mustGraph(t, a), st, o)
			if err != nil {
				t.Fatal(err)
			}
			wantRun := d.Runs(c.force)
			if got := len(execs) == 1; got != wantRun || len(execs) > 1 {
				t.Fatalf("Decide says runs=%v (%s), the run applied it %d times", wantRun, d.Verb, len(execs))
			}
			if wantRun != (res.Applied == 1) || !wantRun != (res.UpToDate == 1) {
				t.Errorf("result %+v, Decide says runs=%v", res, wantRun)
			}
			if !wantRun {
				return
			}
			x := execs[0]
			if x.InDoubt != d.InDoubt || x.Changed != d.Changed(c.force) {
				t.Errorf("attempt told in_doubt=%v changed=%v, Decide says in_doubt=%v changed=%v", x.InDoubt, x.Changed, d.InDoubt, d.Changed(c.force))
			}
		})
	}
}
