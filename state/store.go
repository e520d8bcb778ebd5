package state

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket and meta key names, created once at open.
var (
	bucketMeta  = []byte("meta")
	bucketTasks = []byte("tasks")

	metaPlan     = []byte("plan")
	metaFormat   = []byte("format")
	metaCreated  = []byte("created")
	metaSalt     = []byte("salt")
	metaKeyCheck = []byte("keycheck")
)

// FormatVersion is the layout version written to new files.
const FormatVersion = 1

const (
	kdfIterations = 210_000
	keyCheckText  = "provision state key check"
	maxBatch      = 10_000
)

// Options tune Open.
type Options struct {
	// PlanName is stored on creation; opening a file of another plan is ErrOtherPlan.
	// Empty (read-only use by `status --state`) accepts any plan.
	PlanName string
	// Key is the state key text; "" means secret outputs are not stored.
	Key string
	// ReadOnly opens for reading; a missing file is an fs.ErrNotExist error.
	ReadOnly bool
	// LockTimeout bounds the wait for the file lock (default 200ms).
	LockTimeout time.Duration
	// NoSync skips fsync (benchmarks of the non-durable path only).
	NoSync bool
}

// Meta describes a state file.
type Meta struct {
	PlanName      string
	Created       time.Time
	FormatVersion int
	HasKeyCheck   bool
}

// Store is an open state file.
type Store struct {
	path string
	db   *bolt.DB
	meta Meta
	aead cipher.AEAD // nil without a key

	mu     sync.RWMutex
	closed bool
	reqs   chan writeReq
	wg     sync.WaitGroup
}

type writeReq struct {
	recs []*Record
	done chan error
}

// Open opens (or, unless read-only, creates) the state file at path.
func Open(path string, o Options) (s *Store, err error) {
	if o.LockTimeout <= 0 {
		o.LockTimeout = 200 * time.Millisecond
	}
	fi, statErr := os.Stat(path)
	switch {
	case statErr == nil && fi.IsDir():
		return nil, fmt.Errorf("open state %s: is a directory", path)
	case statErr == nil && fi.Size() == 0:
		return nil, fmt.Errorf("open state %s: empty file: %w", path, ErrCorrupt)
	case statErr == nil:
		if err := checkHeader(path); err != nil {
			return nil, fmt.Errorf("open state %s: %v: %w", path, err, ErrCorrupt)
		}
	case errors.Is(statErr, fs.ErrNotExist):
		if o.ReadOnly {
			return nil, fmt.Errorf("open state %s: %w", path, fs.ErrNotExist)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create state directory for %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("open state %s: %w", path, statErr)
	}
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("open state %s: %v: %w", path, p, ErrCorrupt)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        o.LockTimeout,
		ReadOnly:       o.ReadOnly,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("open state %s: %w", path, ErrLocked)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
			return nil, fmt.Errorf("open state %s: %v: %w", path, err, ErrCorrupt)
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	db.NoSync = o.NoSync
	s = &Store{path: path, db: db}
	if err := s.init(o, statErr == nil); err != nil {
		db.Close()
		return nil, err
	}
	if !o.ReadOnly {
		s.reqs = make(chan writeReq, 1024)
		s.wg.Add(1)
		go s.writer()
	}
	return s, nil
}

// checkHeader validates the file against its bbolt meta pages before bbolt maps it:
// bbolt trusts the meta page and a file shorter than it claims crashes the process
// (SIGBUS) instead of returning an error, so truncation is caught here.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var first [4096]byte
	n, _ := io.ReadFull(f, first[:])
	if n < 80 {
		return errors.New("file too short for a state file")
	}
	best, reason := metaInfo{}, "not a bbolt database (bad magic number)"
	if m, why := parseMeta(first[:n]); why == "" {
		best = m
	} else {
		reason = why
	}
	// The second meta page sits one page further; try the page size the first meta
	// claims, else common sizes.
	for _, ps := range []uint32{best.pageSize, 4096, 8192, 16384, 65536} {
		if ps == 0 || int64(ps)+80 > fi.Size() {
			continue
		}
		buf := make([]byte, 80)
		if _, err := f.ReadAt(buf, int64(ps)); err != nil {
			continue
		}
		if m, why := parseMeta(buf); why == "" && m.pageSize == ps && m.txid > best.txid {
			best = m
			break
		}
	}
	if best.pageSize == 0 {
		return errors.New(reason)
	}
	if need := int64(best.pgid) * int64(best.pageSize); fi.Size() < need {
		return fmt.Errorf("truncated: %d bytes, the database says it holds %d", fi.Size(), need)
	}
	return nil
}

type metaInfo struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

