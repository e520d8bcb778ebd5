package state

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket and meta key names, created once at open.
var (
	bucketMeta  = []byte("meta")
	bucketTasks = []byte("tasks")
	// bucketInfo holds a TaskInfo per task ID (JSON), beside its record.
	bucketInfo = []byte("info")

	metaPlan     = []byte("plan")
	metaFormat   = []byte("format")
	metaCreated  = []byte("created")
	metaSalt     = []byte("salt")
	metaKDFIter  = []byte("kdf_iter")
	metaKeyCheck = []byte("keycheck")
	metaTarget   = []byte("target")
)

// FormatVersion is the layout version written to new files. Version 1 files (JSON
// records) and version 2 files (binary records whose checksum does not cover the
// task id) are read, and marked version 3 when opened for writing: their records
// keep their format until they are written again.
const FormatVersion = 3

const (
	// DefaultLockTimeout is how long Open waits for another process's lock.
	DefaultLockTimeout = 200 * time.Millisecond
	// maxBatch caps the records committed in one transaction.
	maxBatch = 10_000
)

// ErrReadOnly: Put on a store opened with Options.ReadOnly.
var ErrReadOnly = errors.New("state store is open read-only")

// Options tune Open.
type Options struct {
	// PlanName is stored on creation; opening a file of another plan is ErrOtherPlan.
	// Empty accepts any plan (status of a given file).
	PlanName string
	// Key is the state key text (KeyEnv); "" means secret outputs are not stored,
	// and read back as absent with Record.SecretsDropped set.
	Key string
	// ReadOnly opens for reading, for status and dry runs: it never creates nor
	// writes the file, and a missing file is an error wrapping fs.ErrNotExist ("no
	// state yet"). It takes bbolt's shared lock, which conflicts with a writer's:
	// while a run holds the file, a read-only open fails with ErrLocked too.
	ReadOnly bool
	// LockTimeout bounds the wait for another process's lock (DefaultLockTimeout
	// when zero): a second run fails fast with ErrLocked instead of hanging.
	LockTimeout time.Duration
	// NoSync skips fsync: writes are then not durable. Benchmarks only.
	NoSync bool
	// KDFIterations is the PBKDF2-SHA256 count used when a passphrase is first used
	// with a file (the file records it; later opens use the recorded count). Zero
	// means DefaultKDFIterations; at least MinKDFIterations. Tests use a low count.
	KDFIterations int
	// Target is the identity of the endpoints the run talks to: endpoint name ->
	// a description of what it reaches (kind, URL, account; never a secret). It is
	// stored on creation; opening a file whose recorded identity of an endpoint
	// differs is ErrOtherTarget, unless Retarget is set. Endpoints new to the file
	// are added to it (when not read-only). Nil skips the check (status of a file).
	Target map[string]string
	// Retarget records Target over a differing identity instead of refusing: the
	// same remote system reached under a new address.
	Retarget bool
}

// Meta describes a state file.
type Meta struct {
	PlanName      string
	Created       time.Time
	FormatVersion int
	HasKeyCheck   bool // a key has been used with this file
	// Target is the recorded identity of the endpoints the file's tasks were
	// applied against (see Options.Target); empty for files written before it was
	// recorded.
	Target map[string]string
}

// Store is an open state file. All methods are safe for concurrent use. Reads see
// committed data only.
type Store struct {
	path     string
	db       *bolt.DB
	meta     Meta
	sl       *sealer // nil without a key
	readOnly bool

	mu     sync.RWMutex // closed; held for reading by every operation in flight
	closed bool
	reqs   chan *writeReq
	done   chan struct{} // closed when the writer has stopped
	broken atomic.Pointer[error]

	commits atomic.Int64 // transactions committed by the writer (tests)

	warnings []string
}

type kv struct {
	k, v []byte
	info []byte // JSON TaskInfo to store beside the record; nil leaves it as it is
	del  bool   // delete the record and its info
}

type writeReq struct {
	recs []kv
	done chan error
	// by: the commit may wait until then for more records to share it (zero: none).
	by time.Time
}

