package main

import (
	"context"
	"io"
	"testing"
	"time"

	"provision/state"
)

// seedGoldenState writes records that give one task of every dry-run verb.
func seedGoldenState(t *testing.T, planPath, statePath string) {
	t.Helper()
	var c common
	l, err := c.load(context.Background(), planPath, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(statePath, state.Options{PlanName: l.plan.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	hash := func(id string) [32]byte {
		tk, ok := l.graph.Task(id)
		if !ok {
			t.Fatalf("no task %s", id)
		}
		return tk.Hash
	}
	recs := []*state.Record{
		{ID: "done-item", Hash: hash("done-item"), Status: state.Done, Attempts: 1, StartedAt: at, FinishedAt: at},
		{ID: "edited-item", Hash: [32]byte{1}, Status: state.Done, Attempts: 1, StartedAt: at, FinishedAt: at},
		{ID: "failed-item", Hash: hash("failed-item"), Status: state.Failed, Attempts: 2, StartedAt: at, FinishedAt: at, LastError: "PUT /v1/things: HTTP 403: not allowed"},
		{ID: "in-doubt-item", Hash: hash("in-doubt-item"), Status: state.Started, Attempts: 1, StartedAt: at},
	}
	if err := st.Put(recs...); err != nil {
		t.Fatal(err)
	}
}
