package state

import (
	"crypto/cipher"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// A stored record is one bbolt value under the task ID. Format 3 (written by this
// version) is compact binary, every field in a fixed order:
//
//	byte     recordV3 (3)
//	byte     status
//	byte     flags: flagHash, flagDropped, flagStarted, flagFinished, flagMaybeApplied
//	varint   attempts
//	[32]byte hash                        (flagHash)
//	varint   started seconds, uvarint ns (flagStarted)
//	varint   finished seconds, uvarint ns (flagFinished)
//	uvarint  len, last error
//	uvarint  number of outputs, then per output in name order:
//	         uvarint len, name; byte kind (plain | sealed); uvarint len, value
//	[4]byte  CRC-32C of uvarint len(task ID), the task ID, then everything
//	         before it, little endian
//
// The checksum covers the key as well as the value: a damaged task ID (a done task
// turned into an unknown one, a new "not started" one appearing) is reported as
// damage instead of running a task twice. Format 2 has the same layout with the
// version byte 2 and a checksum of the value alone; such records are still read.
//
// A sealed value is nonce || AES-256-GCM(value) with the task ID and output name as
// additional data, so a sealed value cannot be moved to another task or output.
// Format 1 (the first release) stored JSON; such records start with '{' and are still
// read.
const (
	recordV2 byte = 2
	recordV3 byte = 3

	flagHash     byte = 1 << 0
	flagDropped  byte = 1 << 1
	flagStarted  byte = 1 << 2
	flagFinished byte = 1 << 3
	// flagMaybeApplied: the last attempt failed after its request may have taken effect.
	flagMaybeApplied byte = 1 << 4
	knownFlags            = flagHash | flagDropped | flagStarted | flagFinished | flagMaybeApplied

	kindPlain  byte = 0
	kindSealed byte = 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// sealer encrypts and decrypts secret outputs; a nil sealer means "no key".
type sealer struct{ aead cipher.AEAD }

// outputAD is the additional data that binds a sealed value to its task and output.
func outputAD(id, name string) []byte {
	ad := make([]byte, 0, len(id)+len(name)+binary.MaxVarintLen64+8)
	ad = append(ad, "output\x00"...)
	ad = binary.AppendUvarint(ad, uint64(len(id)))
	ad = append(ad, id...)
	return append(ad, name...)
}

// encodeRecord returns the stored form of r. Secret outputs are sealed with sl, or
// dropped (and SecretsDropped set) when sl is nil. It never stores a secret in
// clear text.
func encodeRecord(r *Record, sl *sealer) ([]byte, error) {
	names := make([]string, 0, len(r.Outputs))
	size := 3 + binary.MaxVarintLen64*6 + 32 + len(r.LastError) + 4
	for k, o := range r.Outputs {
		names = append(names, k)
		size += 2*binary.MaxVarintLen64 + 1 + len(k) + len(o.Value) + 28
	}
	slices.Sort(names)

	dropped := r.SecretsDropped
	for _, k := range names {
		if r.Outputs[k].Secret && sl == nil {
			dropped = true
		}
	}
	var flags byte
	if r.Hash != ([32]byte{}) {
		flags |= flagHash
	}
	if dropped {
		flags |= flagDropped
	}
	if !r.StartedAt.IsZero() {
		flags |= flagStarted
	}
	if !r.FinishedAt.IsZero() {
		flags |= flagFinished
	}
	if r.MaybeApplied {
		flags |= flagMaybeApplied
	}
	b := make([]byte, 0, size)
	b = append(b, recordV3, byte(r.Status), flags)
	b = binary.AppendVarint(b, int64(r.Attempts))
	if flags&flagHash != 0 {
		b = append(b, r.Hash[:]...)
	}
	if flags&flagStarted != 0 {
		b = binary.AppendVarint(b, r.StartedAt.Unix())
		b = binary.AppendUvarint(b, uint64(r.StartedAt.Nanosecond()))
	}
	if flags&flagFinished != 0 {
		b = binary.AppendVarint(b, r.FinishedAt.Unix())
		b = binary.AppendUvarint(b, uint64(r.FinishedAt.Nanosecond()))
	}
	b = appendString(b, r.LastError)
	kept := 0
	for _, k := range names {
		if !r.Outputs[k].Secret || sl != nil {
			kept++
		}
	}
	b = binary.AppendUvarint(b, uint64(kept))
	for _, k := range names {
		o := r.Outputs[k]
		switch {
		case !o.Secret:
			b = appendString(b, k)
			b = append(b, kindPlain)
			b = appendString(b, o.Value)
		case sl != nil:
			sealed, err := sl.seal([]byte(o.Value), outputAD(r.ID, k))
			if err != nil {
				return nil, fmt.Errorf("state record %q: encrypt output %q: %w", r.ID, k, err)
			}
			b = appendString(b, k)
			b = append(b, kindSealed)
			b = binary.AppendUvarint(b, uint64(len(sealed)))
			b = append(b, sealed...)
		}
	}
	return binary.LittleEndian.AppendUint32(b, keyedChecksum(r.ID, b)), nil
}

// keyedChecksum is the format-3 checksum: CRC-32C over the length of the task ID,
// the task ID and the record body.
func keyedChecksum(id string, body []byte) uint32 {
	var lb [binary.MaxVarintLen64]byte
	c := crc32.Update(0, crcTable, lb[:binary.PutUvarint(lb[:], uint64(len(id)))])
	c = crc32.Update(c, crcTable, unsafe.Slice(unsafe.StringData(id), len(id))) // read only
	return crc32.Update(c, crcTable, body)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeRecord parses a stored record. Sealed outputs are opened with sl, or left out
// (SecretsDropped set) when sl is nil. Any malformed input is an error wrapping
// ErrCorrupt that names the task; it never panics. Nothing refers to b afterwards.
func decodeRecord(id string, b []byte, sl *sealer) (*Record, error) {
	r := new(Record)
	if err := decodeInto(r, id, b, "", sl); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeKV decodes the record stored under key k into dst, with one allocation for
// the ID and every string field.
func decodeKV(dst *Record, k, v []byte, sl *sealer) error {
	var sb strings.Builder
	sb.Grow(len(k) + len(v))
	sb.Write(k)
	sb.Write(v)
	all := sb.String()
	return decodeInto(dst, all[:len(k)], v, all[len(k):], sl)
}

// decodeInto decodes b into dst; str, when not empty, holds the same bytes as b.
func decodeInto(dst *Record, id string, b []byte, str string, sl *sealer) error {
	var err error
	switch {
	case len(b) == 0:
		err = errors.New("empty value")
	case b[0] == recordV2 || b[0] == recordV3:
		err = decodeV2(dst, id, b, str, sl)
	case b[0] == '{':
		err = decodeV1(dst, id, b, sl)
	default:
		err = fmt.Errorf("unknown record format %d", b[0])
	}
	if err != nil {
		*dst = Record{}
		return fmt.Errorf("state record %s: %v: %w", quoteID(id), err, ErrCorrupt)
	}
	return nil
}

// quoteID quotes a task id for a message, shortened if it is long (a damaged key).
func quoteID(id string) string {
	if len(id) > 100 {
		return strconv.Quote(id[:100]) + "..."
	}
	return strconv.Quote(id)
}

// reader reads the fields of a format-2 record; the first failure sticks.
type reader struct {
	b   []byte
	s   string // the same bytes as one string: fields are substrings (one allocation)
	off int
	err error
}

func (d *reader) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, a...)
	}
}

func (d *reader) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated at %s", what)
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *reader) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.off += n
	return v
}