// Open opens the state file at path, creating it (and its directory, 0700) unless
// read-only. Errors wrap ErrLocked, ErrCorrupt, ErrOtherPlan, ErrWrongKey or
// fs.ErrNotExist (read-only, no file) and name the path. Opening never modifies a
// file that fails any check.
func Open(path string, o Options) (*Store, error) {
	o, notes, err := vet(path, o)
	if err != nil {
		return nil, err
	}
	s, err := openDB(path, o)
	if err != nil {
		return nil, err
	}
	if err := s.init(o); err != nil {
		s.db.Close()
		return nil, err
	}
	s.warnings = append(append(notes, permissionWarnings(path)...), s.warnings...)
	if !o.ReadOnly {
		s.reqs = make(chan *writeReq, 1024)
		s.done = make(chan struct{})
		go s.writer()
	}
	return s, nil
}

// vet checks the options and the file before bbolt maps it (creating it unless
// read-only): its size and meta pages with ordinary reads, and, for a file without
// a stored freelist opened for writing, the whole file read-only. It returns the
// options with their defaults and notes on leftovers it removed.
func vet(path string, o Options) (Options, []string, error) {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.KDFIterations == 0 {
		o.KDFIterations = DefaultKDFIterations
	}
	if o.KDFIterations < MinKDFIterations || o.KDFIterations > maxKDFIterations {
		return o, nil, fmt.Errorf("open state %s: key derivation count %d out of range [%d, %d]", path, o.KDFIterations, MinKDFIterations, maxKDFIterations)
	}
	if err := checkKeyText(o.Key); err != nil {
		return o, nil, fmt.Errorf("open state %s: %w", path, err)
	}
	var notes []string
	if !o.ReadOnly {
		for _, name := range removeLeftovers(path, time.Now()) {
			notes = append(notes, fmt.Sprintf("removed %s, left in %s by a run killed while creating the state file", name, filepath.Dir(path)))
		}
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && o.ReadOnly:
		return o, nil, fmt.Errorf("open state %s: no state file yet: %w", path, fs.ErrNotExist)
	case errors.Is(err, fs.ErrNotExist):
		if err := create(path, o.PlanName, o.Target); err != nil {
			return o, nil, err
		}
	case err != nil:
		return o, nil, fmt.Errorf("open state %s: %w", path, err)
	case fi.IsDir():
		return o, nil, fmt.Errorf("open state %s: is a directory", path)
	case fi.Size() == 0:
		// A file bbolt never initialised; provision creates state files atomically,
		// so this was not written by it.
		return o, nil, fmt.Errorf("open state %s: empty file (0 bytes): %w", path, ErrCorrupt)
	}
	h, err := checkHeader(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return o, nil, fmt.Errorf("open state %s: %w", path, err)
		}
		return o, nil, fmt.Errorf("open state %s: %v: %w", path, err, ErrCorrupt)
	}
	if !o.ReadOnly && h.freelist == noFreelist {
		// bbolt rebuilds a freelist that was not stored by walking every page, in a
		// goroutine where a panic on a damaged page cannot be recovered, and then
		// stores it (a write). Check the file first, read-only and from the outside.
		if err := prevalidate(path, o); err != nil {
			return o, nil, err
		}
	}
	return o, notes, nil
}

// Warnings returns what Open found questionable but not fatal: a state directory or
// file that others may write to, or a file written with a key opened without one.
// They name the file and never hold a secret.
func (s *Store) Warnings() []string { return slices.Clone(s.warnings) }

