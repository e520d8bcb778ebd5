package state

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testKey is 32 bytes in hex.
const testKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func openT(t testing.TB, path string, o Options) *Store {
	t.Helper()
	if o.PlanName == "" {
		o.PlanName = "plan-a"
	}
	if o.KDFIterations == 0 {
		o.KDFIterations = MinKDFIterations // passphrase tests stay fast; the file records it
	}
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func closeT(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// sameRecord compares records, times by instant and nil/empty outputs alike.
func sameRecord(a, b *Record) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	if !x.StartedAt.Equal(y.StartedAt) || !x.FinishedAt.Equal(y.FinishedAt) {
		return false
	}
	x.StartedAt, y.StartedAt, x.FinishedAt, y.FinishedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(x.Outputs) == 0 && len(y.Outputs) == 0 {
		x.Outputs, y.Outputs = nil, nil
	}
	return reflect.DeepEqual(x, y)
}

func TestStore_RoundTripsEveryField(t *testing.T) {
	at := time.Date(2025, 10, 1, 12, 30, 45, 123456789, time.FixedZone("X", 3600))
	tests := []struct {
		name string
		rec  Record
	}{
		{"only an id", Record{ID: "a"}},
		{"every field", Record{ID: "nx_system/store-001", Hash: sha256.Sum256([]byte("spec")), Status: Failed, Attempts: 3,
			StartedAt: at, FinishedAt: at.Add(1500 * time.Millisecond), LastError: "HTTP 500: internal error",
			Outputs: Outputs{"id": Plain("cs-1"), "auth_key": SecretOutput("canary-authkey-8812"), "empty": Plain("")}}},
		{"each status", Record{ID: "s", Status: Started, Attempts: 1, StartedAt: at}},
		{"done", Record{ID: "d", Status: Done, Attempts: 1, StartedAt: at, FinishedAt: at}},
		{"pending with dropped secrets", Record{ID: "p", Status: Pending, SecretsDropped: true}},
		{"failed, maybe applied", Record{ID: "q", Status: Failed, Attempts: 2, MaybeApplied: true, LastError: "POST /x: EOF"}},
		{"times before 1970 and after 2262", Record{ID: "t", StartedAt: time.Date(1, 2, 3, 4, 5, 6, 7, time.UTC), FinishedAt: time.Date(3000, 1, 1, 0, 0, 0, 999999999, time.UTC)}},
		{"unicode and binary-ish text", Record{ID: "ü/名前 with spaces", LastError: "line1\nline2\x00tab\t", Outputs: Outputs{"ключ": Plain("värde\x00\xff"), "": Plain("unnamed")}}},
		{"many outputs", Record{ID: "m", Outputs: func() Outputs {
			o := Outputs{}
			for i := range 50 {
				o[fmt.Sprintf("out-%02d", i)] = Output{Value: strings.Repeat("v", i), Secret: i%3 == 0}
			}
			return o
		}()}},
		{"large value", Record{ID: "big", LastError: strings.Repeat("e", 100_000), Outputs: Outputs{"blob": SecretOutput(strings.Repeat("s", 50_000))}}},
		{"negative attempts survive", Record{ID: "neg", Attempts: -1}},
	}
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{Key: testKey})
	for _, tc := range tests {
		if err := s.Put(&tc.rec); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	closeT(t, s)
	s = openT(t, path, Options{Key: testKey})
	all, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := s.Get(tc.rec.ID)
			if err != nil || !ok {
				t.Fatalf("Get: ok=%v err=%v", ok, err)
			}
			if !sameRecord(got, &tc.rec) {
				t.Errorf("Get:\n got %+v\nwant %+v", got, tc.rec)
			}
			if !sameRecord(all[tc.rec.ID], &tc.rec) {
				t.Errorf("Load:\n got %+v\nwant %+v", all[tc.rec.ID], tc.rec)
			}
		})
	}
	if len(all) != len(tests) {
		t.Errorf("Load returned %d records, want %d", len(all), len(tests))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestStore_GetMissing(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	r, ok, err := s.Get("nope")
	if r != nil || ok || err != nil {
		t.Fatalf("Get(missing) = %v, %v, %v", r, ok, err)
	}
}

func TestStore_PutCopiesTheRecord(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	r := &Record{ID: "a", Status: Started, Outputs: Outputs{"x": Plain("1")}}
	if err := s.Put(r); err != nil {
		t.Fatal(err)
	}
	r.Status, r.Outputs["x"] = Done, Plain("2") // the runner reuses its records
	got, _, _ := s.Get("a")
	if got.Status != Started || got.Outputs["x"].Value != "1" {
		t.Fatalf("stored record changed with the caller's: %+v", got)
	}
}

func TestStore_LastRecordForAnIDWins(t *testing.T) {
	tests := []struct {
		name string
		put  func(s *Store) error
	}{
		{"one Put call", func(s *Store) error {
			return s.Put(&Record{ID: "a", Attempts: 1}, &Record{ID: "b"}, &Record{ID: "a", Attempts: 2}, &Record{ID: "a", Attempts: 3})
		}},
		{"successive Puts", func(s *Store) error {
			for i := 1; i <= 3; i++ {
				if err := s.Put(&Record{ID: "a", Attempts: i}, &Record{ID: "b"}); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			s := openT(t, path, Options{})
			if err := tc.put(s); err != nil {
				t.Fatal(err)
			}
			closeT(t, s)
			s = openT(t, path, Options{ReadOnly: true})
			got, _, err := s.Get("a")
			if err != nil || got.Attempts != 3 {
				t.Fatalf("got %+v, %v; want attempts 3", got, err)
			}
		})
	}
}

func TestStore_ConcurrentPutsFrom100GoroutinesAreAllDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{Key: testKey})
	const goroutines, each = 100, 20
	rec := func(g, i int) *Record {
		return &Record{ID: fmt.Sprintf("g%03d-%02d", g, i), Status: Status(i % 4), Attempts: i, Hash: sha256.Sum256([]byte{byte(g), byte(i)}),
			Outputs: Outputs{"id": Plain(fmt.Sprint(g*1000 + i)), "key": SecretOutput(fmt.Sprintf("secret-%d-%d", g, i))}}
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if err := s.Put(rec(g, i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	puts := int64(goroutines * each)
	if c := s.commits.Load(); c >= puts {
		t.Errorf("%d commits for %d concurrent Puts: no group commit", c, puts)
	} else {
		t.Logf("%d Puts in %d commits", puts, c)
	}
	closeT(t, s)

	s = openT(t, path, Options{Key: testKey, ReadOnly: true})
	all, err := s.Load()
	if err != nil || len(all) != goroutines*each {
		t.Fatalf("loaded %d records, err %v", len(all), err)
	}
	for g := range goroutines {
		for i := range each {
			want := rec(g, i)
			if !sameRecord(all[want.ID], want) {
				t.Fatalf("record %s: got %+v want %+v", want.ID, all[want.ID], want)
			}
		}
	}
	c, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	want := map[Status]int{Pending: 500, Started: 500, Done: 500, Failed: 500}
	if !maps.Equal(c, want) {
		t.Errorf("counts %v, want %v", c, want)
	}
}

// One Put larger than a batch is committed whole.
func TestStore_PutLargerThanABatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{})
	recs := make([]*Record, maxBatch*2+1)
	for i := range recs {
		recs[i] = &Record{ID: fmt.Sprintf("t%06d", i), Attempts: i}
	}
	if err := s.Put(recs...); err != nil {
		t.Fatal(err)
	}
	all, err := s.Load()
	if err != nil || len(all) != len(recs) || all["t020000"].Attempts != 20000 {
		t.Fatalf("%d records, %v", len(all), err)
	}
}

func TestStore_ForEachIsSortedByID(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	ids := []string{"m", "a", "z", "b/1", "b/10", "b/2", "A"}
	for _, id := range ids {
		if err := s.Put(&Record{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := s.ForEach(func(r *Record) error { got = append(got, r.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("order %v, want %v", got, ids)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.ForEach(func(*Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("ForEach did not stop at fn's error: %v after %d", err, n)
	}
}

func TestStore_PutRejectsBadIDs(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	tests := []struct {
		name string
		id   string
	}{
		{"empty", ""},
		{"too long", strings.Repeat("x", 40000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Put(&Record{ID: "ok"}, &Record{ID: tc.id}); err == nil {
				t.Fatal("no error")
			}
			if _, ok, _ := s.Get("ok"); ok {
				t.Fatal("a rejected Put stored part of its records")
			}
		})
	}
	// The store still works: a bad record never reaches a shared commit.
	if err := s.Put(&Record{ID: "after"}); err != nil {
		t.Fatal(err)
	}
}

func TestStore_Close(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{})
	closeT(t, s)
	closeT(t, s) // idempotent
	tests := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { return s.Put(&Record{ID: "a"}) }},
		{"Get", func() error { _, _, err := s.Get("a"); return err }},
		{"Load", func() error { _, err := s.Load(); return err }},
		{"ForEach", func() error { return s.ForEach(func(*Record) error { return nil }) }},
		{"Counts", func() error { _, err := s.Counts(); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, ErrClosed) {
				t.Fatalf("err = %v, want ErrClosed", err)
			}
		})
	}
}

// Puts racing with Close either fail with ErrClosed or are in the file.
func TestStore_CloseFlushesQueuedPuts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{})
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("g%02d-%04d", g, i)
				err := s.Put(&Record{ID: id})
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	closeT(t, s)
	wg.Wait()
	s = openT(t, path, Options{ReadOnly: true})
	all, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	for id := range acked {
		if all[id] == nil {
			t.Fatalf("acknowledged record %s is missing", id)
		}
	}
	t.Logf("%d acknowledged, %d stored", len(acked), len(all))
}

func TestOpen_NewFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "s.db")
	before := time.Now()
	s := openT(t, path, Options{PlanName: "retail-q4"})
	m := s.Meta()
	if m.PlanName != "retail-q4" || m.FormatVersion != FormatVersion || m.HasKeyCheck || m.Created.Before(before.Add(-time.Second)) {
		t.Errorf("meta %+v", m)
	}
	if s.Path() != path {
		t.Errorf("path %q", s.Path())
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v %v, want mode 0700", fi.Mode(), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file: %v %v, want mode 0600", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want only the state file", entries)
	}
	closeT(t, s)
	s = openT(t, path, Options{PlanName: "retail-q4", ReadOnly: true})
	if got := s.Meta(); !reflect.DeepEqual(got, m) {
		t.Errorf("meta after reopen %+v, want %+v", got, m)
	}
}