func (d *reader) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.off += n
	return v
}

// span returns the next n bytes as offsets into d.b / d.s.
func (d *reader) span(n uint64, what string) (int, int) {
	if d.err != nil {
		return 0, 0
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("truncated at %s (%d bytes announced, %d left)", what, n, len(d.b)-d.off)
		return 0, 0
	}
	start := d.off
	d.off += int(n)
	return start, d.off
}

func (d *reader) string(what string) string {
	i, j := d.span(d.uvarint(what), what)
	return d.s[i:j]
}

func (d *reader) time(what string) time.Time {
	sec := d.varint(what)
	ns := d.uvarint(what)
	if d.err == nil && ns >= 1e9 {
		d.fail("bad %s: %d ns", what, ns)
	}
	return time.Unix(sec, int64(ns))
}

func decodeV2(r *Record, id string, b []byte, str string, sl *sealer) error {
	if len(b) < 4+4 {
		return fmt.Errorf("truncated: %d bytes", len(b))
	}
	body := b[:len(b)-4]
	want := binary.LittleEndian.Uint32(b[len(b)-4:])
	if b[0] == recordV2 {
		if got := crc32.Checksum(body, crcTable); want != got {
			return fmt.Errorf("checksum mismatch (stored %08x, computed %08x)", want, got)
		}
	} else if got := keyedChecksum(id, body); want != got {
		return fmt.Errorf("checksum of task id and record mismatch (stored %08x, computed %08x): the record or its task id is damaged", want, got)
	}
	if str == "" {
		str = string(body)
	}
	return decodeV2Body(r, id, body, str[:len(body)], sl)
}

