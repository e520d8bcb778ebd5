package cloudneeti

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"provision/providers"
	"provision/providers/cloudneeti/cnfake"
	"provision/providers/lifecycletest"
	"provision/state"
)

func TestLifecycle_Destroy_SaysTheAPICannotOffboard(t *testing.T) {
	srv, url := newFake(t, nil)
	task := mustBuild(t, url)
	path := filepath.Join(t.TempDir(), "state.db")
	if res := lifecycletest.Apply(t, []*providers.Task{task}, path, ""); !res.OK() {
		t.Fatalf("apply: %+v", res)
	}
	before := srv.Snapshot()
	ocs := lifecycletest.Destroy(t, path, lifecycletest.Options{Registry: providers.NewRegistry(Kinds()...),
		Build: &providers.Build{Clients: &providers.Clients{}}, Planned: map[string]*providers.Task{task.ID: task}})
	if len(ocs) != 1 || !errors.Is(ocs[0].Err, providers.ErrCannotDelete) {
		t.Fatalf("outcomes %+v, want one ErrCannotDelete", ocs)
	}
	msg := ocs[0].Err.Error()
	if !strings.Contains(msg, "Cloudneeti portal") || !strings.Contains(msg, before.Accounts[license][0].ID) {
		t.Errorf("the error does not say what is left and what to do: %s", msg)
	}
	for _, s := range []string{apiKey, appSecret, azureSecret} {
		if strings.Contains(msg, s) {
			t.Fatalf("secret in the error: %s", msg)
		}
	}
	if after := srv.Snapshot(); !reflect.DeepEqual(after.Accounts, before.Accounts) || after.Counters != before.Counters {
		t.Errorf("destroy changed the fake: %+v, was %+v", after, before)
	}
	st, err := state.Open(path, state.Options{PlanName: lifecycletest.PlanName})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if rec, ok, _ := st.Get(task.ID); !ok || rec.Status != state.Done {
		t.Errorf("the record of what is left was not kept: %+v", rec)
	}
}

func TestLifecycle_Adoption_FirstLookAdoptsInDoubtDoesNot(t *testing.T) {
	for _, c := range []struct {
		name    string
		o       lifecycletest.Attempt
		adopted bool
	}{
		{"first look", lifecycletest.Attempt{}, true},
		{"in doubt", lifecycletest.Attempt{Attempt: 2, InDoubt: true}, false},
		{"second attempt", lifecycletest.Attempt{Attempt: 2}, false},
		{"own checkpointed account", lifecycletest.Attempt{Prior: state.Outputs{OutAccountID: state.Plain("acc-existing")}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, url := newFake(t, func(o *cnfake.Options) {
				o.Licenses[0].Accounts = []cnfake.Account{{ID: "acc-existing", Name: "acct-1", Connector: "AWS", CloudID: "123456789012"}}
			})
			task := mustBuild(t, url)
			x := lifecycletest.Exec(task, c.o)
			if _, err := task.Action.Apply(context.Background(), x); err != nil {
				t.Fatal(err)
			}
			if x.Adopted != c.adopted {
				t.Errorf("Adopted = %v, want %v", x.Adopted, c.adopted)
			}
		})
	}
	// Onboarded by this task: not adopted.
	_, url := newFake(t, nil)
	task := mustBuild(t, url)
	x := lifecycletest.Exec(task, lifecycletest.Attempt{})
	if _, err := task.Action.Apply(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	if x.Adopted {
		t.Error("an account this task onboarded is marked adopted")
	}
}

func TestLifecycle_Drift_ReportsChangesMadeInThePortal(t *testing.T) {
	srv, url := newFake(t, nil)
	task := mustBuild(t, url)
	path := filepath.Join(t.TempDir(), "state.db")
	if res := lifecycletest.Apply(t, []*providers.Task{task}, path, ""); !res.OK() {
		t.Fatalf("apply: %+v", res)
	}
	drift := func() []providers.FieldDiff {
		t.Helper()
		diffs, errs := lifecycletest.Drift(t, path, "", []*providers.Task{mustBuild(t, url)})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		d, ok := diffs[task.ID]
		if !ok {
			t.Fatal("the task was not checked")
		}
		return d
	}
	if d := drift(); len(d) != 0 {
		t.Fatalf("drift %+v on an untouched account", d)
	}
	id := srv.Snapshot().Accounts[license][0].ID
	srv.EditAccount(license, id, func(a *cnfake.Account) { a.Name, a.Scope = "acct-1-renamed", nil })
	want := []providers.FieldDiff{{Field: "account_name", Want: "acct-1", Got: "acct-1-renamed"}, {Field: "api_scope", Want: "true", Got: "false"}}
	if d := drift(); !reflect.DeepEqual(d, want) {
		t.Errorf("drift %+v, want %+v", d, want)
	}
	srv.RemoveAccount(license, id)
	if d := drift(); len(d) != 1 || d[0].Field != "" || d[0].Got != "(missing)" {
		t.Errorf("drift %+v, want missing", d)
	}
}
