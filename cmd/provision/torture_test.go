package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"provision/plan"
	"provision/providers/fault"
	"provision/providers/nx/nxfake"
	"provision/providers/sandbox"
	"provision/state"
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

// tortureOrganization is the Nx organization smallRollout binds every third store
// through (partners API create, paged organization lists).
const tortureOrganization = "retail-org"

// smallRollout copies the rollout plan next to its first n stores: every third one
// (the 3rd, 6th, ...) in org-stores.csv, bound through tortureOrganization by a second
// nx_systems item (and audited by a second nx_shares item), the others in stores.csv.
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
	personal, org := []string{lines[0]}, []string{lines[0]}
	for i, l := range lines[1:] {
		if i%3 == 2 {
			org = append(org, l)
		} else {
			personal = append(personal, l)
		}
	}
	text := string(p)
	for _, r := range []struct{ after, add string }{
		{"        - {email: \"${var.noc}\", role: viewer}\n", `    - name: store-${row.store}
      foreach: {csv: org-stores.csv}
      organization: ` + tortureOrganization + `
      system_name: Store ${row.store}
      url: https://${row.host}
      users:
        - {email: "${row.manager}", role: advancedViewer}
        - {email: "${var.noc}", role: viewer}
`},
		{"      email: ${auditor.value}@example.com\n", `    - name: audit-${row.store}-${auditor.value}
      foreach: [{csv: org-stores.csv}, {as: auditor, list: [audit-eu, audit-us]}]
      system: store-${row.store}
      email: ${auditor.value}@example.com
`},
	} {
		if strings.Count(text, r.after) != 1 {
			t.Fatalf("rollout.yaml: %q is not there once: the organization stores cannot be added", r.after)
		}
		text = strings.Replace(text, r.after, r.after+r.add, 1)
	}
	for name, rows := range map[string][]string{"stores.csv": personal, "org-stores.csv": org} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(rows, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "rollout.yaml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "rollout.yaml")
}

// rolloutStores reads smallRollout's CSV files: system name -> server key, and the
// names of the organization stores.
func rolloutStores(t testing.TB, planPath string) (want map[string]string, org map[string]bool) {
	t.Helper()
	want, org = map[string]string{}, map[string]bool{}
	for _, name := range []string{"stores.csv", "org-stores.csv"} {
		csv, err := os.ReadFile(filepath.Join(filepath.Dir(planPath), name))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(csv)), "\n")[1:] {
			f := strings.Split(l, ",")
			want["Store "+f[0]] = f[1]
			if name == "org-stores.csv" {
				org["Store "+f[0]] = true
			}
		}
	}
	return want, org
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
	t.Parallel() // waits on child processes
	kills := envInt("PROVISION_TORTURE_KILLS", 4)
	stores := envInt("PROVISION_TORTURE_STORES", 12)
	bin := provisionBinary(t)
	env := demoEnv(t)
	planPath := smallRollout(t, stores)

	faults := fault.Config{ErrorRate: 0.05, TooManyRate: 0.05, RetryAfter: time.Second, DropRate: 0.01, LostRate: 0.02}
	// Pages of 3 systems, so that the organization lists an in-doubt lookup reads
	// span pages.
	nxExt := &nxfake.Extension{PageSize: 3}
	sb, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Faults: faults, TokenLifetime: 30 * time.Second}, sandboxExtensions(nxExt)...)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	p, err := plan.Load(planPath, plan.LoadOptions{Sections: registry().Sections(), EndpointKinds: registry().EndpointKinds(), Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Attach(p); err != nil {
		t.Fatal(err)
	}
	want, org := rolloutStores(t, planPath)
	// Every other organization store runs VMS 6.1, whose setup and cloud/bind
	// carry organizationId; the others run 6.0 (the fake's default).
	var v61 []string
	for name := range org {
		if n, _ := strconv.Atoi(strings.TrimPrefix(name, "Store ")); n%2 == 0 {
			nxExt.World.SetServerVersion(want[name], "6.1.0.40000")
			v61 = append(v61, name)
		}
	}
	statePath := filepath.Join(t.TempDir(), "torture.db")
	seedState(t, planPath, statePath, env[state.KeyEnv])
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
	dups, orphans, missing := nxExt.World.Check(want)
	snap := nxExt.World.Snapshot()
	orgSystems := 0
	for _, cs := range snap.Systems {
		switch {
		case org[cs.Name] && cs.Organization != tortureOrganization:
			missing = append(missing, fmt.Sprintf("%s is not in organization %s (%q)", cs.Name, tortureOrganization, cs.Organization))
		case !org[cs.Name] && cs.Organization != "":
			dups = append(dups, fmt.Sprintf("%s is a personal store but is in organization %q", cs.Name, cs.Organization))
		case org[cs.Name]:
			orgSystems++
		}
	}
	for _, name := range v61 {
		if srv, _ := snap.Server(want[name]); srv.CloudOrganization != tortureOrganization {
			missing = append(missing, fmt.Sprintf("the 6.1 server of %s got organizationId %q", name, srv.CloudOrganization))
		}
	}
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
	t.Logf("torture: stores=%d (organization %d, on 6.1 %d) kills mid-run=%d runs=%d requests=%d faults: 5xx=%d 429=%d dropped=%d lost=%d | cloud systems=%d shares=%d duplicates=%d orphans=%d missing=%d other duplicates=%d",
		stores, orgSystems, len(v61), killed, runs, c.Requests, c.Errors, c.TooMany, c.Dropped, c.Lost, len(snap.Systems), shares, len(dups), len(orphans), len(missing), len(otherDups))
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
