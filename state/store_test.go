package state

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const testKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" // 32 bytes hex

func openT(t testing.TB, path string, o Options) *Store {
	t.Helper()
	if o.PlanName == "" {
		o.PlanName = "plan-a"
	}
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore_RoundTripsEveryField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{Key: testKey})
	at := time.Unix(1_700_000_000, 123)
	in := &Record{ID: "store-1", Hash: sha256.Sum256([]byte("x")), Status: Failed, Attempts: 3, StartedAt: at, FinishedAt: at.Add(time.Second),
		LastError: "HTTP 500", Outputs: Outputs{"id": Plain("cs-1"), "auth_key": SecretOutput("canary-authkey-8812")}}
	if err := s.Put(in); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openT(t, path, Options{Key: testKey})
	got, ok, err := s.Get("store-1")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if got.Hash != in.Hash || got.Status != Failed || got.Attempts != 3 || !got.StartedAt.Equal(in.StartedAt) || !got.FinishedAt.Equal(in.FinishedAt) ||
		got.LastError != "HTTP 500" || got.Outputs["id"] != Plain("cs-1") || got.Outputs["auth_key"] != SecretOutput("canary-authkey-8812") || got.SecretsDropped {
		t.Errorf("got %+v", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestStore_SecretsNeverInClearText(t *testing.T) {
	for _, tc := range []struct{ name, key string }{{"raw key", testKey}, {"passphrase", "correct horse battery staple"}, {"no key", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			s := openT(t, path, Options{Key: tc.key})
			for i := 0; i < 50; i++ {
				if err := s.Put(&Record{ID: fmt.Sprintf("t%d", i), Status: Done, Outputs: Outputs{"k": SecretOutput(fmt.Sprintf("canary-secret-%04d", i))}}); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			raw, _ := os.ReadFile(path)
			if bytes.Contains(raw, []byte("canary-secret-")) {
				t.Fatal("secret output in clear text in the state file")
			}
			s = openT(t, path, Options{Key: tc.key})
			r, _, err := s.Get("t7")
			if err != nil {
				t.Fatal(err)
			}
			if tc.key == "" {
				if !r.SecretsDropped || len(r.Outputs) != 0 {
					t.Errorf("without a key: %+v", r)
				}
			} else if r.Outputs["k"].Value != "canary-secret-0007" {
				t.Errorf("decrypted %+v", r.Outputs)
			}
		})
	}
}

func TestStore_KeyProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{Key: testKey})
	if err := s.Put(&Record{ID: "a", Status: Done, Outputs: Outputs{"k": SecretOutput("canary-x")}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path, Options{PlanName: "plan-a", Key: "another key"}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	s = openT(t, path, Options{})
	r, _, err := s.Get("a")
	if err != nil || !r.SecretsDropped {
		t.Fatalf("no key: %+v %v", r, err)
	}
}

func TestStore_ConcurrentPutsAreAllDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{})
	var wg sync.WaitGroup
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := s.Put(&Record{ID: fmt.Sprintf("g%03d-%02d", g, i), Status: Done, Attempts: i}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s.Close()
	s = openT(t, path, Options{ReadOnly: true})
	all, err := s.Load()
	if err != nil || len(all) != 2000 {
		t.Fatalf("loaded %d records, err %v", len(all), err)
	}
	c, _ := s.Counts()
	if c[Done] != 2000 {
		t.Errorf("counts %v", c)
	}
}

func TestStore_OtherPlanIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	openT(t, path, Options{}).Close()
	if _, err := Open(path, Options{PlanName: "plan-b"}); !errors.Is(err, ErrOtherPlan) {
		t.Fatalf("err = %v", err)
	}
}

func TestStore_ReadOnlyMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.db")
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("read-only open created the file")
	}
}

func TestStore_ParentIsAFile(t *testing.T) {
	dir := t.TempDir()
	parent := filepath.Join(dir, "file")
	os.WriteFile(parent, []byte("x"), 0o600)
	if _, err := Open(filepath.Join(parent, "s.db"), Options{PlanName: "p"}); err == nil {
		t.Fatal("no error")
	}
}

// TestHelperHoldLock is run as a child process that holds a state file open.
func TestHelperHoldLock(t *testing.T) {
	path := os.Getenv("STATE_HOLD_LOCK")
	if path == "" {
		t.Skip("helper process")
	}
	s, err := Open(path, Options{PlanName: "plan-a"})
	if err != nil {
		fmt.Println("helper:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(30 * time.Second)
	s.Close()
}

func TestStore_SecondProcessGetsErrLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	openT(t, path, Options{}).Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), "STATE_HOLD_LOCK="+path)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !bytes.Contains(buf[:n], []byte("locked")) {
		t.Fatalf("helper said %q", buf[:n])
	}
	for _, ro := range []bool{false, true} {
		start := time.Now()
		_, err := Open(path, Options{PlanName: "plan-a", ReadOnly: ro})
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("read-only=%v: err = %v, want ErrLocked", ro, err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("took %v to report the lock", time.Since(start))
		}
	}
}

