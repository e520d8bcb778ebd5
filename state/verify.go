package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// Damaged files must never crash the process nor be written to. bbolt trusts its
// pages: on a damaged file it may return an error, panic, or fault on an address past
// the end of the file. So:
//   - checkHeader reads the two bbolt meta pages with ordinary reads before bbolt maps
//     the file (a file shorter than its meta says would fault inside bbolt);
//   - every bbolt call runs under guard, which turns panics and memory faults into
//     ErrCorrupt (debug.SetPanicOnFault), in the calling goroutine;
//   - walkFile checks the whole page tree with bounds-checked reads, for Check and
//     before bbolt would walk it in a goroutine of its own (files that do not store
//     their freelist), where nothing could recover a panic.
//
// bbolt's own tx.Check cannot replace the walk: it runs in a goroutine of its own,
// where guard does not reach, and reads pages straight from the mapping, so a page
// number past the end of the file kills the process there (a fault, not a panic:
// TestCheck_BboltCheckAloneCrashesOnAPageTheWalkRefuses), and a reference cycle
// recurses until the stack overflows. The walk therefore checks what bbolt could
// fault, loop or panic on (bounds, page types, single references, key order, the
// freelist: bbolt's freelist rebuild panics on any problem its check reports), and
// leaves the rest to tx.Check, which Check runs after a clean walk.

// bbolt on-disk constants (file format version 2).
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	elemSize         = 16 // branch and leaf page elements
	bucketHeaderSize = 16
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	noFreelist       = ^uint64(0)
)

// metaInfo is the part of a bbolt meta page the checks need.
type metaInfo struct {
	pageSize uint32
	root     uint64 // root bucket's page
	freelist uint64 // noFreelist when the freelist is not stored
	pgid     uint64 // high-water mark: pages [0, pgid) exist
	txid     uint64
}

// header is what checkHeader learns from a file.
type header struct {
	metaInfo
	size    int64
	damaged []int // meta pages (0, 1) that are not valid
}

// parseMeta reads a bbolt meta page (page header, then magic, version, page size,
// flags, root bucket, freelist, high-water page id, txid, checksum).
func parseMeta(b []byte) (metaInfo, error) {
	if len(b) < 80 {
		return metaInfo{}, errors.New("short meta page")
	}
	le := binary.LittleEndian
	if le.Uint32(b[16:20]) != boltMagic {
		return metaInfo{}, errors.New("not a bbolt database (bad magic number)")
	}
	if v := le.Uint32(b[20:24]); v != boltVersion {
		return metaInfo{}, fmt.Errorf("unsupported bbolt version %d", v)
	}
	h := fnv.New64a()
	h.Write(b[16:72])
	if h.Sum64() != le.Uint64(b[72:80]) {
		return metaInfo{}, errors.New("meta page checksum mismatch")
	}
	m := metaInfo{
		pageSize: le.Uint32(b[24:28]),
		root:     le.Uint64(b[32:40]),
		freelist: le.Uint64(b[48:56]),
		pgid:     le.Uint64(b[56:64]),
		txid:     le.Uint64(b[64:72]),
	}
	if m.pageSize < 512 || m.pageSize > 1<<24 || m.pageSize&(m.pageSize-1) != 0 {
		return metaInfo{}, fmt.Errorf("implausible page size %d", m.pageSize)
	}
	if m.pgid < 4 || m.root < 2 || m.root >= m.pgid || (m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pgid)) {
		return metaInfo{}, errors.New("meta page points outside the file")
	}
	return m, nil
}