// create makes a new state file atomically: it is initialised under a temporary
// name and linked into place, so a state file never exists half-made (a run killed
// while creating leaves no file, not an empty one). When another process created
// the file meanwhile, theirs is kept.
func create(path, plan string, target map[string]string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory for %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".creating-*") // mode 0600
	if err != nil {
		return fmt.Errorf("create state %s: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("create state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		mb, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketTasks); err != nil {
			return err
		}
		tj, err := json.Marshal(target)
		if err != nil {
			return err
		}
		for k, v := range map[string]string{
			string(metaPlan):    plan,
			string(metaFormat):  strconv.Itoa(FormatVersion),
			string(metaCreated): strconv.FormatInt(time.Now().UnixNano(), 10),
			string(metaTarget):  string(tj),
		} {
			if err := mb.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create state %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		// No hard links on this file system: rename, unless the file appeared.
		if _, serr := os.Lstat(path); serr == nil {
			return nil
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("create state %s: %w", path, err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// prevalidate checks an existing file read-only: the provision meta data and the
// whole page tree.
func prevalidate(path string, o Options) error {
	ro := o
	ro.ReadOnly, ro.Key = true, ""
	s, err := openDB(path, ro)
	if err != nil {
		return err
	}
	defer s.db.Close()
	if err := s.init(ro); err != nil {
		return err
	}
	h, err := checkHeader(path) // again, under the lock
	if err == nil {
		err = walkFile(path, h)
	}
	if err != nil {
		return fmt.Errorf("open state %s: %v: %w", path, err, ErrCorrupt)
	}
	return nil
}

// openDB opens the bbolt file, mapping lock timeouts to ErrLocked and damage
// (including panics and faults inside bbolt) to ErrCorrupt.
func openDB(path string, o Options) (*Store, error) {
	var file *os.File
	bo := &bolt.Options{
		Timeout:  o.LockTimeout,
		ReadOnly: o.ReadOnly,
		// The freelist is stored with each commit (one page): opening then never
		// walks the file, and a damaged page is met only in guarded calls.
		NoFreelistSync: false,
		FreelistType:   bolt.FreelistMapType,
		NoSync:         o.NoSync,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag&^os.O_CREATE, mode) // never create here
			file = f
			return f, err
		},
	}
	var db *bolt.DB
	err := guard("open state", path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, bo)
		return err
	})
	if err != nil {
		if db == nil && file != nil && errors.Is(err, ErrCorrupt) {
			// bbolt panicked half-way. checkHeader vets what bbolt reads while
			// opening, so this should not happen; if it does, the mapping bbolt
			// made keeps the file (and its lock) open until the process exits.
			file.Close()
		}
		switch {
		case errors.Is(err, ErrCorrupt):
			return nil, err
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("open state %s: %w: another provision run is using this file; wait for it to finish, or look for a stuck provision process holding it", path, ErrLocked)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
			return nil, fmt.Errorf("open state %s: %v: %w", path, err, ErrCorrupt)
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("open state %s: %w", path, err)
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return &Store{path: path, db: db, readOnly: o.ReadOnly}, nil
}

// init checks the provision meta data (the quick check done on every open: meta and
// tasks buckets, format version, plan, the first and last record), upgrades a
// version-1 file opened for writing, and sets up the key.
func (s *Store) init(o Options) error {
	var salt, check []byte
	iter := DefaultKDFIterations
	err := s.view(func(tx *bolt.Tx) error {
		mb, tb := tx.Bucket(bucketMeta), tx.Bucket(bucketTasks)
		if mb == nil || tb == nil {
			return fmt.Errorf("open state %s: no provision meta or tasks bucket (not a provision state file): %w", s.path, ErrCorrupt)
		}
		fv, err := strconv.Atoi(string(mb.Get(metaFormat)))
		if err != nil || fv < 1 || fv > FormatVersion {
			return fmt.Errorf("open state %s: unknown format version %q (written by a newer provision?): %w", s.path, mb.Get(metaFormat), ErrCorrupt)
		}
		s.meta.FormatVersion = fv
		s.meta.PlanName = string(mb.Get(metaPlan))
		if v := mb.Get(metaCreated); v != nil {
			ns, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("open state %s: bad creation time %q: %w", s.path, v, ErrCorrupt)
			}
			s.meta.Created = time.Unix(0, ns)
		}
		salt = bytes.Clone(mb.Get(metaSalt))
		check = bytes.Clone(mb.Get(metaKeyCheck))
		if v := mb.Get(metaKDFIter); v != nil {
			iter, err = strconv.Atoi(string(v))
			if err != nil || iter < MinKDFIterations || iter > maxKDFIterations {
				return fmt.Errorf("open state %s: bad key derivation count %q: %w", s.path, v, ErrCorrupt)
			}
		}
		if salt != nil && len(salt) != saltSize {
			return fmt.Errorf("open state %s: key salt of %d bytes: %w", s.path, len(salt), ErrCorrupt)
		}
		s.meta.HasKeyCheck = check != nil
		if o.PlanName != "" && s.meta.PlanName != o.PlanName {
			return fmt.Errorf("open state %s: the file belongs to plan %q, not %q: %w", s.path, s.meta.PlanName, o.PlanName, ErrOtherPlan)
		}
		if v := mb.Get(metaTarget); v != nil && string(v) != "null" {
			if err := json.Unmarshal(v, &s.meta.Target); err != nil {
				return fmt.Errorf("open state %s: bad target record: %v: %w", s.path, err, ErrCorrupt)
			}
		}
		// Touch both ends of the tasks tree: damage near its root shows up now rather
		// than in the middle of a run. (A damaged record is reported by the reads
		// that meet it, naming the task.)
		c := tb.Cursor()
		for _, kv := range [][2][]byte{pair(c.First()), pair(c.Last())} {
			if kv[0] != nil && kv[1] == nil {
				return fmt.Errorf("open state %s: unexpected bucket %q in tasks: %w", s.path, kv[0], ErrCorrupt)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.checkTarget(o); err != nil {
		return err
	}
	if !o.ReadOnly && s.meta.FormatVersion < FormatVersion {
		err := s.update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(metaFormat, []byte(strconv.Itoa(FormatVersion)))
		})
		if err != nil {
			return fmt.Errorf("open state %s: upgrade format: %w", s.path, err)
		}
		s.meta.FormatVersion = FormatVersion
	}
	if o.Key == "" {
		if s.meta.HasKeyCheck {
			s.warnings = append(s.warnings, fmt.Sprintf("state %s was written with %s set and may hold sealed secret outputs (auth keys); without the key they cannot be read, and tasks that need them must recover them (set %s to the key used before)", s.path, KeyEnv, KeyEnv))
		}
		return nil
	}
	return s.setKey(o.Key, salt, iter, o.KDFIterations, check, o.ReadOnly)
}

// checkTarget compares the recorded endpoint identities with o.Target: a differing
// one is ErrOtherTarget (naming both), unless o.Retarget. New or retargeted
// endpoints are recorded when the store is writable.
func (s *Store) checkTarget(o Options) error {
	if o.Target == nil {
		return nil
	}
	differ := TargetDiff(s.meta.Target, o.Target)
	add := false
	for name := range o.Target {
		if _, ok := s.meta.Target[name]; !ok {
			add = true
		}
	}
	if len(differ) > 0 && !o.Retarget {
		return fmt.Errorf("open state %s: %w:\n  %s", s.path, ErrOtherTarget, strings.Join(differ, "\n  "))
	}
	if o.ReadOnly || (!add && len(differ) == 0) {
		return nil
	}
	merged := maps.Clone(s.meta.Target)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, o.Target)
	tj, err := json.Marshal(merged)
	if err != nil {
		return err
	}
	if err := s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaTarget, tj) }); err != nil {
		return fmt.Errorf("open state %s: record target: %w", s.path, err)
	}
	s.meta.Target = merged
	return nil
}