func TestStore_CorruptFilesAreReportedAndLeftUntouched(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s := openT(t, good, Options{})
	for i := 0; i < 200; i++ {
		s.Put(&Record{ID: fmt.Sprintf("t%03d", i), Status: Done})
	}
	s.Close()
	valid, _ := os.ReadFile(good)
	noMeta := filepath.Join(dir, "nometa.db")
	db, err := bolt.Open(noMeta, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
	db.Close()
	zeroed := append([]byte(nil), valid...)
	for i := 0; i < 4096 && i < len(zeroed); i++ {
		zeroed[i] = 0
	}
	for _, tc := range []struct {
		name string
		data []byte
		path string
	}{
		{name: "garbage", data: bytes.Repeat([]byte("garbage!"), 2000)},
		{name: "empty file", data: []byte{}},
		{name: "truncated", data: valid[:len(valid)/3]},
		{name: "zeroed first page", data: zeroed},
		{name: "short", data: []byte("x")},
		{name: "bbolt without our buckets", path: noMeta},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.path
			if p == "" {
				p = filepath.Join(dir, tc.name+".db")
				os.WriteFile(p, tc.data, 0o600)
			}
			before, _ := os.ReadFile(p)
			for _, ro := range []bool{false, true} {
				st, err := Open(p, Options{PlanName: "plan-a", ReadOnly: ro})
				if err == nil {
					// bbolt keeps two meta pages: a file whose first one is damaged
					// still opens from the second. Reading must then work or fail
					// cleanly, and opening must not have written anything.
					_, _ = st.Load()
					st.Close()
					continue
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("read-only=%v: err = %v, want ErrCorrupt", ro, err)
				}
			}
			after, _ := os.ReadFile(p)
			if !bytes.Equal(before, after) {
				t.Fatal("the file was modified")
			}
		})
	}
}

func TestStore_PutAfterClose(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	s.Close()
	if err := s.Put(&Record{ID: "a"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	s := &Store{}
	good, _ := s.encode(&Record{ID: "a", Status: Done, Attempts: 2, Outputs: Outputs{"x": Plain("y")}, Hash: sha256.Sum256(nil)})
	f.Add(good)
	f.Add([]byte(`{"v":1,"s":9}`))
	f.Add([]byte(`{"v":1,"h":"AAAA"}`))
	f.Add([]byte(`{"v":1,"o":{"k":{"x":"AAAAAAAAAAAAAAAAAAAA"}}}`))
	f.Add([]byte(`{`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord("id", b, s)
		if err == nil && r == nil {
			t.Fatal("nil record without error")
		}
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

func BenchmarkPut_Concurrent64(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "s.db"), Options{})
	const workers = 64
	per := 20000 / workers
	b.ResetTimer()
	start := time.Now()
	total := 0
	for n := 0; n < b.N; n++ {
		var wg sync.WaitGroup
		for g := 0; g < workers; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					if err := s.Put(&Record{ID: fmt.Sprintf("n%d-g%d-%d", n, g, i), Status: Done}); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		total += workers * per
	}
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "durable-records/s")
}

func BenchmarkLoad_100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "s.db")
	s := openT(b, path, Options{})
	batch := make([]*Record, 0, 1000)
	for i := 0; i < 100_000; i++ {
		batch = append(batch, &Record{ID: fmt.Sprintf("task-%06d", i), Status: Done, Attempts: 1, Hash: sha256.Sum256([]byte{byte(i)}), StartedAt: time.Now(), FinishedAt: time.Now(), Outputs: Outputs{"id": Plain("x")}})
		if len(batch) == cap(batch) {
			s.Put(batch...)
			batch = batch[:0]
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		all, err := s.Load()
		if err != nil || len(all) != 100_000 {
			b.Fatal(len(all), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/load")
}

// A run killed right after bbolt created the file, before the buckets existed,
// leaves an empty database: the next run must resume, not call it corrupt.
func TestStore_FileKilledBeforeInitIsResumed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open of an empty file: %v, want not-exist (no state yet)", err)
	}
	s := openT(t, path, Options{})
	if err := s.Put(&Record{ID: "a", Status: Done}); err != nil {
		t.Fatal(err)
	}
	if s.Meta().PlanName != "plan-a" {
		t.Errorf("meta %+v", s.Meta())
	}
}
