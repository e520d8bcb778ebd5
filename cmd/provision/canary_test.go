package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
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
	"provision/state"
)

// TestCanary_SecretsNeverLeak gives every secret a unique canary value and searches
// every output for every form a secret travels in (leakForms: raw, base64, escaped):
//   - sandbox: the rollout with debug JSON logs, faults (so errors and retries are
//     logged), a kill and resumes; stdout, stderr, the JSON reports, status and
//     dry-run output and the raw bytes of the state file, for every canary and every
//     secret output (Nx Cloud auth keys);
//   - hostile echo server: a server that echoes each request (headers, query, body)
//     back into its errors, over two runs (the second resumes, with the secret
//     output loaded from the state file), with status with and without the plan.
func TestCanary_SecretsNeverLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	t.Parallel() // waits on child processes
	t.Run("sandbox", canarySandbox)
	t.Run("hostile echo server", canaryEcho)
}

func canarySandbox(t *testing.T) {
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
	sb, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Faults: fault.Config{ErrorRate: 0.1, LostRate: 0.05, DropRate: 0.02}}, sandboxExtensions(nxExt)...)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	p, err := plan.Load(planPath, plan.LoadOptions{Sections: registry().Sections(), EndpointKinds: registry().EndpointKinds(), Getenv: func(k string) (string, bool) { v, ok := canaries[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Attach(p); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(t.TempDir(), "canary.db")
	seedState(t, planPath, statePath, canaries[state.KeyEnv])
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
		before := sb.Counts().Requests
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if kill {
			// Killed mid-apply: once the sandbox has answered 20 of its requests (or
			// the apply ends first), whatever the machine's speed.
			tick := time.NewTicker(2 * time.Millisecond)
		wait:
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
				select {
				case <-exited:
					break wait
				case <-tick.C:
					if sb.Counts().Requests >= before+20 {
						cmd.Process.Kill()
						break wait
					}
				}
			}
			tick.Stop()
		}
		<-exited
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
	searchLeaks(t, haystacks, secrets)
}

// searchLeaks reports every form of every secret found in a haystack.
func searchLeaks(t *testing.T, haystacks, secrets map[string]string) {
	t.Helper()
	for where, text := range haystacks {
		for name, v := range secrets {
			for form, f := range leakForms(v) {
				if strings.Contains(text, f) {
					i := strings.Index(text, f)
					t.Errorf("%s (%s) found in the %s: ...%s...", name, form, where, strings.ReplaceAll(text[max(0, i-60):min(len(text), i+len(f)+20)], f, "<HERE>"))
				}
			}
		}
	}
}

// leakForms lists the forms a secret travels in: raw, query- and path-escaped,
// JSON-escaped (with and without HTML escaping, and twice), and each of these in
// base64 (both alphabets, with and without padding, and the part of it that shows
// inside a longer encoded text at each of the three alignments).
func leakForms(v string) map[string]string {
	jsonEsc := func(s string, html bool) string {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		enc.Encode(s)
		out := strings.TrimSpace(b.String())
		return out[1 : len(out)-1]
	}
	f := map[string]string{}
	for name, e := range map[string]string{
		"raw":                           v,
		"query-escaped":                 url.QueryEscape(v),
		"path-escaped":                  url.PathEscape(v),
		"JSON-escaped":                  jsonEsc(v, true),
		"JSON-escaped, no HTML escapes": jsonEsc(v, false),
		"JSON-escaped twice":            jsonEsc(jsonEsc(v, true), true),
	} {
		f[name] = e
		f[name+", base64"] = base64.StdEncoding.EncodeToString([]byte(e))
		f[name+", base64 unpadded"] = base64.RawStdEncoding.EncodeToString([]byte(e))
		f[name+", base64url"] = base64.URLEncoding.EncodeToString([]byte(e))
		f[name+", base64url unpadded"] = base64.RawURLEncoding.EncodeToString([]byte(e))
		for d := 0; d < 3 && d < len(e); d++ {
			rest := []byte(e[d:])
			n := len(rest) / 3 * 3
			if n/3*4 < 8 {
				continue
			}
			f[fmt.Sprintf("%s, base64 inside longer text (offset %d)", name, d)] = base64.RawStdEncoding.EncodeToString(rest[:n])
			f[fmt.Sprintf("%s, base64url inside longer text (offset %d)", name, d)] = base64.RawURLEncoding.EncodeToString(rest[:n])
		}
	}
	return f
}

func canaryEcho(t *testing.T) {
	bin := provisionBinary(t)
	stamp := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000)
	env := map[string]string{
		"ECHO_BASIC_PASSWORD": "Echo+Basic/Pw=" + stamp + "&<q>",
		"ECHO_BODY_SECRET":    `Echo"Body\<` + stamp + `>&'`,
		"ECHO_QUERY_SECRET":   "Echo Query+" + stamp + "&=?",
		"ECHO_PATH_SECRET":    "EchoPath" + stamp + "~\u00e9",
		"ECHO_HEADER_SECRET":  "EchoHeader" + stamp + "%41",
		"ECHO_CLIENT_SECRET":  "EchoClient+" + stamp + "/=",
		state.KeyEnv:          "EchoStateKey-" + stamp + "-passphrase",
	}
	srv := newEchoServer("EchoKey+"+stamp+"/k", "EchoToken"+stamp)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	planPath := filepath.Join(dir, "hostile.yaml")
	os.WriteFile(planPath, []byte(echoPlan), 0o600)
	statePath := filepath.Join(dir, "hostile.db")
	seedState(t, planPath, statePath, env[state.KeyEnv])
	procEnv := os.Environ()
	for k, v := range env {
		procEnv = append(procEnv, k+"="+v)
	}
	var all strings.Builder
	runCmd := func(args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = procEnv
		var o strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &o
		_ = cmd.Run()
		all.WriteString(o.String())
	}
	common := []string{"--var", "api=" + ts.URL, "--state", statePath}
	retry := []string{"--max-attempts", "3", "--backoff", "5ms", "--backoff-max", "20ms"}
	for run := 1; run <= 2; run++ {
		runCmd(append([]string{"plan", planPath, "--json"}, common...)...)
		runCmd(append(append([]string{"apply", planPath, "--log-level", "debug", "--log-format", "json", "--json"}, retry...), common...)...)
		if run == 2 {
			runCmd(append(append([]string{"apply", planPath, "--log-level", "debug", "--log-format", "console"}, retry...), common...)...)
			runCmd(append([]string{"plan", planPath}, common...)...)
		}
		runCmd("status", planPath, "--var", "api="+ts.URL, "--state", statePath, "--json")
		runCmd("status", planPath, "--var", "api="+ts.URL, "--state", statePath)
		runCmd("status", "--state", statePath)
		runCmd("status", "--state", statePath, "--json")
	}
	out := all.String()
	// The runs must have gone through the error paths with the echoes, resumed with
	// the key from the state, and retried (logged), or the search proves nothing.
	if srv.Issued() != 1 {
		t.Fatalf("the key was issued %d times, want once (the second run resumes)\n%s", srv.Issued(), tail(out, 3000))
	}
	for _, want := range []string{`"message":"retrying"`, `"message":"failed"`, "HTTP 400", "HTTP 422", "use-key-6", "oauth-call"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, tail(out, 3000))
		}
	}
	secrets := map[string]string{}
	for k, v := range env {
		secrets[k] = v
	}
	secrets["Basic user:password"] = "ops@example.com:" + env["ECHO_BASIC_PASSWORD"]
	secrets["issued key (secret output)"] = srv.key
	secrets["OAuth2 access token"] = srv.token
	// Every secret but the state key went to the server and came back in an echo.
	echoed := srv.Echoed()
	for name, v := range secrets {
		if name == state.KeyEnv {
			continue
		}
		found := false
		for _, f := range leakForms(v) {
			found = found || strings.Contains(echoed, f)
		}
		if !found {
			t.Errorf("the server never echoed %s: the test would prove nothing about it", name)
		}
	}
	raw, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	searchLeaks(t, map[string]string{"output": out, "state file": string(raw)}, secrets)
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
	t.Parallel() // waits on child processes
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