func TestOpen_OtherPlanIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	closeT(t, openT(t, path, Options{PlanName: "plan-a"}))
	sum := fileSum(t, path)
	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{PlanName: "plan-b", ReadOnly: ro})
		if !errors.Is(err, ErrOtherPlan) {
			t.Fatalf("read-only=%v: err = %v, want ErrOtherPlan", ro, err)
		}
		if msg := err.Error(); !strings.Contains(msg, `"plan-a"`) || !strings.Contains(msg, `"plan-b"`) || !strings.Contains(msg, path) {
			t.Errorf("message should name both plans and the path: %s", msg)
		}
	}
	// An empty plan name (status of a given file) accepts any plan.
	closeT(t, openT(t, path, Options{PlanName: "", ReadOnly: true}))
	if fileSum(t, path) != sum {
		t.Error("the file was modified")
	}
}

func TestOpen_ReadOnlyMissingFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing-dir")
	path := filepath.Join(dir, "none.db")
	_, err := Open(path, Options{ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("read-only open created the directory")
	}
}

func TestOpen_ReadOnlyRefusesWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	closeT(t, openT(t, path, Options{}))
	sum := fileSum(t, path)
	s := openT(t, path, Options{ReadOnly: true, Key: testKey}) // a key's first use is not recorded read-only
	if err := s.Put(&Record{ID: "a"}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("err = %v, want ErrReadOnly", err)
	}
	closeT(t, s)
	if fileSum(t, path) != sum {
		t.Error("a read-only open modified the file")
	}
}

