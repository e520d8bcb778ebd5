package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"provision/state"
)

// stateWithRecords writes a state file with n records (enough for a branch page).
func stateWithRecords(t *testing.T, path string, n int) {
	t.Helper()
	s, err := state.Open(path, state.Options{PlanName: "widgets"})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]*state.Record, n)
	for i := range recs {
		recs[i] = &state.Record{ID: fmt.Sprintf("widget/w-%04d", i), Status: state.Done, Attempts: 1,
			Outputs: state.Outputs{"id": state.Plain(fmt.Sprint(i))}}
	}
	if err := s.Put(recs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// pointBranchPastTheEnd makes the first element of the file's first branch page
// refer to page 1<<30, far past the end of the file.
func pointBranchPastTheEnd(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt format 2: page header {id u64, flags u16, count u16, overflow u32}; the
	// meta page (page 0) holds magic u32, version u32, page size u32 after it.
	ps := int(binary.LittleEndian.Uint32(b[24:]))
	for p := 2; (p+1)*ps <= len(b); p++ {
		page := b[p*ps:]
		if binary.LittleEndian.Uint16(page[8:]) == 0x01 && binary.LittleEndian.Uint16(page[10:]) > 0 {
			// branch element: pos u32, ksize u32, pgid u64
			binary.LittleEndian.PutUint64(page[16+8:], 1<<30)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("no branch page in the file")
}

func TestCLI_StatusCheck_CleanAndDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	bad := filepath.Join(dir, "bad.db")
	stateWithRecords(t, good, 400)
	stateWithRecords(t, bad, 400)

	code, out, errs := cli(t, "status", "--check", "--state", good)
	if code != ExitOK || !strings.Contains(out, "state "+good+": no problems found") || errs != "" {
		t.Fatalf("clean file: exit %d\n%s%s", code, out, errs)
	}

	pointBranchPastTheEnd(t, bad)
	raw, _ := os.ReadFile(bad)
	before := sha256.Sum256(raw)
	code, out, errs = cli(t, "status", "--check", "--state", good, "--state", bad)
	if code != ExitBadInput {
		t.Fatalf("damaged file: exit %d, want %d\n%s%s", code, ExitBadInput, out, errs)
	}
	for _, want := range []string{"1 of 2 state files have problems", bad, "page 1073741824: beyond the high-water mark", "corrupt"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr does not name %q:\n%s", want, errs)
		}
	}
	if !strings.Contains(out, good+": no problems found") {
		t.Errorf("the clean file is not reported clean:\n%s", out)
	}
	raw, _ = os.ReadFile(bad)
	if sha256.Sum256(raw) != before {
		t.Fatal("status --check modified the damaged file")
	}

	if code, _, errs := cli(t, "status", "--check", "--state", filepath.Join(dir, "missing.db")); code != ExitBadInput || !strings.Contains(errs, "missing.db") {
		t.Fatalf("missing file: exit %d\n%s", code, errs)
	}
}