// checkHeader validates a file's meta pages and size with ordinary reads. It picks
// the meta page bbolt will use (the valid one with the highest txid) and reports a
// damaged copy.
func checkHeader(path string) (header, error) {
	f, err := os.Open(path)
	if err != nil {
		return header{}, err
	}
	defer f.Close()
	var first [4096]byte
	n, err := io.ReadFull(f, first[:])
	if err != nil && err != io.ErrUnexpectedEOF {
		return header{}, err
	}
	if n < 1024 {
		return header{}, fmt.Errorf("file too short for a state file (%d bytes)", n)
	}
	var (
		h      header
		reason error
		ok     [2]bool
	)
	if m, err := parseMeta(first[:n]); err == nil {
		h.metaInfo, ok[0] = m, true
	} else {
		reason = err
	}
	// The second meta page sits one page further: try the size the first one claims,
	// then every size bbolt itself tries.
	sizes := []uint32{h.pageSize}
	for i := 0; i <= 14; i++ {
		sizes = append(sizes, 1024<<i)
	}
	for _, ps := range sizes {
		if ps == 0 {
			continue
		}
		buf := make([]byte, 80)
		if _, err := f.ReadAt(buf, int64(ps)); err != nil {
			continue
		}
		if m, err := parseMeta(buf); err == nil && m.pageSize == ps {
			ok[1] = true
			if !ok[0] || m.txid > h.txid {
				h.metaInfo = m
			}
			break
		}
	}
	if !ok[0] && !ok[1] {
		return header{}, reason
	}
	for i := range ok {
		if !ok[i] {
			h.damaged = append(h.damaged, i)
		}
	}
	// Size after the meta pages: the file only grows, so a concurrent writer cannot
	// make a valid file look truncated.
	fi, err := f.Stat()
	if err != nil {
		return header{}, err
	}
	h.size = fi.Size()
	if need := int64(h.pgid) * int64(h.pageSize); h.size < need {
		return header{}, fmt.Errorf("truncated: %d bytes, the database says it holds %d", h.size, need)
	}
	if h.freelist != noFreelist {
		if err := checkFreelist(f, h); err != nil {
			return header{}, err
		}
	}
	return h, nil
}

// checkFreelist checks the freelist page, the one page bbolt reads while opening a
// file for writing: a panic there would leave the file mapped and locked.
func checkFreelist(f *os.File, h header) error {
	ps := int64(h.pageSize)
	var hdr [pageHeaderSize + 8]byte
	if _, err := f.ReadAt(hdr[:], int64(h.freelist)*ps); err != nil {
		return fmt.Errorf("freelist page %d: %v", h.freelist, err)
	}
	le := binary.LittleEndian
	id, flags := le.Uint64(hdr[0:8]), le.Uint16(hdr[8:10])
	n, over := uint64(le.Uint16(hdr[10:12])), uint64(le.Uint32(hdr[12:16]))
	start := int64(pageHeaderSize)
	if n == 0xFFFF {
		n, start = le.Uint64(hdr[16:24]), pageHeaderSize+8
	}
	switch {
	case id != h.freelist || flags != freelistPageFlag:
		return fmt.Errorf("freelist page %d: not a freelist page (id %d, type %#x)", h.freelist, id, flags)
	case h.freelist+over >= h.pgid:
		return fmt.Errorf("freelist page %d: %d overflow pages run past the high-water mark", h.freelist, over)
	case n > uint64((int64(over+1)*ps-start)/8):
		return fmt.Errorf("freelist page %d: %d ids do not fit", h.freelist, n)
	}
	ids := make([]byte, n*8)
	if _, err := f.ReadAt(ids, int64(h.freelist)*ps+start); err != nil {
		return fmt.Errorf("freelist page %d: %v", h.freelist, err)
	}
	for i := uint64(0); i < n; i++ {
		if fid := le.Uint64(ids[i*8:]); fid < 2 || fid >= h.pgid {
			return fmt.Errorf("freelist page %d: free page id %d out of range", h.freelist, fid)
		}
	}
	return nil
}

// damageError is a panic or memory fault inside bbolt: the file's structure is
// damaged. It wraps ErrCorrupt.
type damageError struct {
	what, path string
	cause      any
}

func (e *damageError) Error() string {
	return fmt.Sprintf("%s %s: damaged file (%v): %v", e.what, e.path, e.cause, ErrCorrupt)
}

func (e *damageError) Unwrap() error { return ErrCorrupt }

// guard runs fn, turning a panic or a memory fault inside bbolt into a damageError.
func guard(what, path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if p := recover(); p != nil {
			err = &damageError{what: what, path: path, cause: p}
		}
	}()
	return fn()
}

// walker checks a bbolt page tree the way bbolt's own check does (types, bounds,
// single references, key order, freelist), reading pages with bounds-checked reads.
type walker struct {
	f     *os.File
	h     header
	seen  map[uint64]bool
	freed map[uint64]bool
	errs  []error
}

const maxWalkErrors = 10

// walkFile checks the page tree of the file at path (whose header is h).
func walkFile(path string, h header) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := &walker{f: f, h: h, seen: map[uint64]bool{0: true, 1: true}, freed: map[uint64]bool{}}
	if h.freelist != noFreelist {
		w.freelist(h.freelist)
	}
	w.tree(h.root, nil, nil, 0, true)
	// Pages neither in use nor free are a leak, harmless to bbolt: its tx.Check
	// reports them (Check runs it after this walk).
	return errors.Join(w.errs...)
}

func (w *walker) fail(format string, a ...any) {
	if len(w.errs) < maxWalkErrors {
		w.errs = append(w.errs, fmt.Errorf(format, a...))
	}
}