func TestOpen_UnwritableLocations(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
	}{
		{"parent is a regular file", filepath.Join(regular, "s.db")},
		{"grandparent is a regular file", filepath.Join(regular, "x", "s.db")},
		{"path is a directory", filepath.Join(dir, "sub")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadDir(dir)
			_, err := Open(tc.path, Options{PlanName: "p"})
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "state") || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("unclear error: %v", err)
			}
			after, _ := os.ReadDir(dir)
			if len(after) != len(before) {
				t.Errorf("something was created: %v", after)
			}
			if b, _ := os.ReadFile(regular); string(b) != "x" {
				t.Error("the regular file was changed")
			}
		})
	}
}

// A second writer (or a reader: bbolt's shared lock conflicts with a writer's)
// fails fast with ErrLocked, in this process...
func TestOpen_SecondOpenWhileWriterHoldsTheFileIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{})
	if err := s.Put(&Record{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("read-only=%v", ro), func(t *testing.T) {
			start := time.Now()
			_, err := Open(path, Options{PlanName: "plan-a", ReadOnly: ro})
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("err = %v, want ErrLocked", err)
			}
			if !strings.Contains(err.Error(), "another provision run") || !strings.Contains(err.Error(), path) {
				t.Errorf("unclear message: %v", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	// The holder is unaffected.
	if err := s.Put(&Record{ID: "b"}); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_ReadersShareTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	closeT(t, openT(t, path, Options{}))
	a := openT(t, path, Options{ReadOnly: true})
	b := openT(t, path, Options{ReadOnly: true})
	if _, err := a.Load(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{PlanName: "plan-a"}); !errors.Is(err, ErrLocked) {
		t.Fatalf("writer while readers hold the file: %v, want ErrLocked", err)
	}
}

const helperEnv = "PROVISION_STATE_TEST_HELPER"

// TestHelperProcess is not a test: run as a child process by the tests below, it
// opens the state file named in its environment and holds it until killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for other tests")
	}
	s, err := Open(path, Options{PlanName: "plan-a"})
	if err != nil {
		fmt.Println("helper:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	s.Close()
	os.Exit(0)
}

// ...and from another process.
func TestOpen_FileHeldByAnotherProcessIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	closeT(t, openT(t, path, Options{}))
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper said %q", line)
	}
	sum := fileSum(t, path)
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("read-only=%v", ro), func(t *testing.T) {
			start := time.Now()
			_, err := Open(path, Options{PlanName: "plan-a", ReadOnly: ro})
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("err = %v, want ErrLocked", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v to report the lock", d)
			}
		})
	}
	if fileSum(t, path) != sum {
		t.Error("the file changed")
	}
	// Once the holder is gone, the file opens.
	cmd.Process.Kill()
	cmd.Wait()
	closeT(t, openT(t, path, Options{}))
}