// parseMeta reads a bbolt meta page (page header, then magic, version, page size,
// flags, root bucket, freelist, high-water page id, txid, checksum).
func parseMeta(b []byte) (metaInfo, string) {
	if len(b) < 80 {
		return metaInfo{}, "short meta page"
	}
	le := binary.LittleEndian
	if le.Uint32(b[16:20]) != 0xED0CDAED {
		return metaInfo{}, "not a bbolt database (bad magic number)"
	}
	if v := le.Uint32(b[20:24]); v != 2 {
		return metaInfo{}, fmt.Sprintf("unsupported bbolt version %d", v)
	}
	h := fnv.New64a()
	h.Write(b[16:72])
	if h.Sum64() != le.Uint64(b[72:80]) {
		return metaInfo{}, "meta page checksum mismatch"
	}
	m := metaInfo{pageSize: le.Uint32(b[24:28]), pgid: le.Uint64(b[56:64]), txid: le.Uint64(b[64:72])}
	if m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0 {
		return metaInfo{}, fmt.Sprintf("implausible page size %d", m.pageSize)
	}
	return m, ""
}

func (s *Store) init(o Options, existed bool) error {
	var created bool
	check := func(tx *bolt.Tx) error {
		mb := tx.Bucket(bucketMeta)
		if mb == nil || tx.Bucket(bucketTasks) == nil {
			return fmt.Errorf("open state %s: no provision meta or tasks bucket (not a provision state file): %w", s.path, ErrCorrupt)
		}
		fv, err := strconv.Atoi(string(mb.Get(metaFormat)))
		if err != nil || fv < 1 || fv > FormatVersion {
			return fmt.Errorf("open state %s: unknown format version %q: %w", s.path, mb.Get(metaFormat), ErrCorrupt)
		}
		s.meta.FormatVersion = fv
		s.meta.PlanName = string(mb.Get(metaPlan))
		if ns, err := strconv.ParseInt(string(mb.Get(metaCreated)), 10, 64); err == nil {
			s.meta.Created = time.Unix(0, ns)
		}
		s.meta.HasKeyCheck = mb.Get(metaKeyCheck) != nil
		if o.PlanName != "" && s.meta.PlanName != o.PlanName {
			return fmt.Errorf("open state %s: written for plan %q, not %q: %w", s.path, s.meta.PlanName, o.PlanName, ErrOtherPlan)
		}
		return nil
	}
	if existed {
		// A process killed between creating the file and creating its buckets leaves
		// a valid bbolt file holding nothing: finish creating it. A file holding any
		// bucket is never initialised over.
		empty := true
		if err := s.db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		}); err != nil {
			return fmt.Errorf("open state %s: %v: %w", s.path, err, ErrCorrupt)
		}
		if empty && o.ReadOnly {
			// Nothing was ever recorded: the same as no state file.
			return fmt.Errorf("open state %s: holds no records yet: %w", s.path, fs.ErrNotExist)
		}
		existed = !empty
	}
	if o.ReadOnly || existed {
		// Opening never writes to an existing file: a damaged one is reported, not
		// "repaired" by a meta-page write.
		if err := s.db.View(check); err != nil {
			return err
		}
	} else {
		err := s.db.Update(func(tx *bolt.Tx) error {
			if !existed {
				mb, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				if _, err := tx.CreateBucket(bucketTasks); err != nil {
					return err
				}
				created = true
				if err := mb.Put(metaPlan, []byte(o.PlanName)); err != nil {
					return err
				}
				if err := mb.Put(metaFormat, []byte(strconv.Itoa(FormatVersion))); err != nil {
					return err
				}
				if err := mb.Put(metaCreated, []byte(strconv.FormatInt(time.Now().UnixNano(), 10))); err != nil {
					return err
				}
			}
			return check(tx)
		})
		if err != nil {
			return err
		}
	}
	_ = created
	if o.Key == "" {
		return nil
	}
	return s.setKey(o.Key, o.ReadOnly)
}