// page reads page id and its overflow pages, checking its header.
func (w *walker) page(id uint64) ([]byte, bool) {
	ps := uint64(w.h.pageSize)
	if id >= w.h.pgid {
		w.fail("page %d: beyond the high-water mark %d", id, w.h.pgid)
		return nil, false
	}
	var hdr [pageHeaderSize]byte
	if _, err := w.f.ReadAt(hdr[:], int64(id*ps)); err != nil {
		w.fail("page %d: %v", id, err)
		return nil, false
	}
	le := binary.LittleEndian
	if got := le.Uint64(hdr[0:8]); got != id {
		w.fail("page %d: identifies itself as page %d", id, got)
		return nil, false
	}
	over := uint64(le.Uint32(hdr[12:16]))
	if id+over >= w.h.pgid {
		w.fail("page %d: %d overflow pages run past the high-water mark", id, over)
		return nil, false
	}
	for i := id; i <= id+over; i++ {
		if w.seen[i] {
			w.fail("page %d: referenced more than once", i)
			return nil, false
		}
		if w.freed[i] {
			w.fail("page %d: in use and free", i)
			return nil, false
		}
		w.seen[i] = true
	}
	buf := make([]byte, (over+1)*ps)
	if _, err := w.f.ReadAt(buf, int64(id*ps)); err != nil {
		w.fail("page %d: %v", id, err)
		return nil, false
	}
	return buf, true
}

func (w *walker) freelist(id uint64) {
	p, ok := w.page(id)
	if !ok {
		return
	}
	le := binary.LittleEndian
	if fl := le.Uint16(p[8:10]); fl != freelistPageFlag {
		w.fail("page %d: freelist page has type %#x", id, fl)
		return
	}
	n, data := uint64(le.Uint16(p[10:12])), p[pageHeaderSize:]
	if n == 0xFFFF {
		if len(data) < 8 {
			w.fail("page %d: short freelist", id)
			return
		}
		n, data = le.Uint64(data[:8]), data[8:]
	}
	if n > uint64(len(data))/8 {
		w.fail("page %d: freelist of %d ids does not fit", id, n)
		return
	}
	for i := uint64(0); i < n; i++ {
		fid := le.Uint64(data[i*8:])
		switch {
		case fid < 2 || fid >= w.h.pgid:
			w.fail("page %d: free page id %d out of range", id, fid)
		case w.freed[fid]:
			w.fail("page %d: page %d freed twice", id, fid)
		case w.seen[fid]:
			w.fail("page %d: freelist page %d is free", id, fid)
		}
		w.freed[fid] = true
	}
}

// tree checks the subtree at page id, whose keys must lie in [lo, hi). isRoot marks
// the root bucket's tree, whose leaves hold only buckets.
func (w *walker) tree(id uint64, lo, hi []byte, depth int, isRoot bool) {
	if len(w.errs) >= maxWalkErrors {
		return
	}
	if depth > 64 {
		w.fail("page %d: tree nested too deep", id)
		return
	}
	p, ok := w.page(id)
	if !ok {
		return
	}
	w.elems(id, p, lo, hi, depth, isRoot)
}

