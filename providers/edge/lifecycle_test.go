package edge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"provision/providers"
	"provision/providers/edge/edgefake"
	"provision/providers/lifecycletest"
	"provision/state"
)

// deletable is what destroy can remove: users, labels, projects and registries.
type deletable struct {
	Users      []string
	Labels     []string
	Projects   []string
	Registries []string
}

func deletableOf(s *edgefake.Server) deletable {
	snap := s.Snapshot()
	var d deletable
	for _, u := range snap.Users {
		d.Users = append(d.Users, u.Name)
	}
	for _, c := range snap.Clusters {
		for _, l := range c.Labels {
			d.Labels = append(d.Labels, c.Name+":"+l)
		}
		for _, n := range c.Nodes {
			for _, l := range n.Labels {
				d.Labels = append(d.Labels, c.Name+"/"+n.Name+":"+l)
			}
		}
	}
	for _, p := range snap.Projects {
		d.Projects = append(d.Projects, p.Name)
	}
	for _, r := range snap.Registries {
		d.Registries = append(d.Registries, r.ID)
	}
	return d
}

func (w *world) all() []*providers.Task {
	var out []*providers.Task
	for _, t := range w.tasks {
		out = append(out, t)
	}
	return out
}

// loseOnce makes the fake apply the first request to method and a path starting
// with prefix, then drop its answer.
func (w *world) loseOnce(method, prefix string) func() bool {
	var mu sync.Mutex
	hit := false
	f := func(rw http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if hit || r.Method != method || !strings.HasPrefix(r.URL.Path, prefix) {
			return false
		}
		hit = true
		w.srv.ServeHTTP(httptest.NewRecorder(), r)
		panic(http.ErrAbortHandler)
	}
	w.intercept.Store(&f)
	return func() bool { mu.Lock(); defer mu.Unlock(); return hit }
}

func TestLifecycle_ApplyThenDestroy_RemovesWhatTheAPICanDelete(t *testing.T) {
	for _, lose := range []struct{ method, prefix string }{
		{}, {"DELETE", "/v1/admin/user/"}, {"DELETE", "/v1/cluster/label"}, {"DELETE", "/v1/node/label"},
		{"DELETE", "/v1/repository/project"}, {"DELETE", "/v1/repository/third"},
	} {
		t.Run("lost answer on "+lose.method+" "+lose.prefix, func(t *testing.T) {
			w := newWorld(t, edgefake.Options{})
			before := deletableOf(w.srv)
			w.build(testPlan)
			path := filepath.Join(w.dir, "state.db")
			if res := lifecycletest.Apply(t, w.all(), path, ""); !res.OK() {
				t.Fatalf("apply: %+v", res)
			}
			applied := w.srv.Snapshot()
			saved := filepath.Join(w.dir, "saved.db")
			lifecycletest.CopyFile(t, path, saved)
			landed := func() bool { return true }
			if lose.method != "" {
				landed = w.loseOnce(lose.method, lose.prefix)
			}
			var logs strings.Builder
			log := zerolog.New(&logs)
			reg := providers.NewRegistry(Kinds()...)
			ocs := lifecycletest.Destroy(t, path, lifecycletest.Options{Registry: reg, Build: w.b, Planned: w.tasks, Log: &log})
			if f := lifecycletest.Failed(ocs); len(f) > 0 {
				t.Fatalf("destroy failed: %v", f)
			}
			if !landed() {
				t.Fatal("the lost answer never happened")
			}
			retried := false
			for _, oc := range ocs {
				retried = retried || oc.Attempts > 1
			}
			if retried != (lose.method != "") {
				t.Errorf("a delete was retried: %v (%+v)", retried, ocs)
			}
			for _, oc := range ocs {
				cannot := errors.Is(oc.Err, providers.ErrCannotDelete)
				wantCannot := oc.ID == "retail" || oc.ID == "ci-pusher" || oc.ID == "people-counter"
				if cannot != wantCannot {
					t.Errorf("%s: err %v, want ErrCannotDelete: %v", oc.ID, oc.Err, wantCannot)
				}
				if cannot && !strings.Contains(oc.Err.Error(), "by hand") {
					t.Errorf("%s: the error does not say what to do: %v", oc.ID, oc.Err)
				}
			}
			if after := deletableOf(w.srv); !reflect.DeepEqual(after, before) {
				t.Fatalf("after destroy:\n%+v\nbefore apply:\n%+v", after, before)
			}
			// What the API cannot delete is still there, and reported.
			snap := w.srv.Snapshot()
			if len(snap.Businesses) != len(applied.Businesses) || len(snap.Apps) != len(applied.Apps) || len(snap.RepoUsers) != len(applied.RepoUsers) {
				t.Errorf("undeletable objects changed: %+v", snap)
			}
			for _, s := range secrets {
				if strings.Contains(logs.String(), s) {
					t.Fatal("a secret reached the log")
				}
			}
			// Repeated from the same records: nothing left, nothing fails.
			ocs = lifecycletest.Destroy(t, saved, lifecycletest.Options{Registry: reg, Build: w.b, Planned: w.tasks})
			if f := lifecycletest.Failed(ocs); len(f) > 0 {
				t.Fatalf("repeated destroy failed: %v", f)
			}
			if after := deletableOf(w.srv); !reflect.DeepEqual(after, before) {
				t.Fatalf("after a repeated destroy: %+v", after)
			}
		})
	}
}

