package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"provision/providers/fault"
	"provision/providers/httpstep/httpfake"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// provisionBinary builds the command once per test process.
func provisionBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "provision-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "provision")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

const crashPlan = `version: 1
name: crash
vars:
  api: http://127.0.0.1:1
endpoints:
  api:
    kind: http
    url: ${var.api}
    auth:
      type: oauth2-client-credentials
      token_url: /oauth/token
      client_id: crash-test
      client_secret: ${env.CRASH_CLIENT_SECRET}
    limits: {concurrency: 16}
http:
  defaults:
    endpoint: api
  items:
    - name: widget-${row.value}
      foreach: {range: {from: 1, to: %d, format: "%%04d"}}
      method: POST
      path: /v1/widgets
      body: {name: "widget-${row.value}", color: blue}
      expect: [201]
      outputs: {id: id}
      lookup:
        path: /v1/widgets
        query: {name: "widget-${row.value}"}
        match: items[0].id
        outputs: {id: "items[0].id"}
    - name: label-${row.value}
      foreach: {range: {from: 1, to: %d, format: "%%04d"}}
      method: PUT
      path: /v1/labels/${outputs.widget-${row.value}.id}
      body: {name: "label-for-widget-${row.value}"}
`

// TestApply_SIGKILLAndResume_CreatesEachObjectOnce runs `provision apply` as a real
// child process, kills it with SIGKILL at random moments, reruns it until it
// succeeds, and checks that every planned object was created exactly once, also
// while the server loses answers to applied creates.
func TestApply_SIGKILLAndResume_CreatesEachObjectOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs real processes")
	}
	t.Parallel() // waits on child processes
	bin := provisionBinary(t)
	for _, tc := range []struct {
		name   string
		faults fault.Config
	}{
		{"clean server", fault.Config{Latency: 25 * time.Millisecond}},
		{"lost answers and 5xx", fault.Config{Latency: 25 * time.Millisecond, LostRate: 0.05, ErrorRate: 0.03, DropRate: 0.02}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 150
			kills := envInt("PROVISION_CRASH_KILLS", 6)
			srv := httpfake.New(httpfake.Options{ClientID: "crash-test", ClientSecret: "crash-secret-canary-71", Faults: tc.faults})
			ts := httptest.NewServer(srv)
			defer ts.Close()
			dir := t.TempDir()
			planPath := filepath.Join(dir, "crash.yaml")
			if err := os.WriteFile(planPath, []byte(fmt.Sprintf(crashPlan, n, n)), 0o600); err != nil {
				t.Fatal(err)
			}
			env := append(os.Environ(), "CRASH_CLIENT_SECRET=crash-secret-canary-71")
			args := []string{"apply", planPath, "--var", "api=" + ts.URL, "--parallel", "8", "--backoff", "20ms", "--backoff-max", "200ms", "--log-format", "json", "--max-attempts", "8"}
			killed := killAndRerun(t, bin, args, env, kills, "crash-secret-canary-71")
			creates := srv.Creates()
			for i := 1; i <= n; i++ {
				name := fmt.Sprintf("widgets/widget-%04d", i)
				if creates[name] != 1 {
					t.Errorf("%s created %d times, want exactly 1", name, creates[name])
				}
			}
			if len(creates) != n {
				t.Errorf("server holds %d created names, want %d", len(creates), n)
			}
			labels := 0
			for _, o := range srv.Objects() {
				if o.Collection == "labels" {
					labels++
				}
			}
			if labels != n {
				t.Errorf("labels: %d, want %d", labels, n)
			}
			t.Logf("%s: %d kills mid-run, %d objects, faults: %s", tc.name, killed, len(srv.Objects()), srv.Faults.Counts())
			if killed < 2 {
				t.Errorf("only %d kills landed mid-run: the test proves little", killed)
			}
		})
	}
}