// elems checks the elements of a branch or leaf page (p starts with its header).
func (w *walker) elems(id uint64, p, lo, hi []byte, depth int, isRoot bool) {
	le := binary.LittleEndian
	flags, count := le.Uint16(p[8:10]), int(le.Uint16(p[10:12]))
	if pageHeaderSize+count*elemSize > len(p) {
		w.fail("page %d: %d elements do not fit", id, count)
		return
	}
	prev := lo
	for i := 0; i < count && len(w.errs) < maxWalkErrors; i++ {
		e := pageHeaderSize + i*elemSize
		var key, val []byte
		var child uint64
		var isBucket bool
		switch flags {
		case branchPageFlag:
			pos, ks := uint64(le.Uint32(p[e:])), uint64(le.Uint32(p[e+4:]))
			child = le.Uint64(p[e+8:])
			if uint64(e)+pos+ks > uint64(len(p)) {
				w.fail("page %d: element %d out of bounds", id, i)
				return
			}
			key = p[uint64(e)+pos : uint64(e)+pos+ks]
		case leafPageFlag:
			fl, pos := le.Uint32(p[e:]), uint64(le.Uint32(p[e+4:]))
			ks, vs := uint64(le.Uint32(p[e+8:])), uint64(le.Uint32(p[e+12:]))
			if uint64(e)+pos+ks+vs > uint64(len(p)) {
				w.fail("page %d: element %d out of bounds", id, i)
				return
			}
			key = p[uint64(e)+pos : uint64(e)+pos+ks]
			val = p[uint64(e)+pos+ks : uint64(e)+pos+ks+vs]
			isBucket = fl&bucketLeafFlag != 0
		default:
			w.fail("page %d: unexpected page type %#x", id, flags)
			return
		}
		if prev != nil && (bytes.Compare(prev, key) > 0 || (i > 0 && bytes.Equal(prev, key))) {
			w.fail("page %d: key %d out of order", id, i)
			return
		}
		if hi != nil && bytes.Compare(key, hi) >= 0 {
			w.fail("page %d: key %d beyond its parent's range", id, i)
			return
		}
		prev = key
		if flags == branchPageFlag {
			next := hi
			if i+1 < count {
				ne := pageHeaderSize + (i+1)*elemSize
				pos, ks := uint64(le.Uint32(p[ne:])), uint64(le.Uint32(p[ne+4:]))
				if uint64(ne)+pos+ks > uint64(len(p)) {
					w.fail("page %d: element %d out of bounds", id, i+1)
					return
				}
				next = p[uint64(ne)+pos : uint64(ne)+pos+ks]
			}
			w.tree(child, key, next, depth+1, isRoot)
			continue
		}
		if isRoot && !isBucket {
			w.fail("page %d: a plain value in the root bucket", id)
			return
		}
		if isBucket {
			w.bucket(id, key, val, depth+1)
		}
	}
}

// bucket checks a bucket value: a header, then either a root page id or an inline page.
func (w *walker) bucket(id uint64, key, val []byte, depth int) {
	if len(val) < bucketHeaderSize {
		w.fail("page %d: bucket %q has a short header", id, key)
		return
	}
	root := binary.LittleEndian.Uint64(val[:8])
	if root != 0 {
		w.tree(root, nil, nil, depth, false)
		return
	}
	inline := val[bucketHeaderSize:]
	if len(inline) < pageHeaderSize {
		w.fail("page %d: inline bucket %q is short", id, key)
		return
	}
	if fl := binary.LittleEndian.Uint16(inline[8:10]); fl != leafPageFlag {
		w.fail("page %d: inline bucket %q has page type %#x", id, key, fl)
		return
	}
	if depth > 64 {
		w.fail("page %d: buckets nested too deep", id)
		return
	}
	w.elems(id, inline, nil, nil, depth, false)
}

// Check checks a state file thoroughly, for status --check: the bbolt page tree
// with bounds-checked reads (types, bounds, references, key order, freelist), then
// bbolt's own tx.Check, the provision meta data, and every record. It opens the file
// read-only (so it reports ErrLocked while a run is going on) and never writes.
// Problems wrap ErrCorrupt and name what is damaged (a page, a task). A damaged copy
// of bbolt's meta page is reported too: the file then opens from the other copy,
// which may lack the last write.
//
// The walk comes first, under the shared lock and before any read through bbolt's
// mapping, because bbolt's Check runs in a goroutine of its own: guard cannot reach
// it, and a page number past the end of the file faults there and kills the process
// (TestCheck_BboltCheckAloneCrashesOnAPageTheWalkRefuses).
func Check(path string) error {
	ro := Options{ReadOnly: true}
	ro, _, err := vet(path, ro)
	if err != nil {
		return err
	}
	s, err := openDB(path, ro)
	if err != nil {
		return err
	}
	defer s.db.Close()
	// The shared lock is held now: no writer can change the file under the checks.
	h, err := checkHeader(path)
	if err != nil {
		return fmt.Errorf("check state %s: %v: %w", path, err, ErrCorrupt)
	}
	var errs []error
	for _, i := range h.damaged {
		errs = append(errs, fmt.Errorf("bbolt meta page %d is damaged (the file opens from the other copy, which may lack the last write)", i))
	}
	if err := walkFile(path, h); err != nil {
		errs = append(errs, err)
	} else if err := s.init(ro); err != nil {
		errs = append(errs, err)
	} else {
		// Safe now: the walk read every page bbolt's check will touch.
		err := s.view(func(tx *bolt.Tx) error {
			for e := range tx.Check() {
				errs = append(errs, e)
			}
			// Every record, without a key: sealed values are checked by the
			// record checksum.
			bad := 0
			return tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
				if err := decodeKV(new(Record), k, v, nil); err != nil {
					if bad++; bad <= maxWalkErrors {
						errs = append(errs, err)
					}
				}
				return nil
			})
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("check state %s: %w: %w", path, errors.Join(errs...), ErrCorrupt)
	}
	return nil
}