// setKey derives the key, checks it against the file's key check, and records the
// check (and the passphrase salt) on first use.
func (s *Store) setKey(text string, readOnly bool) error {
	raw := rawKey(text)
	var salt []byte
	var check []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bucketMeta)
		salt = append([]byte(nil), mb.Get(metaSalt)...)
		check = append([]byte(nil), mb.Get(metaKeyCheck)...)
		return nil
	}); err != nil {
		return err
	}
	newSalt := false
	if raw == nil {
		if len(salt) == 0 {
			if readOnly {
				// Nothing was ever encrypted with a passphrase here.
				return nil
			}
			salt = make([]byte, 16)
			if _, err := rand.Read(salt); err != nil {
				return err
			}
			newSalt = true
		}
		k, err := pbkdf2.Key(sha256.New, text, salt, kdfIterations, 32)
		if err != nil {
			return fmt.Errorf("derive state key: %w", err)
		}
		raw = k
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return fmt.Errorf("state key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("state key: %w", err)
	}
	if len(check) > 0 {
		if _, err := open(aead, check, []byte("keycheck")); err != nil {
			return fmt.Errorf("open state %s: %w", s.path, ErrWrongKey)
		}
		s.aead = aead
		return nil
	}
	s.aead = aead
	if readOnly {
		return nil
	}
	sealed, err := seal(aead, []byte(keyCheckText), []byte("keycheck"))
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bucketMeta)
		if newSalt {
			if err := mb.Put(metaSalt, salt); err != nil {
				return err
			}
		}
		s.meta.HasKeyCheck = true
		return mb.Put(metaKeyCheck, sealed)
	})
}

// rawKey returns 32 key bytes when text is base64 or hex of exactly 32 bytes.
func rawKey(text string) []byte {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil && len(b) == 32 {
			return b
		}
	}
	if b, err := hex.DecodeString(text); err == nil && len(b) == 32 {
		return b
	}
	return nil
}

func seal(aead cipher.AEAD, plain, ad []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, ad), nil
}

func open(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed value too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
}

// Path returns the file path.
func (s *Store) Path() string { return s.path }

// Meta returns the file's metadata.
func (s *Store) Meta() Meta { return s.meta }

// Get returns one record.
func (s *Store) Get(id string) (*Record, bool, error) {
	var rec *Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTasks).Get([]byte(id))
		if v == nil {
			return nil
		}
		r, err := s.decode(id, v)
		rec = r
		return err
	})
	return rec, rec != nil, err
}

// Load returns every record, by task ID.
func (s *Store) Load() (map[string]*Record, error) {
	out := map[string]*Record{}
	err := s.ForEach(func(r *Record) error {
		out[r.ID] = r
		return nil
	})
	return out, err
}

// ForEach calls fn for every record, sorted by ID.
func (s *Store) ForEach(fn func(*Record) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
			r, err := s.decode(string(k), v)
			if err != nil {
				return err
			}
			return fn(r)
		})
	})
}

// Counts returns the number of records per status.
func (s *Store) Counts() (map[Status]int, error) {
	out := map[Status]int{}
	err := s.ForEach(func(r *Record) error {
		out[r.Status]++
		return nil
	})
	return out, err
}

// Put durably stores records. Concurrent calls are committed together.
func (s *Store) Put(recs ...*Record) error {
	if len(recs) == 0 {
		return nil
	}
	s.mu.RLock()
	if s.closed || s.reqs == nil {
		s.mu.RUnlock()
		if s.reqs == nil && !s.closed {
			return fmt.Errorf("state %s: opened read-only", s.path)
		}
		return ErrClosed
	}
	// Encode now (outside the writer) so the caller's records can change afterwards.
	req := writeReq{recs: make([]*Record, len(recs)), done: make(chan error, 1)}
	for i, r := range recs {
		c := *r
		c.Outputs = make(Outputs, len(r.Outputs))
		for k, v := range r.Outputs {
			c.Outputs[k] = v
		}
		req.recs[i] = &c
	}
	s.reqs <- req
	s.mu.RUnlock()
	return <-req.done
}

// writer commits queued Puts: everything queued when a commit starts goes into it.
func (s *Store) writer() {
	defer s.wg.Done()
	for req := range s.reqs {
		batch := []writeReq{req}
		n := len(req.recs)
	drain:
		for n < maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				n += len(r.recs)
			default:
				break drain
			}
		}
		type kv struct{ k, v []byte }
		enc := make([]kv, 0, n)
		var encErr error
		for _, b := range batch {
			for _, r := range b.recs {
				v, err := s.encode(r)
				if err != nil {
					encErr = err
					break
				}
				enc = append(enc, kv{[]byte(r.ID), v})
			}
		}
		err := encErr
		if err == nil {
			err = s.db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket(bucketTasks)
				for _, e := range enc {
					if err := bk.Put(e.k, e.v); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err != nil {
			err = fmt.Errorf("write state %s: %w", s.path, err)
		}
		for _, b := range batch {
			b.done <- err
		}
	}
}

// Close flushes pending writes and closes the file. It is idempotent.
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
	s.wg.Wait()
	return s.db.Close()
}

// Check runs bbolt's consistency check over a state file (read-only).
func Check(path string) error {
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		if len(errs) > 0 {
			return fmt.Errorf("check state %s: %w: %w", path, errors.Join(errs...), ErrCorrupt)
		}
		return nil
	})
}
