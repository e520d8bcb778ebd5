package main

import (
	"path/filepath"
	"strings"
	"testing"

	"provision/state"
)

// `status --state FILE` without its plan must still mask the secret outputs the
// state holds: here a last error recorded (by an older run that did not know the
// key yet) with a sealed auth key in clear.
func TestCLI_StatusWithoutPlan_MasksSealedOutputs(t *testing.T) {
	const authKey = "sealed-auth-key-canary-8086"
	const stateKey = "status test state passphrase"
	t.Setenv(state.KeyEnv, stateKey)
	sp := filepath.Join(t.TempDir(), "s.db")
	st, err := state.Open(sp, state.Options{PlanName: "p", Key: stateKey, KDFIterations: state.MinKDFIterations})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Put(
		&state.Record{ID: "store-1", Status: state.Done, Attempts: 1, Outputs: state.Outputs{"auth_key": {Value: authKey, Secret: true}, "cloud_system_id": {Value: "0b6c"}}},
		&state.Record{ID: "store-1/share/a@example.com", Status: state.Failed, Attempts: 2, LastError: "POST /cdb/systems/0b6c/users: HTTP 400: echo authKey=" + authKey},
	)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status", "--state", sp}, {"status", "--state", sp, "--json"}} {
		code, out, errs := cli(t, args...)
		if code != ExitFailed && code != ExitOK {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		if !strings.Contains(out, "store-1/share/a@example.com") {
			t.Fatalf("%v: the failure is not listed:\n%s", args, out)
		}
		if strings.Contains(out+errs, authKey) {
			t.Errorf("%v: the sealed auth key is shown:\n%s%s", args, out, errs)
		}
	}
}
