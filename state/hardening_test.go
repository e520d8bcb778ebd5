package state

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// flipInFile changes every occurrence of from into to (same length) in the file
// and returns how many it changed.
func flipInFile(t *testing.T, path, from, to string) int {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := bytes.Count(raw, []byte(from))
	if err := os.WriteFile(path, bytes.ReplaceAll(raw, []byte(from), []byte(to)), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStore_DamagedTaskIDIsReportedAndFileLeftUntouched: one flipped bit in a task
// id (a done task would turn into an unknown one and its step run again) is reported
// as damage naming the file and the id, by every read, and the file is not changed.
func TestStore_DamagedTaskIDIsReportedAndFileLeftUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{})
	for _, id := range []string{"a-done", "m-done", "z-done"} {
		if err := s.Put(&Record{ID: id, Status: Done, Attempts: 1, Outputs: Outputs{"id": Plain("42")}}); err != nil {
			t.Fatal(err)
		}
	}
	closeT(t, s)
	// 'm' ^ 1 == 'l': the keys stay in order, so only the checksum can tell.
	if n := flipInFile(t, path, "m-done", "l-done"); n == 0 {
		t.Fatal("the task id is not in the file")
	}
	before := fileSum(t, path)
	for _, ro := range []bool{true, false} {
		s := openT(t, path, Options{ReadOnly: ro})
		for name, call := range map[string]func() error{
			"Load":    func() error { _, err := s.Load(); return err },
			"ForEach": func() error { return s.ForEach(func(*Record) error { return nil }) },
			"Get":     func() error { _, _, err := s.Get("l-done"); return err },
		} {
			err := call()
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"l-done"`) {
				t.Errorf("read-only=%v %s: %v, want ErrCorrupt naming the file and the task id", ro, name, err)
			}
		}
		closeT(t, s)
	}
	if err := Check(path); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Check: %v", err)
	}
	if fileSum(t, path) != before {
		t.Fatal("the damaged file was modified")
	}
}

// TestOpen_FormatVersion2RecordsAreStillRead: a file written before the checksum
// covered the task id is read, and marked format 3 when opened for writing.
func TestOpen_FormatVersion2RecordsAreStillRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v2.db")
	b, err := encodeRecord(&Record{ID: "old", Status: Done, Attempts: 3, Outputs: Outputs{"id": Plain("7")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v2 := fixCRC(append([]byte{recordV2}, b[1:]...)) // format 2: the value's own checksum
	rawBolt(t, path, false, func(tx *bolt.Tx) error {
		_, tb, err := provisionMeta(tx, "2")
		if err != nil {
			return err
		}
		return tb.Put([]byte("old"), v2)
	})
	s := openT(t, path, Options{})
	if s.Meta().FormatVersion != FormatVersion {
		t.Errorf("format %d after opening for writing, want %d", s.Meta().FormatVersion, FormatVersion)
	}
	r, ok, err := s.Get("old")
	if err != nil || !ok || r.Status != Done || r.Attempts != 3 || r.Outputs["id"].Value != "7" {
		t.Fatalf("%+v %v %v", r, ok, err)
	}
}

func TestOpen_ShortPassphraseIsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, key := range []string{"a", "fifteen-chars!!", "äöüäöüäöüäöüäöü"} {
		path := filepath.Join(dir, "weak.db")
		for _, ro := range []bool{false, true} {
			_, err := Open(path, Options{PlanName: "plan-a", Key: key, ReadOnly: ro, KDFIterations: MinKDFIterations})
			if !errors.Is(err, ErrWeakKey) {
				t.Fatalf("key of %d characters, read-only=%v: %v, want ErrWeakKey", len([]rune(key)), ro, err)
			}
			msg := err.Error()
			if len(key) > 3 && strings.Contains(msg, key) || !strings.Contains(msg, "head -c32 /dev/urandom | base64") || !strings.Contains(msg, KeyEnv) {
				t.Errorf("message: %s", msg)
			}
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a state file was created with a refused key: %v", err)
		}
	}
	for _, key := range []string{"sixteen-chars-ok", testKey, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="} {
		s := openT(t, filepath.Join(t.TempDir(), "ok.db"), Options{Key: key})
		closeT(t, s)
	}
}

func TestOpen_KeyedFileOpenedWithoutAKeyWarns(t *testing.T) {
	dir := t.TempDir()
	keyed := filepath.Join(dir, "keyed.db")
	s := openT(t, keyed, Options{Key: testKey})
	if err := s.Put(&Record{ID: "a", Status: Done, Outputs: Outputs{"k": SecretOutput("canary-warn-1")}}); err != nil {
		t.Fatal(err)
	}
	if w := s.Warnings(); len(w) != 0 {
		t.Errorf("warnings with the key: %q", w)
	}
	closeT(t, s)
	for _, ro := range []bool{true, false} {
		s := openT(t, keyed, Options{ReadOnly: ro})
		w := strings.Join(s.Warnings(), "\n")
		if !strings.Contains(w, "may hold sealed secret outputs") || !strings.Contains(w, keyed) || !strings.Contains(w, KeyEnv) {
			t.Errorf("read-only=%v: warnings %q", ro, w)
		}
		closeT(t, s)
	}
	plain := filepath.Join(dir, "plain.db")
	closeT(t, openT(t, plain, Options{}))
	if w := openT(t, plain, Options{ReadOnly: true}).Warnings(); len(w) != 0 {
		t.Errorf("a file never written with a key: warnings %q", w)
	}
}

func kdfIterOf(t *testing.T, path string) string {
	t.Helper()
	var v string
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get(metaKDFIter))
		return nil
	})
	return v
}

// TestOpen_KDFIterationsAreAParameterTheFileRecords: a low count (tests) is recorded
// and used by later opens whatever they ask for; the default stays the production
// count; counts out of range are refused.
func TestOpen_KDFIterationsAreAParameterTheFileRecords(t *testing.T) {
	dir := t.TempDir()
	const pass = "a passphrase for the kdf test"
	low := filepath.Join(dir, "low.db")
	s, err := Open(low, Options{PlanName: "p", Key: pass, KDFIterations: MinKDFIterations})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(&Record{ID: "a", Outputs: Outputs{"k": SecretOutput("canary-kdf")}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := kdfIterOf(t, low); got != strconv.Itoa(MinKDFIterations) {
		t.Fatalf("kdf_iter %q", got)
	}
	// Opened with the default: the recorded count derives the same key.
	s, err = Open(low, Options{PlanName: "p", Key: pass, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if r, _, err := s.Get("a"); err != nil || r.Outputs["k"].Value != "canary-kdf" {
		t.Fatalf("%+v %v", r, err)
	}
	s.Close()

	def := filepath.Join(dir, "default.db")
	s, err = Open(def, Options{PlanName: "p", Key: pass})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := kdfIterOf(t, def); got != strconv.Itoa(DefaultKDFIterations) || DefaultKDFIterations < 210_000 {
		t.Fatalf("default kdf_iter %q", got)
	}
	for _, n := range []int{1, MinKDFIterations - 1, -5} {
		if _, err := Open(filepath.Join(dir, "bad.db"), Options{Key: pass, KDFIterations: n}); err == nil {
			t.Errorf("KDFIterations %d accepted", n)
		}
	}
}

// TestOpen_RemovesLeftoversOfAnInterruptedCreation: a run killed while creating the
// state file leaves its temporary name behind (linked to the live file, or a file
// that never got linked). The next open for writing removes those, and nothing else.
func TestOpen_RemovesLeftoversOfAnInterruptedCreation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	s := openT(t, path, Options{})
	if err := s.Put(&Record{ID: "a", Status: Done}); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	old := time.Now().Add(-time.Hour)
	at := func(name string) string { return filepath.Join(dir, name) }
	// Killed between linking the new file into place and removing its temporary
	// name: exactly what create leaves.
	if err := os.Link(path, at(".s.db.creating-1234567")); err != nil {
		t.Fatal(err)
	}
	// Killed before linking: a finished or half-made temporary file, long ago.
	stale := at(".s.db.creating-2345678")
	rawBolt(t, stale, false, func(tx *bolt.Tx) error { _, _, err := provisionMeta(tx, "3"); return err })
	os.Chtimes(stale, old, old)
	// Kept: one being made right now by another run, another state's, not ours.
	keep := []string{".s.db.creating-3456789", ".other.db.creating-4567890", ".s.db.creating-notdigits", "s.db.creating-5678901"}
	for _, name := range keep {
		if err := os.WriteFile(at(name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if name != keep[0] {
			os.Chtimes(at(name), old, old)
		}
	}

	// Read-only opens never remove anything.
	closeT(t, openT(t, path, Options{ReadOnly: true}))
	if _, err := os.Lstat(stale); err != nil {
		t.Fatalf("a read-only open removed a file: %v", err)
	}

	s = openT(t, path, Options{})
	w := strings.Join(s.Warnings(), "\n")
	if r, ok, err := s.Get("a"); err != nil || !ok || r.Status != Done {
		t.Fatalf("the live file lost its record: %+v %v %v", r, ok, err)
	}
	closeT(t, s)
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := append([]string{"s.db"}, keep...)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("directory holds %q, want %q", names, want)
	}
	if !strings.Contains(w, ".s.db.creating-1234567") || !strings.Contains(w, ".s.db.creating-2345678") {
		t.Errorf("warnings do not name the removed files: %q", w)
	}
}

func TestOpen_WarnsWhenOthersMayWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.db")
	s := openT(t, path, Options{})
	if w := s.Warnings(); len(w) != 0 {
		t.Fatalf("private file and directory: warnings %q", w)
	}
	closeT(t, s)
	for _, tc := range []struct {
		name          string
		dirMode, mode os.FileMode
		want          []string
	}{
		{"group-writable directory", 0o770, 0o600, []string{"state directory " + dir + " is writable by group"}},
		{"world-writable file", 0o700, 0o666, []string{"state file " + path + " is writable by group and others", "chmod 600"}},
		{"both", 0o777, 0o602, []string{"state directory", "state file " + path + " is writable by others"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Chmod(dir, tc.dirMode)
			os.Chmod(path, tc.mode)
			defer os.Chmod(dir, 0o700)
			defer os.Chmod(path, 0o600)
			for _, ro := range []bool{true, false} {
				s := openT(t, path, Options{ReadOnly: ro})
				w := strings.Join(s.Warnings(), "\n")
				closeT(t, s)
				for _, want := range tc.want {
					if !strings.Contains(w, want) {
						t.Errorf("read-only=%v: warnings %q, want %q", ro, w, want)
					}
				}
			}
		})
	}
}