// killAndRerun runs the command as a child process, kills it with SIGKILL at random
// moments until kills kills have landed mid-run (or a run completes on its own),
// then reruns it until it succeeds. It returns the kills that landed; no output may
// hold the secret.
func killAndRerun(t *testing.T, bin string, args, env []string, kills int, secret string) int {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	killed, completed := 0, false
	for i := 0; killed < kills && !completed && i < 10*kills; i++ {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			// Finished before the kill.
			completed = err == nil
			if err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != ExitFailed {
					t.Fatalf("run %d: %v\n%s", i, err, out.String())
				}
			}
		case <-time.After(time.Duration(20+rng.IntN(230)) * time.Millisecond):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			killed++
		}
		assertNoSecret(t, out.String(), secret)
	}
	// Rerun until done.
	var last string
	for i := 0; i < 10; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		cancel()
		last = string(b)
		assertNoSecret(t, last, secret)
		if err == nil {
			return killed
		}
	}
	t.Fatalf("%s never completed; last output:\n%s", args[0], last)
	return killed
}

func assertNoSecret(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Fatalf("secret value %q appeared in output", s[:4]+"...")
		}
	}
}

// TestDestroy_SIGKILLAndResume_LeavesNothing applies a plan, then runs `provision
// destroy` as a real child process, kills it with SIGKILL at random moments (also
// while the server loses answers to applied deletes), reruns it until it succeeds,
// and checks that the server and the state hold nothing and nothing was created
// again.
func TestDestroy_SIGKILLAndResume_LeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs real processes")
	}
	bin := provisionBinary(t)
	const n = 120
	t.Setenv("CRASH_CLIENT_SECRET", "crash-secret-canary-71")
	srv := httpfake.New(httpfake.Options{ClientID: "crash-test", ClientSecret: "crash-secret-canary-71"})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	planPath := filepath.Join(dir, "crash.yaml")
	text := fmt.Sprintf(crashPlan, n, n)
	text = strings.Replace(text, "        outputs: {id: \"items[0].id\"}\n", "        outputs: {id: \"items[0].id\"}\n      delete: {path: \"/v1/widgets/{id}\"}\n", 1)
	text += "      outputs: {id: id}\n      delete: {path: \"/v1/labels/{id}\"}\n"
	if err := os.WriteFile(planPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	v := "api=" + ts.URL
	if code, out, errs := cli(t, "apply", planPath, "--var", v); code != ExitOK {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errs)
	}
	if len(srv.Objects()) != 2*n {
		t.Fatalf("after apply the server holds %d objects, want %d", len(srv.Objects()), 2*n)
	}
	srv.Faults.Set(fault.Config{Latency: 25 * time.Millisecond, LostRate: 0.05, ErrorRate: 0.03, DropRate: 0.02})
	env := append(os.Environ(), "CRASH_CLIENT_SECRET=crash-secret-canary-71")
	args := []string{"destroy", planPath, "--var", v, "--yes", "--parallel", "8", "--backoff", "20ms", "--backoff-max", "200ms", "--log-format", "json", "--max-attempts", "8"}
	killed := killAndRerun(t, bin, args, env, envInt("PROVISION_CRASH_KILLS", 6), "crash-secret-canary-71")
	if got := srv.Objects(); len(got) != 0 {
		t.Fatalf("after destroy the server holds %d objects, e.g. %+v", len(got), got[0])
	}
	for name, c := range srv.Creates() {
		if c != 1 {
			t.Errorf("%s created %d times: destroy must never create", name, c)
		}
	}
	if recs := recordIDs(t, filepath.Join(dir, ".provision", "crash.db")); len(recs) != 0 {
		t.Fatalf("after destroy the state holds %d records", len(recs))
	}
	t.Logf("destroy: %d kills mid-run, faults: %s", killed, srv.Faults.Counts())
	if killed < 2 {
		t.Errorf("only %d kills landed mid-run: the test proves little", killed)
	}
}
