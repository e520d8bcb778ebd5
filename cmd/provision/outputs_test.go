package main

import (
	"context"
	"io"
	"path/filepath"
	"slices"
	"testing"

	"provision/providers"
	"provision/state"
)

// TestKinds_DeclaredOutputsCoverWhatTasksRecord applies the rollout and http example
// plans on the sandbox and checks every recorded output of every item against what
// its kind declares (Kind.Outputs, used to validate ${outputs.ITEM.KEY}): a kind
// that records an output it does not declare would make a valid reference fail
// validation.
func TestKinds_DeclaredOutputsCoverWhatTasksRecord(t *testing.T) {
	for k, v := range demoEnv(t) {
		t.Setenv(k, v)
	}
	reg := registry()
	sections := map[string]bool{}
	// No example plan has a repository user.
	repoUsers := writeFile(t, t.TempDir(), "repo-users.yaml", `version: 1
name: repo-users
endpoints:
  edge: {kind: edge, url: "https://edge.example.com:8995", auth: {username: admin, password: "${env.EDGE_ADMIN_PASSWORD}"}}
edge_repo_users:
  items:
    - {name: ci-robot, endpoint: edge, password: "${env.EDGE_REGISTRY_PASSWORD}"}
`)
	for _, p := range []string{smallRollout(t, 3), "../../examples/plans/http.yaml", repoUsers} {
		sp := filepath.Join(t.TempDir(), "s.db")
		seedState(t, p, sp, demoEnv(t)[state.KeyEnv])
		if code, out, errs := cli(t, "apply", p, "--sandbox", "--state", sp, "--backoff", "10ms", "--max-attempts", "10"); code != ExitOK {
			t.Fatalf("apply %s: %d\n%s%s", p, code, out, errs)
		}
		var c common
		l, err := c.load(context.Background(), p, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		st, err := state.Open(sp, state.Options{PlanName: l.plan.Name, Key: demoEnv(t)[state.KeyEnv], ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := st.Load()
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range l.plan.Items {
			r := recs[it.Name]
			if r == nil || r.Status != state.Done {
				t.Fatalf("%s: item %s not done: %+v", p, it.Name, r)
			}
			k, _ := reg.Kind(it.Section)
			declared := k.Outputs(it)
			for key := range r.Outputs {
				if !slices.Contains(declared, key) && key != providers.AdoptedOutput {
					t.Errorf("%s item %s records output %q, not among the declared %q", it.Section, it.Name, key, declared)
				}
			}
			sections[it.Section] = true
		}
	}
	for _, s := range reg.Sections() {
		if !sections[s] {
			t.Errorf("section %s was not exercised", s)
		}
	}
}