// TargetDiff describes, one line per endpoint in sorted order, where the identities
// now differ from those recorded (endpoints missing from either side are not
// differences).
func TargetDiff(recorded, now map[string]string) []string {
	var differ []string
	for _, name := range slices.Sorted(maps.Keys(now)) {
		if old, ok := recorded[name]; ok && old != now[name] {
			differ = append(differ, fmt.Sprintf("endpoint %s: state written against %s; the plan now reaches %s", name, old, now[name]))
		}
	}
	return differ
}

// setKey derives the key, checks it against the file's key check, and records the
// check (and a passphrase's salt) the first time a key is used.
func (s *Store) setKey(text string, salt []byte, iter, newIter int, check []byte, readOnly bool) error {
	key := rawKey(text)
	newSalt := false
	if key == nil {
		if salt == nil {
			if check != nil || readOnly {
				// A raw key was used with this file (no salt); or, read-only, nothing
				// was ever sealed with a passphrase.
				if check != nil {
					return fmt.Errorf("open state %s: %w (the file was written with a 32-byte key, %s holds a passphrase)", s.path, ErrWrongKey, KeyEnv)
				}
				return nil
			}
			salt = make([]byte, saltSize)
			if _, err := rand.Read(salt); err != nil {
				return fmt.Errorf("open state %s: %w", s.path, err)
			}
			iter, newSalt = newIter, true
		}
		k, err := passphraseKey(text, salt, iter)
		if err != nil {
			return err
		}
		key = k
	}
	sl, err := newSealer(key)
	if err != nil {
		return err
	}
	if check != nil {
		if plain, err := sl.open(check, keyCheckAD); err != nil || string(plain) != keyCheckText {
			return fmt.Errorf("open state %s: %w (secret outputs in it cannot be read with the %s given)", s.path, ErrWrongKey, KeyEnv)
		}
		s.sl = sl
		return nil
	}
	s.sl = sl
	if readOnly {
		return nil
	}
	sealed, err := sl.seal([]byte(keyCheckText), keyCheckAD)
	if err != nil {
		return err
	}
	err = s.update(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bucketMeta)
		if newSalt {
			if err := mb.Put(metaSalt, salt); err != nil {
				return err
			}
			if err := mb.Put(metaKDFIter, []byte(strconv.Itoa(iter))); err != nil {
				return err
			}
		}
		return mb.Put(metaKeyCheck, sealed)
	})
	if err != nil {
		return fmt.Errorf("open state %s: store key check: %w", s.path, err)
	}
	s.meta.HasKeyCheck = true
	return nil
}

