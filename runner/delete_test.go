package runner

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"provision/providers"
	"provision/state"
)

// Deletes run through Run in reverse dependency order; a done delete marks its
// record, which ForgetDestroyed then removes; a rerun deletes nothing again.
func TestDeleteTasks_DependentsFirstMarkedThenForgotten(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	g := mustGraph(t, task("sys", nil, ok()), task("sys/share/a", []string{"sys"}, ok()), task("other", nil, ok()))
	if res, err := Run(context.Background(), g, st, opts()); err != nil || !res.OK() {
		t.Fatalf("apply: %+v %v", res, err)
	}
	recs, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var deleted []string
	var dels []Delete
	for _, tk := range g.Tasks {
		if !Deletable(recs[tk.ID]) {
			t.Fatalf("%s: a done record is not deletable", tk.ID)
		}
		id := tk.ID
		dels = append(dels, Delete{ID: id, Kind: tk.Kind, Record: recs[id], Deps: tk.Deps, Remove: func(_ context.Context, x *providers.Exec) error {
			mu.Lock()
			defer mu.Unlock()
			if id == "sys" && !slices.Contains(deleted, "sys/share/a") {
				t.Error("sys deleted before the share that depends on it")
			}
			deleted = append(deleted, id)
			return nil
		}})
	}
	dg := mustGraph(t, DeleteTasks(dels)...)
	res, err := Run(context.Background(), dg, st, opts())
	if err != nil || !res.OK() || res.Applied != 3 {
		t.Fatalf("destroy: %+v %v", res, err)
	}
	if r := mustGet(t, st, "sys"); !Destroyed(r) || Deletable(r) || r.Status != state.Done {
		t.Errorf("a done delete's record: %+v", r)
	}
	// Until forgotten, a rerun finds the deletes done and sends nothing.
	deleted = nil
	if res, err := Run(context.Background(), dg, st, opts()); err != nil || res.UpToDate != 3 || len(deleted) != 0 {
		t.Errorf("rerun: %+v %v, deleted %v", res, err, deleted)
	}
	if n, err := ForgetDestroyed(st); err != nil || n != 3 {
		t.Fatalf("forget: %d %v", n, err)
	}
	if recs, err := st.Load(); err != nil || len(recs) != 0 {
		t.Errorf("records left: %v %v", recs, err)
	}
}