func TestLifecycle_Destroy_WithoutThePlanUsesTheRecords(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	before := deletableOf(w.srv)
	w.build(testPlan)
	path := filepath.Join(w.dir, "state.db")
	if res := lifecycletest.Apply(t, w.all(), path, ""); !res.OK() {
		t.Fatalf("apply: %+v", res)
	}
	// The plan now lists no item: only its endpoint is left.
	w.build(strings.SplitN(testPlan, "edge_users:", 2)[0])
	ocs := lifecycletest.Destroy(t, path, lifecycletest.Options{Registry: providers.NewRegistry(Kinds()...), Build: w.b})
	if f := lifecycletest.Failed(ocs); len(f) > 0 {
		t.Fatalf("destroy failed: %v", f)
	}
	if after := deletableOf(w.srv); !reflect.DeepEqual(after, before) {
		t.Fatalf("after destroy:\n%+v\nbefore apply:\n%+v", after, before)
	}
}

func TestLifecycle_Destroy_LabelsOnlyWhereTheTaskPutThem(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	// cluster-a and edge-a1 carry the labels before the plan runs.
	if err := w.adminConn().LabelClusters(context.Background(), "retail-eu", []string{"cluster-a"}); err != nil {
		t.Fatal(err)
	}
	if err := w.adminConn().LabelNodes(context.Background(), "cluster-a", "camera-gateway", []string{"edge-a1"}); err != nil {
		t.Fatal(err)
	}
	before := deletableOf(w.srv)
	w.build(testPlan)
	path := filepath.Join(w.dir, "state.db")
	only := []*providers.Task{w.tasks["label-eu"], w.tasks["gw-a"]}
	if res := lifecycletest.Apply(t, only, path, ""); !res.OK() {
		t.Fatalf("apply: %+v", res)
	}
	ocs := lifecycletest.Destroy(t, path, lifecycletest.Options{Registry: providers.NewRegistry(Kinds()...), Build: w.b, Planned: w.tasks})
	if f := lifecycletest.Failed(ocs); len(f) > 0 || len(ocs) != 2 {
		t.Fatalf("destroy: %+v", ocs)
	}
	if after := deletableOf(w.srv); !reflect.DeepEqual(after, before) {
		t.Fatalf("after destroy:\n%+v\nbefore apply:\n%+v", after, before)
	}
}

func TestLifecycle_Adoption_FirstLookAdoptsInDoubtDoesNot(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	ctx := context.Background()
	w.srv.SeedUser("retail-admin", retailPW, true, edgefake.Approved)
	if _, err := w.adminConn().CreateProject(ctx, "retail-apps", false); err != nil {
		t.Fatal(err)
	}
	if err := w.adminConn().LabelClusters(ctx, "retail-eu", []string{"cluster-a", "cluster-b"}); err != nil {
		t.Fatal(err)
	}
	w.build(testPlan)
	for _, id := range []string{"retail-admin", "retail-apps", "label-eu"} {
		for _, c := range []struct {
			name    string
			attempt int
			inDoubt bool
			adopted bool
		}{{"first look", 1, false, true}, {"in doubt", 2, true, false}, {"second attempt", 2, false, false}} {
			x := w.exec(w.tasks[id], c.attempt, c.inDoubt, nil, state.Outputs{})
			if _, err := w.tasks[id].Action.Apply(ctx, x); err != nil {
				t.Fatal(err)
			}
			if x.Adopted != c.adopted {
				t.Errorf("%s, %s: Adopted = %v, want %v", id, c.name, x.Adopted, c.adopted)
			}
		}
	}
	// Created by the task: not adopted.
	for _, id := range []string{"retail-registry", "gw-a", "ci-pusher"} {
		x := w.exec(w.tasks[id], 1, false, nil, state.Outputs{})
		if _, err := w.tasks[id].Action.Apply(ctx, x); err != nil {
			t.Fatal(err)
		}
		if x.Adopted {
			t.Errorf("%s: an object this task created is marked adopted", id)
		}
	}
}