func TestOpen_OtherTargetIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	sandbox := map[string]string{"nxcloud": "sandbox (in-process fakes) standing in for nx-cloud https://nxvms.com user=ops@example.com"}
	real := map[string]string{"nxcloud": "nx-cloud https://nxvms.com user=ops@example.com"}
	closeT(t, openT(t, path, Options{PlanName: "p", Target: sandbox}))
	sum := fileSum(t, path)
	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{PlanName: "p", Target: real, ReadOnly: ro})
		if !errors.Is(err, ErrOtherTarget) {
			t.Fatalf("read-only=%v: err = %v, want ErrOtherTarget", ro, err)
		}
		if msg := err.Error(); !strings.Contains(msg, sandbox["nxcloud"]) || !strings.Contains(msg, real["nxcloud"]) || !strings.Contains(msg, "endpoint nxcloud") {
			t.Errorf("message should name the endpoint and both identities: %s", msg)
		}
	}
	if fileSum(t, path) != sum {
		t.Error("a refused open modified the file")
	}
	// No target (status of a given file) accepts any; the recorded one is readable.
	s := openT(t, path, Options{PlanName: "p", ReadOnly: true})
	if got := s.Meta().Target; !reflect.DeepEqual(got, sandbox) {
		t.Errorf("recorded target %v, want %v", got, sandbox)
	}
	closeT(t, s)
	// A new endpoint is added; the known one must still match.
	more := map[string]string{"nxcloud": sandbox["nxcloud"], "edge": "edge https://edge.example.com:8995 user=admin"}
	closeT(t, openT(t, path, Options{PlanName: "p", Target: more}))
	s = openT(t, path, Options{PlanName: "p", ReadOnly: true})
	if got := s.Meta().Target; !reflect.DeepEqual(got, more) {
		t.Errorf("target after adding an endpoint %v, want %v", got, more)
	}
	closeT(t, s)
	// Retarget records the new identity; later opens with it pass.
	closeT(t, openT(t, path, Options{PlanName: "p", Target: real, Retarget: true}))
	closeT(t, openT(t, path, Options{PlanName: "p", Target: real}))
	if _, err := Open(path, Options{PlanName: "p", Target: sandbox}); !errors.Is(err, ErrOtherTarget) {
		t.Fatalf("after retarget, the old identity: err = %v, want ErrOtherTarget", err)
	}
}