func pair(k, v []byte) [2][]byte { return [2][]byte{k, v} }

// view runs a guarded read transaction. Damage to the file's structure found while
// reading stops all later writes, so a damaged file is not written to.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	err := guard("read state", s.path, func() error { return s.db.View(fn) })
	var d *damageError
	if errors.As(err, &d) {
		s.broken.CompareAndSwap(nil, &err)
	}
	return err
}

// update runs a guarded write transaction. After any failure (damage, or an I/O
// error such as a failed fsync, after which the file's contents are uncertain) the
// store refuses later writes.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	err := guard("write state", s.path, func() error { return s.db.Update(fn) })
	if err != nil {
		s.broken.CompareAndSwap(nil, &err)
	}
	return err
}

// Path returns the file path.
func (s *Store) Path() string { return s.path }

// Meta returns the file's metadata.
func (s *Store) Meta() Meta { return s.meta }

// read runs fn in a read transaction unless the store is closed.
func (s *Store) read(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("read state %s: %w", s.path, ErrClosed)
	}
	return s.view(fn)
}

// decode decodes the record stored under k into dst; an error names the file and
// the task.
func (s *Store) decode(dst *Record, k, v []byte) error {
	if err := decodeKV(dst, k, v, s.sl); err != nil {
		return fmt.Errorf("read state %s: %w", s.path, err)
	}
	return nil
}

// Get returns the record of one task; ok is false when there is none.
func (s *Store) Get(id string) (rec *Record, ok bool, err error) {
	err = s.read(func(tx *bolt.Tx) error {
		k := []byte(id)
		v := tx.Bucket(bucketTasks).Get(k)
		if v == nil {
			return nil
		}
		rec = new(Record)
		return s.decode(rec, k, v) // copies everything out of the transaction
	})
	if err != nil {
		return nil, false, err
	}
	return rec, rec != nil, nil
}