// decodeV2Body parses a format-2 or format-3 record without its checksum into r; str
// holds the same bytes as body (string fields are substrings of it).
func decodeV2Body(r *Record, id string, body []byte, str string, sl *sealer) error {
	d := &reader{b: body, s: str}
	*r = Record{ID: id}
	if v := d.byte("version"); v != recordV2 && v != recordV3 {
		return fmt.Errorf("unknown record format %d", v)
	}
	st := d.byte("status")
	if st > byte(Failed) {
		d.fail("unknown status %d", st)
	}
	r.Status = Status(st)
	flags := d.byte("flags")
	if flags&^knownFlags != 0 {
		d.fail("unknown flags %#x", flags)
	}
	att := d.varint("attempts")
	if att < math.MinInt32 || att > math.MaxInt32 {
		d.fail("implausible attempts %d", att)
	}
	r.Attempts = int(att)
	if flags&flagHash != 0 {
		i, j := d.span(32, "hash")
		copy(r.Hash[:], body[i:j])
	}
	if flags&flagStarted != 0 {
		r.StartedAt = d.time("start time")
	}
	if flags&flagFinished != 0 {
		r.FinishedAt = d.time("finish time")
	}
	r.SecretsDropped = flags&flagDropped != 0
	r.MaybeApplied = flags&flagMaybeApplied != 0
	r.LastError = d.string("last error")
	n := d.uvarint("output count")
	// Every output takes at least 3 bytes: a bound before allocating.
	if d.err == nil && n > uint64(len(body)-d.off)/3 {
		d.fail("implausible output count %d", n)
	}
	if d.err != nil {
		return d.err
	}
	if n > 0 {
		r.Outputs = make(Outputs, n)
	}
	prev := ""
	for i := uint64(0); i < n && d.err == nil; i++ {
		name := d.string("output name")
		if i > 0 && name <= prev {
			d.fail("output %q out of order or repeated", name)
		}
		prev = name
		kind := d.byte("output kind")
		vi, vj := d.span(d.uvarint("output length"), "output value")
		if d.err != nil {
			break
		}
		switch kind {
		case kindPlain:
			r.Outputs[name] = Output{Value: d.s[vi:vj]}
		case kindSealed:
			if sl == nil {
				r.SecretsDropped = true
				continue
			}
			plain, err := sl.open(body[vi:vj], outputAD(id, name))
			if err != nil {
				d.fail("secret output %q does not decrypt (damaged or altered)", name)
				break
			}
			r.Outputs[name] = Output{Value: string(plain), Secret: true}
		default:
			d.fail("output %q: unknown kind %d", name, kind)
		}
	}
	if d.err == nil && d.off != len(body) {
		d.fail("%d trailing bytes", len(body)-d.off)
	}
	return d.err
}

// recordV1 is the format-1 (JSON) stored form, read for files of the first release.
type recordV1 struct {
	V        int                 `json:"v"`
	Hash     []byte              `json:"h,omitempty"`
	Status   Status              `json:"s"`
	Attempts int                 `json:"a,omitempty"`
	Started  int64               `json:"t0,omitempty"`
	Finished int64               `json:"t1,omitempty"`
	Err      string              `json:"e,omitempty"`
	Outputs  map[string]outputV1 `json:"o,omitempty"`
	Dropped  bool                `json:"d,omitempty"`
}

type outputV1 struct {
	V      string `json:"v,omitempty"`
	Sealed []byte `json:"x,omitempty"`
}

func decodeV1(r *Record, id string, b []byte, sl *sealer) error {
	var st recordV1
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	if st.V != 1 {
		return fmt.Errorf("unknown record version %d", st.V)
	}
	if st.Status > Failed {
		return fmt.Errorf("unknown status %d", st.Status)
	}
	if st.Attempts < math.MinInt32 || st.Attempts > math.MaxInt32 {
		return fmt.Errorf("implausible attempts %d", st.Attempts)
	}
	if len(st.Hash) != 0 && len(st.Hash) != 32 {
		return fmt.Errorf("hash of %d bytes", len(st.Hash))
	}
	*r = Record{ID: id, Status: st.Status, Attempts: st.Attempts, LastError: st.Err, SecretsDropped: st.Dropped}
	copy(r.Hash[:], st.Hash)
	if st.Started != 0 {
		r.StartedAt = time.Unix(0, st.Started)
	}
	if st.Finished != 0 {
		r.FinishedAt = time.Unix(0, st.Finished)
	}
	if len(st.Outputs) > 0 {
		r.Outputs = make(Outputs, len(st.Outputs))
	}
	for k, v := range st.Outputs {
		if v.Sealed == nil {
			r.Outputs[k] = Output{Value: v.V}
			continue
		}
		if sl == nil {
			r.SecretsDropped = true
			continue
		}
		plain, err := sl.open(v.Sealed, []byte(id+"\x00"+k))
		if err != nil {
			return fmt.Errorf("secret output %q does not decrypt (damaged or altered)", k)
		}
		r.Outputs[k] = Output{Value: string(plain), Secret: true}
	}
	return nil
}
