package runner

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"provision/providers"
	"provision/state"
)

// holdDone is a real store whose Put of task id's done record waits until release
// is closed (or a generous timeout, so that a regression fails instead of hanging).
type holdDone struct {
	*state.Store
	id      string
	held    chan struct{} // closed when the done Put of id is waiting
	release chan struct{}
	timeout atomic.Bool
}

func (h *holdDone) Put(recs ...*state.Record) error {
	for _, r := range recs {
		if r.ID == h.id && r.Status == state.Done {
			close(h.held)
			select {
			case <-h.release:
			case <-time.After(10 * time.Second):
				h.timeout.Store(true)
			}
		}
	}
	return h.Store.Put(recs...)
}

func TestRunner_Run_WorkerTakesNextTaskWhileDoneRecordCommits(t *testing.T) {
	st := &holdDone{Store: openStore(t, filepath.Join(t.TempDir(), "s.db")), id: "a",
		held: make(chan struct{}), release: make(chan struct{})}
	var bRan atomic.Bool
	var userSaw atomic.Value
	g := mustGraph(t,
		task("a", nil, ok()),
		// With one worker, b can only run while a's done record is still being
		// committed if the worker does not wait for that commit.
		task("b", nil, func(context.Context, *providers.Exec) (state.Outputs, error) {
			<-st.held
			bRan.Store(true)
			close(st.release)
			return nil, nil
		}),
		// A user of a starts only once a's done record is durable.
		task("c", []string{"a"}, func(context.Context, *providers.Exec) (state.Outputs, error) {
			rec, _, err := st.Get("a")
			if err != nil {
				return nil, err
			}
			userSaw.Store(rec.Status)
			return nil, nil
		}),
	)
	o := opts()
	o.Parallel = 1
	res, err := Run(context.Background(), g, st, o)
	if err != nil {
		t.Fatal(err)
	}
	if st.timeout.Load() || !bRan.Load() {
		t.Fatalf("the worker waited for a's done commit before taking b (timeout=%v b ran=%v)", st.timeout.Load(), bRan.Load())
	}
	if got, _ := userSaw.Load().(state.Status); got != state.Done {
		t.Errorf("c started while a's record was %v, want done (durable before its users start)", got)
	}
	if res.Applied != 3 || !res.OK() {
		t.Errorf("res = %+v", res)
	}
}