// Load returns every record by task ID, read in one transaction.
func (s *Store) Load() (map[string]*Record, error) {
	var out map[string]*Record
	err := s.read(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTasks)
		n := b.Stats().KeyN
		out = make(map[string]*Record, n)
		var slab []Record // records allocated together: they live together
		return b.ForEach(func(k, v []byte) error {
			if len(slab) == 0 {
				slab = make([]Record, max(1, min(1024, n-len(out))))
			}
			r := &slab[0]
			slab = slab[1:]
			if err := s.decode(r, k, v); err != nil {
				return err
			}
			out[r.ID] = r
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ForEach calls fn for every record in ID order, in one read transaction, and stops
// at fn's first error, which it returns. fn must not call other methods of s: a Put
// could wait on this transaction, which waits on fn.
func (s *Store) ForEach(fn func(*Record) error) error {
	return s.read(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
			r := new(Record)
			if err := s.decode(r, k, v); err != nil {
				return err
			}
			return fn(r)
		})
	})
}

// Infos returns the task infos by task ID (tasks done since infos were recorded).
func (s *Store) Infos() (map[string]*TaskInfo, error) {
	out := map[string]*TaskInfo{}
	err := s.read(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInfo)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			ti := new(TaskInfo)
			if err := json.Unmarshal(v, ti); err != nil {
				return fmt.Errorf("read state %s: task %q: damaged task info: %v: %w", s.path, k, err, ErrCorrupt)
			}
			out[string(k)] = ti
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// stickyAdoption returns the info to store: once a task adopted its object (found
// it existing rather than created it), later writes (updates) keep saying so.
func stickyAdoption(old, info []byte) []byte {
	if old == nil {
		return info
	}
	var o, n TaskInfo
	if json.Unmarshal(old, &o) != nil || !o.Adopted || json.Unmarshal(info, &n) != nil || n.Adopted {
		return info
	}
	n.Adopted = true
	b, err := json.Marshal(&n)
	if err != nil {
		return info
	}
	return b
}

// Counts returns the number of records per status.
func (s *Store) Counts() (map[Status]int, error) {
	out := map[Status]int{}
	err := s.ForEach(func(r *Record) error {
		out[r.Status]++
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Put stores records; they are durable (fsynced) when it returns nil. Concurrent
// Puts are committed together in one transaction (group commit). Within one commit
// the last record for an ID wins. Secret outputs are sealed with the key, or
// dropped with SecretsDropped set when there is none. The records are encoded before
// Put returns: the caller may change them afterwards. After a failed commit the
// store refuses further writes (the file may be damaged, or the disk full).
func (s *Store) Put(recs ...*Record) error { return s.PutWithin(0, recs...) }

// PutWithin is Put for a caller that can wait up to linger for its records to be
// durable: their commit may wait that long for other records to share it, so that
// many writers that are in no hurry make fewer, larger commits (each one costs two
// fsyncs). A commit waits no longer than its most hurried record allows, and a Put
// (linger 0) commits at once with everything queued.
func (s *Store) PutWithin(linger time.Duration, recs ...*Record) error {
	if s.readOnly {
		return fmt.Errorf("write state %s: %w", s.path, ErrReadOnly)
	}
	if len(recs) == 0 {
		return nil
	}
	req := &writeReq{recs: make([]kv, len(recs)), done: make(chan error, 1)}
	if linger > 0 {
		req.by = time.Now().Add(linger)
	}
	for i, r := range recs {
		switch {
		case r.ID == "":
			return fmt.Errorf("write state %s: record with an empty task id", s.path)
		case len(r.ID) > bolt.MaxKeySize:
			return fmt.Errorf("write state %s: task id of %d bytes (at most %d)", s.path, len(r.ID), bolt.MaxKeySize)
		}
		v, err := encodeRecord(r, s.sl)
		if err != nil {
			return fmt.Errorf("write state %s: %w", s.path, err)
		}
		req.recs[i] = kv{k: []byte(r.ID), v: v}
		if r.Info != nil {
			if req.recs[i].info, err = json.Marshal(r.Info); err != nil {
				return fmt.Errorf("write state %s: task %s: %w", s.path, r.ID, err)
			}
		}
	}
	return s.send(req)
}

// Delete removes the records (and task infos) of the given tasks, durably; missing
// ones are ignored.
func (s *Store) Delete(ids ...string) error {
	if s.readOnly {
		return fmt.Errorf("write state %s: %w", s.path, ErrReadOnly)
	}
	if len(ids) == 0 {
		return nil
	}
	req := &writeReq{recs: make([]kv, len(ids)), done: make(chan error, 1)}
	for i, id := range ids {
		req.recs[i] = kv{k: []byte(id), del: true}
	}
	return s.send(req)
}

// send queues a write for the writer and waits for its commit.
func (s *Store) send(req *writeReq) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("write state %s: %w", s.path, ErrClosed)
	}
	if p := s.broken.Load(); p != nil {
		s.mu.RUnlock()
		return fmt.Errorf("write state %s: an earlier write failed: %w", s.path, *p)
	}
	s.reqs <- req
	s.mu.RUnlock()
	return <-req.done
}

// writer is the single goroutine that commits Puts: it takes everything queued (up
// to maxBatch records), commits it in one transaction, wakes the callers with the
// result, and starts over at once.
func (s *Store) writer() {
	defer close(s.done)
	debug.SetPanicOnFault(true) // this goroutine only; guard recovers
	var batch []*writeReq
	var recs []kv
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	var by time.Time // the commit waits no longer (zero: it does not wait)
	take := func(r *writeReq) {
		batch, recs = append(batch, r), append(recs, r.recs...)
		if r.by.Before(by) {
			by = r.by // a zero by (a Put) is before every other
		}
	}
	for req := range s.reqs {
		batch, recs, by = batch[:0], recs[:0], req.by
		take(req)
	drain:
		for len(recs) < maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				take(r)
				continue
			default:
			}
			// Nothing more queued: commit, unless every record queued can wait
			// and there is time left to gather more.
			d := time.Until(by)
			if by.IsZero() || d <= 0 {
				break drain
			}
			linger.Reset(d)
			select {
			case r, ok := <-s.reqs:
				linger.Stop()
				if !ok {
					break drain
				}
				take(r)
			case <-linger.C:
				break drain
			}
		}
		err := s.commit(recs)
		for _, r := range batch {
			r.done <- err
		}
		clear(batch)
		clear(recs)
		// A yield, not a delay (it returns at once when nothing else is runnable):
		// the callers just woken can queue their next Put and join the next commit
		// instead of the one after (in benchmarks ~40 instead of ~32 records per
		// commit with 64 callers, ~25% more records/s).
		runtime.Gosched()
	}
}

