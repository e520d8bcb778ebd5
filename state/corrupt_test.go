package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// validFile writes a state file with n records and returns its bytes.
func validFile(t testing.TB, dir string, n int) (string, []byte) {
	t.Helper()
	path := filepath.Join(dir, "valid.db")
	s := openT(t, path, Options{Key: testKey})
	for i := range n {
		r := &Record{ID: fmt.Sprintf("task-%04d", i), Status: Done, Attempts: 1, LastError: strings.Repeat("e", i%50),
			Outputs: Outputs{"id": Plain(fmt.Sprint(i)), "k": SecretOutput("s")}}
		if err := s.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	closeT(t, s)
	return path, must(os.ReadFile(path))
}

// rawBolt writes a bbolt file with the given content, bypassing the store.
func rawBolt(t testing.TB, path string, noFreelistSync bool, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: noFreelistSync})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// provisionMeta writes the meta and tasks buckets the way a store does.
func provisionMeta(tx *bolt.Tx, format string) (*bolt.Bucket, *bolt.Bucket, error) {
	mb, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return nil, nil, err
	}
	tb, err := tx.CreateBucket(bucketTasks)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range map[string]string{"plan": "plan-a", "format": format, "created": "1700000000000000000"} {
		if err := mb.Put([]byte(k), []byte(v)); err != nil {
			return nil, nil, err
		}
	}
	return mb, tb, nil
}

// tryEverything opens a damaged file both ways and reads and writes it. Every
// failure must be ErrCorrupt and nothing may panic. Once damage to the file's
// structure is found, the file must not change. (A damaged record value is not
// damage to the file: writing that record again is fine.) It reports whether any
// damage was found.
func tryEverything(t *testing.T, path string) (found bool) {
	t.Helper()
	before := fileSum(t, path)
	structural := false
	note := func(what string, err error) {
		t.Helper()
		if err == nil {
			return
		}
		if errors.Is(err, ErrOtherPlan) || errors.Is(err, ErrWrongKey) { // a damaged plan name or key check
			found, structural = true, true
			return
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", what, err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: the error does not name the file: %v", what, err)
		}
		found = true
		var d *damageError
		if what == "Open" || errors.As(err, &d) {
			structural = true
		}
	}
	for _, ro := range []bool{true, false} {
		s, err := Open(path, Options{PlanName: "plan-a", Key: testKey, ReadOnly: ro})
		note("Open", err)
		if err != nil {
			continue
		}
		_, lerr := s.Load()
		note("Load", lerr)
		note("ForEach", s.ForEach(func(*Record) error { return nil }))
		if !ro {
			perr := s.Put(&Record{ID: "task-0100", Status: Failed}, &Record{ID: "new"})
			note("Put", perr)
			var d *damageError
			if errors.As(lerr, &d) && perr == nil {
				t.Errorf("Put wrote to a file found damaged: Load said %v", lerr)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if structural && fileSum(t, path) != before {
		t.Fatal("a damaged file was modified")
	}
	// Nothing kept the file locked.
	if s, err := Open(path, Options{ReadOnly: true}); errors.Is(err, ErrLocked) {
		t.Fatalf("the file is still locked: %v", err)
	} else if err == nil {
		s.Close()
	}
	return found
}

func TestOpen_CorruptFilesAreReportedAndLeftUntouched(t *testing.T) {
	dir := t.TempDir()
	vpath, valid := validFile(t, dir, 300)
	page := 4096
	h, err := checkHeader(vpath)
	if err != nil {
		t.Fatal(err)
	}
	used := int(h.pgid) * page // bbolt grows files ahead: the pages in use end here
	zeroPages := func(pages ...int) []byte {
		b := bytes.Clone(valid)
		for _, p := range pages {
			clear(b[p*page : (p+1)*page])
		}
		return b
	}
	// A leaf of the tasks bucket, found by its content.
	leaf := bytes.Index(valid, []byte("task-0150")) / page

	tests := []struct {
		name  string
		data  []byte
		build func(path string)
		want  string // in the message
	}{
		{name: "random garbage", data: func() []byte {
			b := make([]byte, 64*1024)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		}(), want: "not a bbolt database"},
		{name: "text", data: bytes.Repeat([]byte("garbage!"), 2000), want: "not a bbolt database"},
		{name: "empty file", data: []byte{}, want: "empty"},
		{name: "one byte", data: []byte("x"), want: "too short"},
		{name: "truncated to a third", data: valid[:used/3], want: "truncated"},
		{name: "truncated by one page", data: valid[:used-page], want: "truncated"},
		{name: "truncated mid-page", data: valid[:used-page/2], want: "truncated"},
		{name: "only the meta pages", data: valid[:2*page], want: "truncated"},
		{name: "both meta pages zeroed", data: zeroPages(0, 1)},
		{name: "zeroed tasks leaf page", data: zeroPages(leaf)},
		{name: "bbolt file without our buckets", build: func(path string) {
			rawBolt(t, path, false, func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
		}, want: "not a provision state file"},
		{name: "empty bbolt file", build: func(path string) {
			rawBolt(t, path, false, func(tx *bolt.Tx) error { return nil })
		}, want: "not a provision state file"},
		{name: "meta without tasks", build: func(path string) {
			rawBolt(t, path, false, func(tx *bolt.Tx) error {
				mb, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return mb.Put(metaFormat, []byte("2"))
			})
		}, want: "not a provision state file"},
		{name: "unknown format version", build: func(path string) {
			rawBolt(t, path, false, func(tx *bolt.Tx) error { _, _, err := provisionMeta(tx, "99"); return err })
		}, want: "unknown format version"},
		{name: "a bucket among the tasks", build: func(path string) {
			rawBolt(t, path, false, func(tx *bolt.Tx) error {
				_, tb, err := provisionMeta(tx, "2")
				if err != nil {
					return err
				}
				_, err = tb.CreateBucket([]byte("zz"))
				return err
			})
		}, want: "unexpected bucket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			if tc.build != nil {
				tc.build(path)
			} else if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			before := fileSum(t, path)
			for _, ro := range []bool{false, true} {
				s, err := Open(path, Options{PlanName: "plan-a", ReadOnly: ro})
				if err == nil {
					s.Close()
				}
				if tc.name == "zeroed tasks leaf page" && err == nil {
					continue // found by the reads, below
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("read-only=%v: err = %v, want ErrCorrupt", ro, err)
				}
				if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("read-only=%v: message %q should name the path and say %q", ro, err, tc.want)
				}
			}
			if !tryEverything(t, path) {
				t.Error("the damage went unnoticed")
			}
			if err := Check(path); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Check: %v, want ErrCorrupt", err)
			}
			if fileSum(t, path) != before {
				t.Fatal("the file was modified")
			}
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
				t.Errorf("files left behind: %v", entries)
			}
		})
	}
}

