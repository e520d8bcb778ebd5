package edge

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/providers/edge/edgefake"
	"provision/providers/fault"
	"provision/runner"
	"provision/state"
)

const adminPW = "SysAdmin123canary"

var secrets = map[string]string{"EDGE_ADMIN_PASSWORD": adminPW, "EDGE_RETAIL_ADMIN_PASSWORD": "Retail123canary", "EDGE_REGISTRY_PASSWORD": "Registry123canary"}

func sections() []string {
	var out []string
	for _, k := range Kinds() {
		out = append(out, k.Section())
	}
	return out
}

// load builds the example plan (or a variant) against url.
func load(t *testing.T, text, url string) (*runner.Graph, *plan.Plan, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	pl, err := plan.Load(p, plan.LoadOptions{Sections: sections(), Vars: map[string]string{"edge_url": url},
		Getenv: func(k string) (string, bool) { v, ok := secrets[k]; return v, ok }})
	if err != nil {
		return nil, nil, err
	}
	b := &providers.Build{Plan: pl, Clients: &providers.Clients{}}
	var tasks []*providers.Task
	var errs []string
	for _, it := range pl.Items {
		for _, k := range Kinds() {
			if k.Section() == it.Section {
				ts, err := k.Build(b, it)
				if err != nil {
					errs = append(errs, err.Error())
				}
				tasks = append(tasks, ts...)
			}
		}
	}
	if len(errs) > 0 {
		return nil, nil, errString(strings.Join(errs, "\n"))
	}
	g, err := runner.NewGraph(tasks)
	return g, pl, err
}

type errString string

func (e errString) Error() string { return string(e) }

func examplePlan(t *testing.T) string {
	b, err := os.ReadFile("../../examples/plans/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func apply(t *testing.T, g *runner.Graph, pl *plan.Plan, statePath string) *runner.Result {
	t.Helper()
	st, err := state.Open(statePath, state.Options{PlanName: pl.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := runner.Run(context.Background(), g, st, runner.Options{Parallel: 4, MaxAttempts: 10, BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond, Log: zerolog.Nop(), Redactor: pl.Redactor})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestEdge_ExamplePlan_AppliesOnceUnderFaultsAndRerunsAsNoOp(t *testing.T) {
	for _, envelope := range []bool{true, false} {
		t.Run(map[bool]string{true: "envelope", false: "plain JSON"}[envelope], func(t *testing.T) {
			srv := edgefake.New(edgefake.Options{AdminPassword: adminPW, Envelope: envelope,
				Faults: fault.Config{ErrorRate: 0.1, LostRate: 0.15, DropRate: 0.05, Seed: 7}})
			ts := httptest.NewServer(srv)
			defer ts.Close()
			g, pl, err := load(t, examplePlan(t), ts.URL)
			if err != nil {
				t.Fatal(err)
			}
			sp := filepath.Join(t.TempDir(), "s.db")
			res := apply(t, g, pl, sp)
			if !res.OK() {
				t.Fatalf("first run: %+v", res)
			}
			snap := srv.Snapshot()
			if d := srv.Duplicates(); len(d) != 0 {
				t.Fatalf("duplicates: %v", d)
			}
			if len(snap.Users) != 3 || len(snap.Businesses) != 1 || snap.Businesses[0].Status != 1 || len(snap.Apps) != 2 || len(snap.Registries) != 1 || len(snap.Projects) != 1 {
				t.Fatalf("snapshot %+v", snap)
			}
			for _, u := range snap.Users {
				if u.Status != 1 {
					t.Errorf("user %s not approved", u.Name)
				}
			}
			if len(snap.ClusterLabels["cluster-a"]) != 1 || len(snap.NodeLabels["cluster-a/edge-a1"]) != 1 {
				t.Errorf("labels %v %v", snap.ClusterLabels, snap.NodeLabels)
			}
			// A fresh state (lost state file) reruns every task: lookups adopt everything.
			srv.Faults.Set(fault.Config{})
			before := srv.Snapshot().Counters
			res = apply(t, g, pl, filepath.Join(t.TempDir(), "fresh.db"))
			after := srv.Snapshot().Counters
			if !res.OK() || after.Users != before.Users || after.Businesses != before.Businesses || after.Apps != before.Apps || after.ClusterLabels != before.ClusterLabels || after.NodeLabels != before.NodeLabels {
				t.Fatalf("rerun created objects: before %+v after %+v", before, after)
			}
		})
	}
}

func TestEdge_TokensAreRefreshed(t *testing.T) {
	srv := edgefake.New(edgefake.Options{AdminPassword: adminPW, TokenLifetime: 1500 * time.Millisecond})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	ep := &plan.Endpoint{Name: "edge", URL: ts.URL}
	c, err := newClient(ep, "admin", plan.NewSecret(adminPW), plan.NewRedactor())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := findUser(ctx, c, "admin"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(800 * time.Millisecond)
	}
	if n := srv.Snapshot().Counters; n.Logins != 1 || n.Refreshes < 1 {
		t.Errorf("logins %d refreshes %d: want one login and refreshes", n.Logins, n.Refreshes)
	}
}

func TestEdge_Build_RejectsBadFields(t *testing.T) {
	base := examplePlan(t)
	for _, tc := range []struct{ name, from, to, want string }{
		{"weak password", "password: ${env.EDGE_RETAIL_ADMIN_PASSWORD}", "password: weakpass", "password: must be 8-20 characters"},
		{"bad cluster label", "label: retail-eu", "label: retail_eu!", `label: "retail_eu!" may only use letters, digits`},
		{"bad version", `version: "1.4"`, `version: "1.4.2"`, `version: "1.4.2" must have the form x.y`},
		{"bad deploy type", "deploy_type: daemonset", "deploy_type: statefulset", `deploy_type: "statefulset" must be deployment or daemonset`},
		{"bad port", "ports: [8080]", "ports: [70000]", "ports[0]: 70000 is not a port"},
		{"unknown parent", "parent: retail-admin", "parent: nobody", `parent: no edge_users item named "nobody"`},
		{"missing phone", `phone: "+31200000001"`, "", "phone: required"},
		{"unknown field", "scale: small", "scale: small\n      scope: big", `unknown field "scope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(base, tc.from, tc.to, 1)
			if text == base {
				t.Fatalf("replacement %q not found", tc.from)
			}
			_, _, err := load(t, text, "http://127.0.0.1:1")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Fatal("secret in error")
				}
			}
		})
	}
}

func TestEdge_ErrorAnswersAreClear(t *testing.T) {
	srv := edgefake.New(edgefake.Options{AdminPassword: "Different123"})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	g, pl, err := load(t, examplePlan(t), ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	res := apply(t, g, pl, filepath.Join(t.TempDir(), "s.db"))
	if res.Failed == 0 {
		t.Fatal("wrong admin password did not fail")
	}
	for _, f := range res.Failures {
		if !strings.Contains(f.Error, "wrong user name or password") {
			t.Errorf("%s: %s", f.ID, f.Error)
		}
		if f.Attempts != 1 {
			t.Errorf("%s: a 422 login failure was attempted %d times", f.ID, f.Attempts)
		}
	}
}

func FuzzData(f *testing.F) {
	for _, s := range []string{`{"code":200,"msg":"ok","data":{"token":"x"}}`, `{"token":"x"}`, `{"code":1}`, `<html>`, `{"data":`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = data(b)
	})
}
