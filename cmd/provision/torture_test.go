package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"provision/plan"
	"provision/providers/fault"
	"provision/providers/nx/nxfake"
	"provision/providers/sandbox"
)

// demoEnv reads examples/demo.env (the sandbox's demo secrets).
func demoEnv(t testing.TB) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../examples/demo.env")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(l), "export "), "="); ok && !strings.HasPrefix(l, "#") {
			env[k] = v
		}
	}
	return env
}

// smallRollout copies the rollout plan next to a stores.csv holding its first n stores.
func smallRollout(t testing.TB, n int) string {
	t.Helper()
	dir := t.TempDir()
	p, err := os.ReadFile("../../examples/plans/rollout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	csv, err := os.ReadFile("../../examples/plans/stores.csv")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	if n+1 < len(lines) {
		lines = lines[:n+1]
	}
	os.WriteFile(filepath.Join(dir, "stores.csv"), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "rollout.yaml"), p, 0o600)
	return filepath.Join(dir, "rollout.yaml")
}

// TestTorture_RolloutUnderFaultsAndKills runs the rollout plan as a real child
// process against one sandbox with every fault switched on, SIGKILLs it at random
// moments, reruns it until it completes, and then reads the fakes' own state: every
// planned object exists once, no orphan cloud system, no duplicate anywhere.
// PROVISION_TORTURE_KILLS and PROVISION_TORTURE_STORES scale it (make torture).
func TestTorture_RolloutUnderFaultsAndKills(t *testing.T) {
	if testing.Short() {
		t.Skip("torture runs real processes")
	}
	kills := envInt("PROVISION_TORTURE_KILLS", 4)
	stores := envInt("PROVISION_TORTURE_STORES", 12)
	bin := provisionBinary(t)
	env := demoEnv(t)
	planPath := smallRollout(t, stores)

	faults := fault.Config{ErrorRate: 0.05, TooManyRate: 0.05, RetryAfter: time.Second, DropRate: 0.01, LostRate: 0.02}
	nxExt := &nxfake.Extension{}
	sb, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Faults: faults, TokenLifetime: 30 * time.Second}, append([]sandbox.Extension{nxExt}, sandboxExtensions()[1:]...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	p, err := plan.Load(planPath, plan.LoadOptions{Sections: registry().Sections(), Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Attach(p); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(t.TempDir(), "torture.db")
	args := []string{"apply", planPath, "--sandbox-url", sb.URL(), "--state", statePath, "--parallel", "16",
		"--backoff", "50ms", "--backoff-max", "2s", "--max-attempts", "8", "--log-format", "json", "--log-level", "debug"}
	cmdEnv := os.Environ()
	for k, v := range env {
		cmdEnv = append(cmdEnv, k+"="+v)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	// Kill runs at random moments until `kills` kills have landed mid-run, or a
	// run completes on its own first.
	killed, runs, completedEarly := 0, 0, false
	var out strings.Builder
	for killed < kills && !completedEarly {
		cmd := exec.Command(bin, args...)
		cmd.Env = cmdEnv
		var o strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &o
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		runs++
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			out.WriteString(o.String())
			completedEarly = err == nil
		case <-time.After(time.Duration(100+rng.IntN(2500)) * time.Millisecond):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			out.WriteString(o.String())
			killed++
		}
	}
	completed := false
	for i := 0; i < 20 && !completed; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = cmdEnv
		b, err := cmd.CombinedOutput()
		cancel()
		runs++
		out.Write(b)
		completed = err == nil
	}
	if !completed {
		t.Fatalf("rollout never completed after %d runs", runs)
	}
	// The fakes' own account.
	want := map[string]string{}
	csv, _ := os.ReadFile(filepath.Join(filepath.Dir(planPath), "stores.csv"))
	for _, l := range strings.Split(strings.TrimSpace(string(csv)), "\n")[1:] {
		f := strings.Split(l, ",")
		want["Store "+f[0]] = f[1]
	}
	dups, orphans, missing := nxExt.World.Check(want)
	snap := nxExt.World.Snapshot()
	shares := 0
	for _, l := range snap.Shares {
		shares += len(l)
	}
	rep, _ := json.Marshal(sb.Report())
	var report map[string]map[string]any
	json.Unmarshal(rep, &report)
	var otherDups []string
	for name, r := range report {
		if d, ok := r["duplicates"].([]any); ok && len(d) > 0 {
			otherDups = append(otherDups, fmt.Sprintf("%s: %v", name, d))
		}
	}
	c := sb.Counts()
	t.Logf("torture: stores=%d kills mid-run=%d runs=%d requests=%d faults: 5xx=%d 429=%d dropped=%d lost=%d | cloud systems=%d shares=%d duplicates=%d orphans=%d missing=%d other duplicates=%d",
		stores, killed, runs, c.Requests, c.Errors, c.TooMany, c.Dropped, c.Lost, len(snap.Systems), shares, len(dups), len(orphans), len(missing), len(otherDups))
	if len(dups)+len(orphans)+len(missing)+len(otherDups) > 0 {
		t.Fatalf("duplicates %v orphans %v missing %v others %v", dups, orphans, missing, otherDups)
	}
	if len(snap.Systems) != stores || shares != 4*stores {
		t.Fatalf("cloud systems %d (want %d), shares %d (want %d)", len(snap.Systems), stores, shares, 4*stores)
	}
	for _, s := range []string{env["NX_CLOUD_PASSWORD"], env["NX_ADMIN_PASSWORD"], env["EDGE_ADMIN_PASSWORD"], env["OVC_CLIENT_SECRET"], env["CLOUDNEETI_API_KEY"], env["CLOUDNEETI_APP_SECRET"]} {
		if strings.Contains(out.String(), s) {
			t.Fatal("a secret appeared in the output of a run")
		}
	}
	raw, _ := os.ReadFile(statePath)
	for _, sys := range snap.Systems {
		if sys.AuthKey != "" && strings.Contains(string(raw), sys.AuthKey) {
			t.Fatal("an auth key is in clear text in the state file")
		}
	}
}
