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
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
			// Kill runs at random moments until `kills` kills have landed mid-run or
			// a run completes on its own (then the plan is done).
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
				assertNoSecret(t, out.String(), "crash-secret-canary-71")
			}
			// Rerun until done.
			var last string
			ok := false
			for i := 0; i < 10 && !ok; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				cmd := exec.CommandContext(ctx, bin, args...)
				cmd.Env = env
				b, err := cmd.CombinedOutput()
				cancel()
				last = string(b)
				assertNoSecret(t, last, "crash-secret-canary-71")
				if err == nil {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("plan never completed; last output:\n%s", last)
			}
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

func assertNoSecret(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Fatalf("secret value %q appeared in output", s[:4]+"...")
		}
	}
}
