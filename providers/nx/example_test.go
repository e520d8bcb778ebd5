package nx

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"provision/providers/fault"
	"provision/providers/nx/nxfake"
	"provision/runner"
)

// examplePlan copies the example plan and its CSV into the env's directory.
func (e *env) examplePlan(t *testing.T) string {
	t.Helper()
	text, err := os.ReadFile("../../examples/plans/nx.yaml")
	if err != nil {
		t.Fatal(err)
	}
	csv, err := os.ReadFile("../../examples/plans/nx-stores.csv")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "nx-stores.csv"), csv, 0o600); err != nil {
		t.Fatal(err)
	}
	// The plan's rate limit (20 calls/s) would make this test slow; lift it.
	out := strings.Replace(string(text), "rate_per_second: 20", "rate_per_second: 0", 1)
	if out == string(text) {
		t.Fatal("the example plan's limits changed: update this test")
	}
	return out
}

// storesWanted is the example plan's intent: system name -> server key.
func storesWanted() map[string]string {
	want := map[string]string{}
	for i := 1; i <= 20; i++ {
		want[fmt.Sprintf("Store %03d", i)] = fmt.Sprintf("10.20.0.%d:7001", i)
	}
	return want
}

func mustOK(t *testing.T, res *runner.Result) {
	t.Helper()
	if !res.OK() {
		t.Fatalf("run not OK: %+v", res)
	}
}

func TestNx_ExamplePlan_AppliesOnceUnderFaultsAndRerunsAsNoOp(t *testing.T) {
	for _, o := range []nxfake.Options{
		{Faults: fault.Config{ErrorRate: 0.05, LostRate: 0.08, DropRate: 0.03, Seed: 11}},
		{Faults: fault.Config{LostRate: 0.15, Seed: 5}, BareArrayList: true, WrapReplies: true, ExpiredSessionStatus: 403, FallbackPaths: true},
	} {
		t.Run(fmt.Sprintf("faults %+v", o.Faults), func(t *testing.T) {
			e := newEnv(t, o)
			text := e.examplePlan(t)
			mustOK(t, e.runPlan(text, filepath.Join(e.dir, "s.db"), "nx-example-state-key"))
			noDamage(t, e.world, storesWanted())
			snap := e.world.Snapshot()
			if len(snap.Systems) != 20 || snap.Counters.Setups != 20 {
				t.Fatalf("systems %d counters %+v", len(snap.Systems), snap.Counters)
			}
			for _, cs := range snap.Systems {
				if n := len(snap.Shares[cs.ID]); n != 3 {
					t.Errorf("%s has %d shares, want 3 (manager, noc, auditor)", cs.Name, n)
				}
			}
			// Without faults: the same state skips everything; a lost state file
			// adopts everything. Neither creates or changes anything remotely.
			e.world.Faults.Set(fault.Config{})
			before := e.world.Snapshot().Counters
			res := e.runPlan(text, filepath.Join(e.dir, "s.db"), "nx-example-state-key")
			mustOK(t, res)
			if res.Applied != 0 {
				t.Errorf("rerun applied %d tasks", res.Applied)
			}
			mustOK(t, e.runPlan(text, filepath.Join(e.dir, "fresh.db"), ""))
			after := e.world.Snapshot().Counters
			if after.Binds != before.Binds || after.Setups != before.Setups || after.CloudBinds != before.CloudBinds || after.Deletes != before.Deletes ||
				after.SharesCreated != before.SharesCreated || after.SharesUpdated != before.SharesUpdated {
				t.Errorf("rerun changed the cloud: before %+v after %+v", before, after)
			}
			noDamage(t, e.world, storesWanted())
		})
	}
}

// TestNx_ExamplePlan_ResumesWithoutStateKey: a first run binds every cloud system
// but no server accepts its setup; without a state key the auth keys are not kept,
// so the second run removes each unused system before binding again: no orphan.
func TestNx_ExamplePlan_ResumesWithoutStateKey(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	text := e.examplePlan(t)
	e.world.FailNext(nxfake.Failure{Path: "/rest/v3/system/setup", Times: 1000, Status: 422, Code: "cantProcessRequest", Text: "storage not ready"})
	res := e.runPlan(text, filepath.Join(e.dir, "s.db"), "")
	if res.Failed != 20 || res.Skipped != 60 {
		t.Fatalf("first run: %+v", res)
	}
	e.world.ClearFailures()
	mustOK(t, e.runPlan(text, filepath.Join(e.dir, "s.db"), ""))
	if c := e.world.Snapshot().Counters; c.Binds != 40 || c.Deletes != 20 || c.Setups != 20 {
		t.Errorf("counters %+v", c)
	}
	noDamage(t, e.world, storesWanted())
}