func TestOpen_TargetOfOlderFileIsAdopted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	closeT(t, openT(t, path, Options{PlanName: "p"})) // no target recorded
	real := map[string]string{"c": "nx-cloud https://nxvms.com"}
	closeT(t, openT(t, path, Options{PlanName: "p", Target: real}))
	s := openT(t, path, Options{PlanName: "p", ReadOnly: true})
	defer closeT(t, s)
	if got := s.Meta().Target; !reflect.DeepEqual(got, real) {
		t.Errorf("target %v, want %v", got, real)
	}
}

func TestStore_InfosDeleteAndStickyAdoption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{PlanName: "p"})
	spec := json.RawMessage(`{"name":"store-1","password":"***"}`)
	noErr(t, s.Put(
		&Record{ID: "a", Status: Done, Info: &TaskInfo{Kind: "nx_systems", Spec: spec, Deps: []string{"c"}, Adopted: true}},
		&Record{ID: "b", Status: Done, Info: &TaskInfo{Kind: "nx_shares"}},
		&Record{ID: "c", Status: Failed},
	))
	// An update of an adopted task does not make it "created".
	noErr(t, s.Put(&Record{ID: "a", Status: Done, Info: &TaskInfo{Kind: "nx_systems", Spec: spec, Deps: []string{"c"}}}))
	infos, err := s.Infos()
	noErr(t, err)
	if len(infos) != 2 || !infos["a"].Adopted || infos["b"].Adopted || infos["a"].Kind != "nx_systems" || string(infos["a"].Spec) != string(spec) || !reflect.DeepEqual(infos["a"].Deps, []string{"c"}) {
		t.Fatalf("infos a=%+v b=%+v", infos["a"], infos["b"])
	}
	noErr(t, s.Delete("a", "c", "missing"))
	closeT(t, s)
	s = openT(t, path, Options{PlanName: "p", ReadOnly: true})
	defer closeT(t, s)
	recs, err := s.Load()
	noErr(t, err)
	infos, err = s.Infos()
	noErr(t, err)
	if len(recs) != 1 || recs["b"] == nil || len(infos) != 1 || infos["b"] == nil {
		t.Fatalf("after delete: records %v, infos %v; want only b", recs, infos)
	}
	if err := s.Delete("b"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("delete on a read-only store: %v", err)
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Writers in no hurry share a commit: the first waits up to its linger for the
// others (without linger, each would have its own). A Put that arrives while a
// writer lingers commits at once and takes it along; a reopened file has every
// record.
func TestStore_PutWithin_LingeringWritersShareACommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{})
	const writers = 10
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 2 * time.Millisecond) // they come one by one
			if err := s.PutWithin(300*time.Millisecond, &Record{ID: fmt.Sprintf("lazy-%02d", i), Status: Started}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if c := s.commits.Load(); c > writers/2 {
		t.Errorf("%d commits for %d lingering writers 2 ms apart: they did not share", c, writers)
	}
	before := s.commits.Load()
	lazy := make(chan error, 1)
	go func() { lazy <- s.PutWithin(time.Hour, &Record{ID: "lazy-hour", Status: Started}) }()
	// A Put every 50 ms until the lazy writer is done: the first that comes while it
	// lingers takes it along (whichever that is on a slow machine). The Puts run on
	// their own goroutine, so that a Put that waits for the lingering commit (the
	// bug this looks for) fails the test at the deadline rather than hanging it.
	var n atomic.Int64
	stop, putErr := make(chan struct{}), make(chan error, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				putErr <- nil
				return
			case <-tick.C:
				if err := s.Put(&Record{ID: fmt.Sprintf("hurried-%03d", n.Add(1)), Status: Done}); err != nil {
					putErr <- err
					return
				}
			}
		}
	}()
	select {
	case err := <-lazy:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a writer lingering for an hour was not committed with any of the %d Puts that came meanwhile", n.Load())
	}
	close(stop)
	if err := <-putErr; err != nil {
		t.Fatal(err)
	}
	puts := int(n.Load())
	if c := s.commits.Load() - before; c != int64(puts) {
		t.Errorf("%d commits for a lingering writer and %d Puts, want %d (it shares one)", c, puts, puts)
	}
	closeT(t, s)
	s = openT(t, path, Options{ReadOnly: true})
	recs, err := s.Load()
	if err != nil || len(recs) != writers+1+puts {
		t.Fatalf("reopened: %d records, %v; want %d", len(recs), err, writers+1+puts)
	}
}
