package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// copyExamples copies examples/plans into a temporary directory (runs write their
// state next to the plan).
func copyExamples(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files, _ := filepath.Glob("../../examples/plans/*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600)
	}
	return dir
}

// freshShell runs the binary with nothing but PATH and HOME in its environment,
// as `env -i PATH=$PATH HOME=$HOME provision ...` does.
func freshShell(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(provisionBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, raceEnv()...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// The example plans run in the sandbox from a fresh shell: unset secrets get
// placeholders, said once, naming the variables.
func TestCLI_FreshShell_SandboxSuppliesPlaceholderSecrets(t *testing.T) {
	t.Parallel() // waits on child processes
	dir := copyExamples(t)
	for _, tc := range []struct {
		plan string
		vars []string
	}{
		{"edge.yaml", []string{"EDGE_ADMIN_PASSWORD", "EDGE_REGISTRY_PASSWORD", "EDGE_RETAIL_ADMIN_PASSWORD"}},
		{"openvcloud.yaml", []string{"OVC_CLIENT_SECRET"}},
		{"cloudneeti.yaml", []string{"CLOUDNEETI_API_KEY", "CLOUDNEETI_APP_SECRET"}},
		{"http.yaml", []string{"HTTP_CLIENT_SECRET"}},
	} {
		t.Run(tc.plan, func(t *testing.T) {
			code, out, errs := freshShell(t, dir, "apply", "--sandbox", tc.plan)
			if code != ExitOK || !strings.Contains(out, ": done") {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
			if n := strings.Count(errs, "using placeholder values"); n != 1 {
				t.Fatalf("placeholder notice said %d times:\n%s", n, errs)
			}
			for _, v := range tc.vars {
				if !strings.Contains(errs, v) {
					t.Errorf("notice does not name %s:\n%s", v, errs)
				}
			}
			if strings.Contains(errs, "Ph0-") {
				t.Error("a placeholder value reached the output")
			}
		})
	}
}

// validate and graph lint a plan without its secrets; plan reads them (and says
// which are missing); in sandbox mode plan gets placeholders too.
func TestCLI_FreshShell_ValidateAndGraphReadNoSecret(t *testing.T) {
	t.Parallel() // waits on child processes
	dir := copyExamples(t)
	if code, out, errs := freshShell(t, dir, "validate", "rollout.yaml"); code != ExitOK || !strings.Contains(out, "is valid") {
		t.Fatalf("validate: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := freshShell(t, dir, "graph", "rollout.yaml"); code != ExitOK || !strings.HasPrefix(out, "digraph") {
		t.Fatalf("graph: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := freshShell(t, dir, "status", "rollout.yaml"); code != ExitOK || !strings.Contains(out, "no run yet") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs := freshShell(t, dir, "plan", "rollout.yaml")
	if code != ExitBadInput || !strings.Contains(errs, "NX_CLOUD_PASSWORD is not set") {
		t.Fatalf("plan without secrets: exit %d\n%s", code, errs)
	}
	if code, out, errs := freshShell(t, dir, "plan", "--sandbox", "rollout.yaml", "--summary"); code != ExitOK || !strings.Contains(errs, "using placeholder values") {
		t.Fatalf("plan --sandbox: exit %d\n%s%s", code, out, errs)
	}
	// A malformed reference is still an error without values.
	b, _ := os.ReadFile(filepath.Join(dir, "edge.yaml"))
	bad := strings.Replace(string(b), "${env.EDGE_ADMIN_PASSWORD}", "${env.EDGE ADMIN}", 1)
	if bad == string(b) {
		t.Fatal("edge.yaml no longer references EDGE_ADMIN_PASSWORD")
	}
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o600)
	if code, _, errs := freshShell(t, dir, "validate", "bad.yaml"); code != ExitBadInput || !strings.Contains(errs, "bad.yaml:") || !strings.Contains(errs, "not an environment variable name") {
		t.Fatalf("validate bad ref: exit %d\n%s", code, errs)
	}
}

// The README's own command, in a fresh shell (the whole 1,017-task rollout: not in
// -short or -race runs).
func TestCLI_FreshShell_ReadmeRolloutInTheSandbox(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("the whole example rollout: not in -short or -race runs")
	}
	dir := copyExamples(t)
	code, out, errs := freshShell(t, filepath.Dir(dir), "apply", "--sandbox", filepath.Join(filepath.Base(dir), "rollout.yaml"))
	if code != ExitOK || !strings.Contains(out, "applied      1017") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}
