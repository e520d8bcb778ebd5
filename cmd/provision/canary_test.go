package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"provision/plan"
	"provision/providers/fault"
	"provision/providers/httpstep/httpfake"
	"provision/providers/nx/nxfake"
	"provision/providers/sandbox"
)

// TestCanary_SecretsNeverLeak gives every secret of the rollout a unique canary
// value, runs it with debug JSON logs, faults (so errors and retries are logged),
// a kill and a resume, then searches stdout, stderr, the JSON reports, status and
// dry-run output, and the raw bytes of the state file for every canary and for
// every secret output (Nx Cloud auth keys): zero hits.
func TestCanary_SecretsNeverLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	bin := provisionBinary(t)
	stamp := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000)
	canaries := map[string]string{
		"NX_CLOUD_PASSWORD":          "CanaryNxCloud" + stamp,
		"NX_ADMIN_PASSWORD":          "CanaryNxAdm" + stamp,
		"EDGE_ADMIN_PASSWORD":        "CnEdgeA1" + stamp,
		"EDGE_RETAIL_ADMIN_PASSWORD": "CnEdgeR2" + stamp,
		"EDGE_REGISTRY_PASSWORD":     "CnEdgeG3" + stamp,
		"OVC_CLIENT_SECRET":          "CanaryOvc" + stamp,
		"CLOUDNEETI_API_KEY":         "CanaryCnKey" + stamp,
		"CLOUDNEETI_APP_SECRET":      "CanaryCnApp" + stamp,
		"PROVISION_STATE_KEY":        "CanaryStateKey-" + stamp, // at least 16 characters
	}
	planPath := smallRollout(t, 6)
	nxExt := &nxfake.Extension{}
	sb, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Faults: fault.Config{ErrorRate: 0.1, LostRate: 0.05, DropRate: 0.02}}, append([]sandbox.Extension{nxExt}, sandboxExtensions()[1:]...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	p, err := plan.Load(planPath, plan.LoadOptions{Sections: registry().Sections(), Getenv: func(k string) (string, bool) { v, ok := canaries[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Attach(p); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(t.TempDir(), "canary.db")
	env := os.Environ()
	for k, v := range canaries {
		env = append(env, k+"="+v)
	}
	var all strings.Builder
	runCmd := func(kill bool, args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var o strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &o
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if kill {
			time.Sleep(300 * time.Millisecond)
			cmd.Process.Kill()
		}
		_ = cmd.Wait()
		all.WriteString(o.String())
	}
	common := []string{"--sandbox-url", sb.URL(), "--state", statePath}
	runCmd(false, append([]string{"plan", planPath, "--json"}, common...)...)
	runCmd(true, append([]string{"apply", planPath, "--log-level", "debug", "--log-format", "json", "--max-attempts", "1"}, common...)...)
	runCmd(false, append([]string{"apply", planPath, "--log-level", "debug", "--log-format", "json", "--max-attempts", "1", "--json"}, common...)...)
	runCmd(false, append([]string{"apply", planPath, "--log-level", "debug", "--log-format", "console", "--backoff", "10ms", "--max-attempts", "15"}, common...)...)
	runCmd(false, append([]string{"apply", planPath, "--log-level", "debug", "--json", "--backoff", "10ms", "--max-attempts", "15"}, common...)...)
	runCmd(false, "status", planPath, "--state", statePath, "--json")
	runCmd(false, "status", planPath, "--state", statePath)
	runCmd(false, append([]string{"plan", planPath}, common...)...)
	if !strings.Contains(all.String(), `"failed": 0`) {
		t.Fatalf("the rollout did not complete:\n%s", tail(all.String(), 3000))
	}
	// The runs must have logged real failures or retries (with their error texts),
	// or the search below proves nothing about error paths.
	if !strings.Contains(all.String(), `"message":"retrying"`) && !strings.Contains(all.String(), `"message":"failed"`) {
		t.Fatal("no failure or retry was logged")
	}
	raw, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	haystacks := map[string]string{"output": all.String(), "state file": string(raw)}
	secrets := map[string]string{}
	for k, v := range canaries {
		secrets[k] = v
	}
	for _, sys := range nxExt.World.Snapshot().Systems {
		secrets["auth key of "+sys.Name] = sys.AuthKey
	}
	if len(secrets) < len(canaries)+6 {
		t.Fatalf("only %d secrets to look for", len(secrets))
	}
	for where, text := range haystacks {
		for name, v := range secrets {
			if strings.Contains(text, v) {
				t.Errorf("%s found in the %s", name, where)
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestShards_FourProcessesCoverEveryTaskOnce splits a 20,000-task plan into four
// shards run as four concurrent processes against one server, then checks that
// together they created every object exactly once and that status over the four
// state files reports the whole rollout.
func TestShards_FourProcessesCoverEveryTaskOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	bin := provisionBinary(t)
	const n = 150 // widgets; each has a label: 300 tasks (the split itself: TestShardOf_*)
	srv := httpfake.New(httpfake.Options{ClientID: "crash-test", ClientSecret: "crash-secret-canary-71"})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	planPath := filepath.Join(dir, "shards.yaml")
	os.WriteFile(planPath, []byte(fmt.Sprintf(crashPlan, n, n)), 0o600)
	env := append(os.Environ(), "CRASH_CLIENT_SECRET=crash-secret-canary-71")
	errs := make(chan error, 4)
	var states []string
	for i := 0; i < 4; i++ {
		sp := filepath.Join(dir, fmt.Sprintf("shard-%d.db", i))
		states = append(states, sp)
		cmd := exec.Command(bin, "apply", planPath, "--var", "api="+ts.URL, "--shard", fmt.Sprintf("%d/4", i), "--state", sp, "--parallel", "32", "--log-level", "warn")
		cmd.Env = env
		go func() {
			b, err := cmd.CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, tail(string(b), 2000))
			}
			errs <- err
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	creates := srv.Creates()
	for i := 1; i <= n; i++ {
		if c := creates[fmt.Sprintf("widgets/widget-%04d", i)]; c != 1 {
			t.Fatalf("widget-%04d created %d times", i, c)
		}
	}
	if len(srv.Objects()) != 2*n {
		t.Fatalf("objects %d, want %d", len(srv.Objects()), 2*n)
	}
	args := []string{"status", planPath, "--var", "api=" + ts.URL}
	for _, s := range states {
		args = append(args, "--state", s)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), fmt.Sprintf("done         %d", 2*n)) || !strings.Contains(string(b), "not started: 0") || strings.Contains(string(b), "warning") {
		t.Fatalf("status over the shards: %v\n%s", err, b)
	}
}
