package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"provision/providers/fault"
	"provision/providers/httpstep/httpfake"
	"provision/state"
)

// TestApply_SignalsStopGracefullyThenAtOnce: the first SIGINT stops new tasks and
// lets in-flight ones finish (exit 3, nothing in doubt); a second signal exits at
// once (in-flight tasks stay in doubt); a rerun finishes with every object once.
func TestApply_SignalsStopGracefullyThenAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	t.Parallel() // waits on child processes
	bin := provisionBinary(t)
	srv := httpfake.New(httpfake.Options{ClientID: "crash-test", ClientSecret: "crash-secret-canary-71", Faults: fault.Config{Latency: 300 * time.Millisecond}})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	planPath := filepath.Join(dir, "sig.yaml")
	os.WriteFile(planPath, []byte(fmt.Sprintf(crashPlan, 40, 40)), 0o600)
	env := append(os.Environ(), "CRASH_CLIENT_SECRET=crash-secret-canary-71")
	sp := filepath.Join(dir, "sig.db")
	args := []string{"apply", planPath, "--var", "api=" + ts.URL, "--state", sp, "--parallel", "4", "--grace", "30s"}
	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	exitCodeOf := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err == nil {
			return 0
		}
		return -1
	}
	inDoubt := func() int {
		st, err := state.Open(sp, state.Options{PlanName: "crash", ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		c, _ := st.Counts()
		return c[state.Started]
	}

	// requested waits until the fake has received n more requests than before:
	// the process is up (its signal handling is in place before it sends one) and
	// has requests in flight.
	requested := func(before int64, n int64) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); srv.Faults.Counts().Requests < before+n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the run sent %d requests in a minute", srv.Faults.Counts().Requests-before)
			}
		}
	}

	// Graceful: one SIGINT, once tasks are in flight.
	cmd, out := start()
	requested(0, 5)
	cmd.Process.Signal(syscall.SIGINT)
	if code := exitCodeOf(cmd.Wait()); code != ExitInterrupted {
		t.Fatalf("exit %d after one SIGINT, want %d\n%s", code, ExitInterrupted, out)
	}
	if !strings.Contains(out.String(), "interrupted: rerun the same command to resume") {
		t.Errorf("no interrupted report:\n%s", out)
	}
	if n := inDoubt(); n != 0 {
		t.Errorf("%d tasks in doubt after a graceful stop", n)
	}

	// At once: two signals, while in-flight requests take seconds (so the graceful
	// stop cannot end the run before the second signal arrives).
	srv.Faults.Set(fault.Config{Latency: 5 * time.Second})
	before := srv.Faults.Counts().Requests
	cmd, out = start()
	requested(before, 1)
	cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if code := exitCodeOf(cmd.Wait()); code != ExitInterrupted {
		t.Fatalf("exit %d after two signals, want %d\n%s", code, ExitInterrupted, out)
	}
	if !strings.Contains(out.String(), "second signal") {
		t.Errorf("no second-signal message:\n%s", out)
	}

	// Resume to the end.
	srv.Faults.Set(fault.Config{Latency: 20 * time.Millisecond})
	cmd, out = start()
	if code := exitCodeOf(cmd.Wait()); code != ExitOK {
		t.Fatalf("rerun: exit %d\n%s", code, out)
	}
	for name, n := range srv.Creates() {
		if n != 1 {
			t.Errorf("%s created %d times", name, n)
		}
	}
	if len(srv.Creates()) != 40 {
		t.Errorf("%d widgets, want 40", len(srv.Creates()))
	}
}
