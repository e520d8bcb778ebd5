package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

const boltCheckEnv = "PROVISION_STATE_TEST_BOLT_CHECK"

// pointRootAt makes the first element of the tasks bucket's root page (a branch
// page in a file of a few hundred records) refer to page id.
func pointRootAt(t *testing.T, path string, id uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var root uint64
	err = db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(bucketTasks).RootPage())
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	b := must(os.ReadFile(path))
	ps := uint64(binary.LittleEndian.Uint32(b[pageHeaderSize+8:])) // meta: magic, version, page size
	page := b[root*ps:]
	if binary.LittleEndian.Uint16(page[8:]) != 0x01 {
		t.Fatalf("the tasks bucket's root page %d is not a branch page", root)
	}
	binary.LittleEndian.PutUint64(page[pageHeaderSize+8:], id) // element 0: pos, ksize, pgid
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBoltCheckHelper is not a test: run as a child process by the test below, it
// runs bbolt's own tx.Check on the file named in its environment, under guard.
func TestBoltCheckHelper(t *testing.T) {
	path := os.Getenv(boltCheckEnv)
	if path == "" {
		t.Skip("helper process for another test")
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = guard("check", path, func() error {
		return db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				t.Log(err)
			}
			return nil
		})
	})
	t.Logf("bbolt's check returned (guard: %v)", err)
}

// Why Check walks the page tree itself before bbolt's tx.Check: bbolt runs its
// check in a goroutine of its own, where guard's recover and SetPanicOnFault do
// not reach. A branch element that points past the end of the file makes that
// goroutine fault, which kills the process, guard or not (shown in a child
// process). Check, which walks first with bounds-checked reads, reports the page as
// ErrCorrupt instead.
func TestCheck_BboltCheckAloneCrashesOnAPageTheWalkRefuses(t *testing.T) {
	path, _ := validFile(t, t.TempDir(), 400)
	damaged := filepath.Join(t.TempDir(), "damaged.db")
	if err := os.WriteFile(damaged, must(os.ReadFile(path)), 0o600); err != nil {
		t.Fatal(err)
	}
	pointRootAt(t, damaged, 1<<30) // 4 TiB into a mapping of a few pages

	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltCheckHelper$", "-test.v")
	cmd.Env = append(os.Environ(), boltCheckEnv+"="+damaged)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "fatal error: fault") {
		t.Fatalf("bbolt's check alone: want the process killed by a fault, got %v:\n%s", err, out)
	}
	if strings.Contains(string(out), "bbolt's check returned") {
		t.Fatalf("the guard caught the fault, so the walk before tx.Check may not be needed:\n%s", out)
	}

	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "fault") || strings.Contains(l, "signal") {
			t.Logf("child: %s", l)
		}
	}
	err = Check(damaged)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "page 1073741824") {
		t.Fatalf("Check: %v, want ErrCorrupt naming the page", err)
	}
}

// dropLastFreePage removes the last id from the file's current freelist page: that
// page is then neither reachable nor free. It returns the page's id.
func dropLastFreePage(t *testing.T, path string) uint64 {
	t.Helper()
	b := must(os.ReadFile(path))
	le := binary.LittleEndian
	ps := uint64(le.Uint32(b[pageHeaderSize+8:]))
	// meta (after the page header): magic, version, page size, flags (u32 each),
	// root bucket (16 bytes), freelist, high-water mark, txid (u64 each).
	meta := b[:ps]
	if m1 := b[ps : 2*ps]; le.Uint64(m1[64:]) > le.Uint64(meta[64:]) {
		meta = m1
	}
	fl := b[le.Uint64(meta[48:])*ps:]
	n := uint64(le.Uint16(fl[10:]))
	if n == 0 || n == 0xFFFF {
		t.Fatalf("freelist of %d ids: want a short, non-empty one", n)
	}
	id := le.Uint64(fl[pageHeaderSize+(n-1)*8:])
	le.PutUint16(fl[10:], uint16(n-1))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return id
}

// A page that is neither in use nor free (a leak, not a danger to the process) is
// found by bbolt's tx.Check after the walk.
func TestCheck_UnreachablePageIsReportedByBboltsCheck(t *testing.T) {
	path, _ := validFile(t, t.TempDir(), 400)
	id := dropLastFreePage(t, path)
	err := Check(path)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("page %d: unreachable unfreed", id)) {
		t.Fatalf("Check: %v, want ErrCorrupt naming page %d unreachable", err, id)
	}
}