func TestLifecycle_Drift_ReportsChangesMadeOnThePlatform(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(testPlan)
	path := filepath.Join(w.dir, "state.db")
	if res := lifecycletest.Apply(t, w.all(), path, ""); !res.OK() {
		t.Fatalf("apply: %+v", res)
	}
	drift := func() map[string][]providers.FieldDiff {
		t.Helper()
		w.build(testPlan)
		diffs, errs := lifecycletest.Drift(t, path, "", w.all())
		for id, err := range errs {
			if id == "ci-pusher" && errors.Is(err, ErrNoReadBack) {
				continue
			}
			t.Fatalf("%s: %v", id, err)
		}
		if _, ok := errs["ci-pusher"]; !ok {
			t.Error("repository users cannot be read back, yet drift says nothing about it")
		}
		return diffs
	}
	diffs := drift()
	if len(diffs) != 8 {
		t.Fatalf("drift checked %d tasks, want 8", len(diffs))
	}
	for id, d := range diffs {
		if len(d) > 0 {
			t.Errorf("%s: drift %+v on an untouched object", id, d)
		}
	}
	ctx := context.Background()
	admin := w.adminConn()
	if err := admin.UnlabelClusters(ctx, "retail-eu", []string{"cluster-b"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.UnlabelNodes(ctx, "cluster-a", "camera-gateway", []string{"edge-a2"}); err != nil {
		t.Fatal(err)
	}
	p, err := admin.FindProject(ctx, "retail-apps")
	if err != nil || p == nil {
		t.Fatal(p, err)
	}
	if err := admin.DeleteProjects(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteRegistries(ctx, "retail-registry"); err != nil {
		t.Fatal(err)
	}
	w.srv.EditUser("retail-admin", func(u *edgefake.User) { u.Phone = "+31209999999" })
	w.srv.EditApp("people-counter", func(a *edgefake.App) { a.Image = "registry.example.com/retail/pc:1.3" })
	bz, err := admin.FindBusiness(ctx, "retail")
	if err != nil || bz == nil {
		t.Fatal(bz, err)
	}
	if err := admin.AuditBusiness(ctx, bz.ID, BusinessDisapproved, "paused"); err != nil {
		t.Fatal(err)
	}
	u, err := admin.FindUser(ctx, "retail-operator")
	if err != nil || u == nil {
		t.Fatal(u, err)
	}
	if err := admin.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	diffs = drift()
	want := map[string][]providers.FieldDiff{
		"label-eu":       {{Field: "clusters.cluster-b", Want: "label retail-eu", Got: "(missing)"}},
		"gw-a":           {{Field: "nodes.edge-a2", Want: "label camera-gateway", Got: "(missing)"}},
		"retail-admin":   {{Field: "phone", Want: "+31200000001", Got: "+31209999999"}},
		"people-counter": {{Field: "image", Want: "registry.example.com/retail/pc:1.4", Got: "registry.example.com/retail/pc:1.3"}},
		"retail":         {{Field: "status", Want: "approved", Got: "status 2"}},
	}
	for id, wd := range want {
		if !reflect.DeepEqual(diffs[id], wd) {
			t.Errorf("%s: drift %+v, want %+v", id, diffs[id], wd)
		}
	}
	for _, id := range []string{"retail-apps", "retail-registry", "retail-operator"} {
		if d := diffs[id]; len(d) != 1 || d[0].Field != "" || d[0].Got != "(missing)" {
			t.Errorf("%s: drift %+v, want missing", id, d)
		}
	}
}

func TestLifecycle_Destroy_InDoubtWithoutAnySpecDeletesNothing(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.srv.SeedUser("retail-admin", retailPW, true, edgefake.Approved)
	w.build(strings.SplitN(testPlan, "edge_users:", 2)[0])
	for _, c := range []struct{ id, section string }{{"retail-admin", UsersSection}, {"retail-registry", RegistriesSection}, {"retail-apps", RepoProjectsSection}} {
		k, _ := providers.NewRegistry(Kinds()...).Kind(c.section)
		d := &providers.Deletion{Exec: &providers.Exec{Task: &providers.Task{ID: c.id, Kind: c.section, Endpoint: "edge"},
			Attempt: 2, InDoubt: true, Log: zerolog.Nop()}}
		err := k.(providers.Remover).Delete(context.Background(), w.b, d)
		if err == nil || !strings.Contains(err.Error(), "nothing deleted") {
			t.Errorf("%s: err = %v", c.id, err)
		}
	}
	if _, ok := w.srv.Snapshot().User("retail-admin"); !ok {
		t.Fatal("a user nothing identified was deleted")
	}
}