// bbolt keeps two copies of its meta page and opens from the other when one is
// damaged (a torn write in a crash). That file still opens; Check reports it.
func TestOpen_OneDamagedMetaPageOpensFromTheOther(t *testing.T) {
	for _, p := range []int{0, 1} {
		t.Run(fmt.Sprintf("meta page %d", p), func(t *testing.T) {
			_, valid := validFile(t, t.TempDir(), 50)
			path := filepath.Join(t.TempDir(), "s.db")
			b := bytes.Clone(valid)
			clear(b[p*4096 : (p+1)*4096])
			os.WriteFile(path, b, 0o600)
			s := openT(t, path, Options{Key: testKey, ReadOnly: true})
			all, err := s.Load()
			if err != nil || len(all) < 49 { // the older copy may lack the last commit
				t.Fatalf("%d records, %v", len(all), err)
			}
			closeT(t, s)
			if err := Check(path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("meta page %d", p)) {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

// Zero each page in turn: nothing panics, damage is ErrCorrupt, and a damaged file
// is never written to.
func TestOpen_EachPageZeroed(t *testing.T) {
	_, valid := validFile(t, t.TempDir(), 400)
	pages := len(valid) / 4096
	found := 0
	for p := range pages {
		t.Run(fmt.Sprintf("page %d", p), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			b := bytes.Clone(valid)
			clear(b[p*4096 : (p+1)*4096])
			os.WriteFile(path, b, 0o600)
			if tryEverything(t, path) {
				found++
			}
		})
	}
	t.Logf("%d pages, damage found for %d", pages, found)
}

// Random damage: flipped bytes and bogus page numbers must never crash the process.
func TestOpen_RandomDamageNeverCrashes(t *testing.T) {
	_, valid := validFile(t, t.TempDir(), 400)
	// A few seeds of each kind of damage in the unit run; FuzzOpen_RandomDamage
	// runs the campaign (make fuzz).
	for seed := range uint64(21) {
		path := filepath.Join(t.TempDir(), "s.db")
		os.WriteFile(path, damage(valid, seed), 0o600)
		t.Run(fmt.Sprintf("damage %d", seed), func(t *testing.T) { checkDamaged(t, path) })
	}
}

// FuzzOpen_RandomDamage damages a valid state file in one of three ways chosen by the
// seed and requires every operation to fail cleanly (ErrCorrupt or a plain error),
// never to crash, and never to modify the file.
func FuzzOpen_RandomDamage(f *testing.F) {
	for seed := range uint64(6) {
		f.Add(seed)
	}
	_, valid := validFile(f, f.TempDir(), 400)
	f.Fuzz(func(t *testing.T, seed uint64) {
		path := filepath.Join(t.TempDir(), "s.db")
		os.WriteFile(path, damage(valid, seed), 0o600)
		checkDamaged(t, path)
	})
}

// damage returns a copy of a valid file damaged in the way seed chooses: random
// bytes past the meta pages, page headers (ids, flags, counts, overflow), or large
// page numbers in branch and bucket elements.
func damage(valid []byte, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 11))
	b := bytes.Clone(valid)
	switch seed % 3 {
	case 0:
		for range 1 + r.IntN(20) {
			b[2*4096+r.IntN(len(b)-2*4096)] = byte(r.Uint32())
		}
	case 1:
		p := 2 + r.IntN(len(b)/4096-2)
		for range 1 + r.IntN(4) {
			b[p*4096+r.IntN(16)] = byte(r.Uint32())
		}
	case 2:
		p := 2 + r.IntN(len(b)/4096-2)
		off := p*4096 + 16 + r.IntN(4096-24)
		binary.LittleEndian.PutUint64(b[off:], r.Uint64N(1<<40))
	}
	return b
}

func checkDamaged(t *testing.T, path string) {
	t.Helper()
	tryEverything(t, path)
	before := fileSum(t, path)
	if err := Check(path); err != nil && !errors.Is(err, ErrCorrupt) {
		t.Errorf("Check: %v", err)
	}
	if fileSum(t, path) != before {
		t.Fatal("Check modified the file")
	}
}

func TestStore_DamagedRecordIsReportedByName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{})
	if err := s.Put(&Record{ID: "a-good"}, &Record{ID: "c-good"}); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).Put([]byte("b-bad"), []byte{2, 9, 9, 9, 9, 9, 9, 9, 9})
	})
	db.Close()

	if err := Check(path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `state record "b-bad"`) {
		t.Errorf("Check: %v", err)
	}
	s = openT(t, path, Options{})
	if _, _, err := s.Get("a-good"); err != nil {
		t.Fatalf("a good record: %v", err)
	}
	for name, call := range map[string]func() error{
		"Get":    func() error { _, _, err := s.Get("b-bad"); return err },
		"Load":   func() error { _, err := s.Load(); return err },
		"Counts": func() error { _, err := s.Counts(); return err },
	} {
		if err := call(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `state record "b-bad"`) {
			t.Errorf("%s: %v, want ErrCorrupt naming the record", name, err)
		}
	}
	// A damaged value is not damage to the file: the record can be written again.
	if err := s.Put(&Record{ID: "b-bad", Status: Done}); err != nil {
		t.Fatal(err)
	}
	if r, _, err := s.Get("b-bad"); err != nil || r.Status != Done {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	path, _ := validFile(t, dir, 500)
	if err := Check(path); err != nil {
		t.Fatalf("valid file: %v", err)
	}
	if err := Check(filepath.Join(dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	s := openT(t, path, Options{})
	if err := Check(path); !errors.Is(err, ErrLocked) {
		t.Errorf("during a run: %v, want ErrLocked", err)
	}
	closeT(t, s)
}

// A file of the first release: JSON records, the freelist not stored.
func TestOpen_FormatVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	sl, _ := newSealer(must(hexKey(testKey)))
	check, _ := sl.seal([]byte(keyCheckText), keyCheckAD)
	sealed, _ := sl.seal([]byte("v1-secret"), []byte("a\x00k"))
	rawBolt(t, path, true, func(tx *bolt.Tx) error {
		mb, tb, err := provisionMeta(tx, "1")
		if err != nil {
			return err
		}
		if err := mb.Put(metaKeyCheck, check); err != nil {
			return err
		}
		a, _ := json.Marshal(recordV1{V: 1, Status: Done, Attempts: 2, Started: 1_700_000_000_000_000_001, Err: "x",
			Outputs: map[string]outputV1{"id": {V: "sys-1"}, "k": {Sealed: sealed}}})
		if err := tb.Put([]byte("a"), a); err != nil {
			return err
		}
		return tb.Put([]byte("b"), []byte(`{"v":1,"s":1}`))
	})
	if h, _ := checkHeader(path); h.freelist != noFreelist {
		t.Fatal("test file should not store its freelist")
	}
	if err := Check(path); err != nil {
		t.Fatalf("Check: %v", err)
	}
	s := openT(t, path, Options{Key: testKey, ReadOnly: true})
	if s.Meta().FormatVersion != 1 {
		t.Errorf("read-only open changed the format: %+v", s.Meta())
	}
	closeT(t, s)

	s = openT(t, path, Options{Key: testKey})
	if s.Meta().FormatVersion != FormatVersion {
		t.Errorf("not upgraded: %+v", s.Meta())
	}
	if err := s.Put(&Record{ID: "c", Status: Done}); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	if h, _ := checkHeader(path); h.freelist == noFreelist {
		t.Error("the freelist is still not stored")
	}
	s = openT(t, path, Options{Key: testKey, ReadOnly: true})
	all, err := s.Load()
	if err != nil || len(all) != 3 {
		t.Fatalf("%v %v", all, err)
	}
	a := all["a"]
	if a.Status != Done || a.Attempts != 2 || a.LastError != "x" || a.StartedAt.UnixNano() != 1_700_000_000_000_000_001 ||
		a.Outputs["id"] != Plain("sys-1") || a.Outputs["k"] != SecretOutput("v1-secret") {
		t.Errorf("v1 record: %+v", a)
	}
	if all["b"].Status != Started || all["c"].Status != Done {
		t.Errorf("%+v %+v", all["b"], all["c"])
	}
	if err := Check(path); err != nil {
		t.Fatalf("Check after upgrade: %v", err)
	}
}

// A version-1 file with damage is checked before bbolt walks it for its freelist.
func TestOpen_FormatVersion1Damaged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	rawBolt(t, path, true, func(tx *bolt.Tx) error {
		_, tb, err := provisionMeta(tx, "1")
		if err != nil {
			return err
		}
		for i := range 500 {
			if err := tb.Put([]byte(fmt.Sprintf("task-%04d", i)), []byte(`{"v":1,"s":2,"e":"`+strings.Repeat("x", 100)+`"}`)); err != nil {
				return err
			}
		}
		return nil
	})
	valid := must(os.ReadFile(path))
	pages := len(valid) / 4096
	for p := 2; p < pages; p++ {
		b := bytes.Clone(valid)
		clear(b[p*4096 : (p+1)*4096])
		os.WriteFile(path, b, 0o600)
		t.Run(fmt.Sprintf("page %d zeroed", p), func(t *testing.T) { tryEverything(t, path) })
	}
}

func hexKey(s string) ([]byte, error) {
	if k := rawKey(s); k != nil {
		return k, nil
	}
	return nil, errors.New("not a key")
}

// The freelist is stored: opening a large file does not walk it.
// BenchmarkOpen_100kRecords: opening (and checking) a state file of 100,000 records.
func BenchmarkOpen_100kRecords(b *testing.B) {
	path := filepath.Join(b.TempDir(), "s.db")
	s, err := Open(path, Options{PlanName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]*Record, 0, 5000)
	for i := range 100_000 {
		batch = append(batch, &Record{ID: "task-" + strconv.Itoa(i), Status: Done, Hash: [32]byte{1}})
		if len(batch) == cap(batch) {
			if err := s.Put(batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := Open(path, Options{PlanName: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
