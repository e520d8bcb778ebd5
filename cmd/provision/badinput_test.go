package main

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

var cliSecrets = map[string]string{
	"NX_CLOUD_PASSWORD":     "canary-cli-nx-2231",
	"EDGE_ADMIN_PASSWORD":   "CanaryEdge2231",
	"OVC_CLIENT_SECRET":     "canary-cli-ovc-2231",
	"CLOUDNEETI_API_KEY":    "canary-cli-cnkey-2231",
	"CLOUDNEETI_APP_SECRET": "canary-cli-cnapp-2231",
	"EDGE_OPS_PASSWORD":     "GoodPass123canary",
	"EDGE_NODIGIT_PASSWORD": "GoodPassword",
}

// TestCLI_BadPlans_Catalogue runs every broken plan of testdata/bad (provider-level
// mistakes: emails, roles, passwords, labels, versions, ports, CIDRs, ids, TLS,
// endpoints) and every plan of plan/testdata/bad through `provision apply`: exit code
// 2, the golden error with its position, no request to any endpoint, and an existing
// state file left byte for byte as it was.
func TestCLI_BadPlans_Catalogue(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1) }))
	defer srv.Close()
	for k, v := range cliSecrets {
		t.Setenv(k, v)
	}
	// The good base plan must be valid, or every case below proves nothing.
	if code, out, errs := cli(t, "validate", "testdata/good_cli.yaml", "--var", "url="+srv.URL); code != ExitOK {
		t.Fatalf("base plan: %d %s %s", code, out, errs)
	}
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	planFiles, _ := filepath.Glob("../../plan/testdata/bad/*.yaml")
	if len(files)+len(planFiles) < 40 {
		t.Fatalf("catalogue has %d plans", len(files)+len(planFiles))
	}
	for _, f := range append(files, planFiles...) {
		t.Run(filepath.Base(filepath.Dir(filepath.Dir(f)))+"/"+filepath.Base(f), func(t *testing.T) {
			dir := t.TempDir()
			sp := filepath.Join(dir, "existing.db")
			seed := bytes.Repeat([]byte("state bytes that must not change "), 64)
			os.WriteFile(sp, seed, 0o600)
			code, out, errs := cli(t, "apply", f, "--var", "url="+srv.URL, "--state", sp)
			if strings.Contains(f, "override_undeclared_var") {
				code, out, errs = cli(t, "apply", f, "--var", "nope=1", "--state", sp)
			}
			if code != ExitBadInput {
				t.Fatalf("exit %d, want 2\n%s%s", code, out, errs)
			}
			for _, s := range cliSecrets {
				if strings.Contains(out+errs, s) {
					t.Fatal("a secret appears in the error output")
				}
			}
			if after, _ := os.ReadFile(sp); sha256.Sum256(after) != sha256.Sum256(seed) {
				t.Fatal("the state file was changed")
			}
			if strings.HasPrefix(f, "testdata/") {
				got := strings.ReplaceAll(errs, srv.URL, "URL")
				checkGoldenFile(t, strings.TrimSuffix(f, ".yaml")+".err", got)
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("bad plans caused %d remote requests", n)
	}
}

func checkGoldenFile(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("error output differs from %s:\n%s", path, got)
	}
}