func (s *Store) commit(recs []kv) error {
	if p := s.broken.Load(); p != nil {
		return fmt.Errorf("write state %s: an earlier write failed: %w", s.path, *p)
	}
	// Sorted keys make the B-tree inserts sequential; stable, so the last record for
	// an ID is written last and wins.
	slices.SortStableFunc(recs, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTasks)
		var ib *bolt.Bucket // created on first use (files from before it existed)
		for _, r := range recs {
			if r.del {
				if err := b.Delete(r.k); err != nil {
					return err
				}
				if ib := tx.Bucket(bucketInfo); ib != nil {
					if err := ib.Delete(r.k); err != nil {
						return err
					}
				}
				continue
			}
			if err := b.Put(r.k, r.v); err != nil {
				return err
			}
			if r.info == nil {
				continue
			}
			if ib == nil {
				var err error
				if ib, err = tx.CreateBucketIfNotExists(bucketInfo); err != nil {
					return err
				}
			}
			if err := ib.Put(r.k, stickyAdoption(ib.Get(r.k), r.info)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		return fmt.Errorf("write state %s: %w", s.path, err)
	}
	s.commits.Add(1)
	return nil
}

// Close commits the Puts already queued, then closes the file. It is idempotent.
// Calls after Close return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.reqs != nil {
		close(s.reqs)
	}
	s.mu.Unlock()
	if s.done != nil {
		<-s.done
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state %s: %w", s.path, err)
	}
	return nil
}
