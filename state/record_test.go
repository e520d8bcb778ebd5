package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sampleRecords() []*Record {
	at := time.Unix(1_700_000_000, 5)
	return []*Record{
		{ID: "a"},
		{ID: "b", Status: Done, Attempts: 2, Hash: sha256.Sum256(nil), StartedAt: at, FinishedAt: at.Add(time.Second),
			LastError: "boom", Outputs: Outputs{"x": Plain("y"), "k": SecretOutput("s3cret")}},
		{ID: "c", Status: Failed, SecretsDropped: true, Outputs: Outputs{"": Plain("")}},
		{ID: "m", Status: Failed, MaybeApplied: true, LastError: "POST /x: EOF"},
	}
}

func testSealer(t testing.TB) *sealer {
	sl, err := newSealer(key32)
	if err != nil {
		t.Fatal(err)
	}
	return sl
}

func TestRecordEncoding_RoundTrip(t *testing.T) {
	sl := testSealer(t)
	for _, r := range sampleRecords() {
		t.Run(r.ID, func(t *testing.T) {
			b, err := encodeRecord(r, sl)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeRecord(r.ID, b, sl)
			if err != nil || !sameRecord(got, r) {
				t.Fatalf("got %+v, %v; want %+v", got, err, r)
			}
			// Deterministic apart from nonces: plain records encode the same way twice.
			if !hasSecret(r) {
				b2, _ := encodeRecord(r, sl)
				if !bytes.Equal(b, b2) {
					t.Error("encoding is not deterministic")
				}
			}
		})
	}
}

func hasSecret(r *Record) bool {
	for _, o := range r.Outputs {
		if o.Secret {
			return true
		}
	}
	return false
}

func TestRecordEncoding_IsCompact(t *testing.T) {
	r := &Record{ID: "nx/store-0001", Status: Done, Attempts: 1, Hash: sha256.Sum256(nil), StartedAt: time.Now(), FinishedAt: time.Now(),
		Outputs: Outputs{"system_id": Plain("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")}}
	b, _ := encodeRecord(r, nil)
	if len(b) > 110 {
		t.Errorf("%d bytes for a typical record", len(b))
	}
}

// Every truncation and every single-byte change of a valid encoding is an error
// naming the task (the checksum), and so is every change with a fixed-up checksum
// unless it still parses.
func TestRecordEncoding_GarbageIsErrCorrupt(t *testing.T) {
	sl := testSealer(t)
	for _, r := range sampleRecords() {
		b, _ := encodeRecord(r, sl)
		for n := range len(b) {
			if _, err := decodeRecord("t1", b[:n], sl); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `state record "t1"`) {
				t.Fatalf("%s truncated to %d: %v", r.ID, n, err)
			}
		}
		for i := range len(b) {
			m := bytes.Clone(b)
			m[i] ^= 0x5a
			if _, err := decodeRecord("t1", m, sl); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s byte %d changed: %v", r.ID, i, err)
			}
			if _, err := decodeRecord("t1", fixCRC(m), sl); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s byte %d changed, checksum fixed: %v", r.ID, i, err)
			}
		}
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"unknown format", []byte{9, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"json garbage", []byte(`{"v":1,`)},
		{"json other version", []byte(`{"v":7}`)},
		{"json bad status", []byte(`{"v":1,"s":9}`)},
		{"json short hash", []byte(`{"v":1,"h":"AAAA"}`)},
		{"json sealed garbage", []byte(`{"v":1,"o":{"k":{"x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}}`)},
		{"huge output count", fixCRC(append([]byte{2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, 0, 0, 0, 0))},
		{"unknown flags", fixCRC([]byte{2, 0, 0x80, 0, 0, 0, 0, 0, 0, 0})},
		{"nanoseconds out of range", fixCRC(append(binary.AppendUvarint([]byte{2, 0, flagStarted, 0, 0}, 2e9), 0, 0, 0, 0, 0))},
		{"outputs out of order", fixCRC([]byte{2, 0, 0, 0, 0, 2, 1, 'b', 0, 0, 1, 'a', 0, 0, 0, 0, 0, 0})},
		{"trailing bytes", fixCRC([]byte{2, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := decodeRecord("t1", tc.b, sl); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %+v, %v; want ErrCorrupt", r, err)
			}
		})
	}
}

// fixCRC replaces the last 4 bytes with the checksum of the rest: for a format-3
// record, keyed with the task id "t1" the tests decode with.
func fixCRC(b []byte) []byte { return fixCRCFor("t1", b) }

// fixCRCFor is fixCRC for a record of task id.
func fixCRCFor(id string, b []byte) []byte {
	if len(b) < 4 {
		return b
	}
	b = bytes.Clone(b)
	sum := crc32.Checksum(b[:len(b)-4], crcTable)
	if b[0] == recordV3 {
		sum = keyedChecksum(id, b[:len(b)-4])
	}
	binary.LittleEndian.PutUint32(b[len(b)-4:], sum)
	return b
}

// TestRecordEncoding_ChecksumCoversTheTaskID: a record read under another task id
// (a damaged key) is ErrCorrupt naming that id; a format-2 record, whose checksum
// covers the value only, is still read.
func TestRecordEncoding_ChecksumCoversTheTaskID(t *testing.T) {
	sl := testSealer(t)
	for _, r := range sampleRecords() {
		b, err := encodeRecord(r, sl)
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != recordV3 {
			t.Fatalf("%s: written as format %d, want %d", r.ID, b[0], recordV3)
		}
		for i := range len(r.ID) {
			id := []byte(r.ID)
			id[i] ^= 0x01
			_, err := decodeRecord(string(id), b, sl)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), strconv.Quote(string(id))) {
				t.Fatalf("%s read as %q: %v, want ErrCorrupt naming the task", r.ID, id, err)
			}
		}
		if got, err := decodeRecord(r.ID, b, sl); err != nil || got.ID != r.ID {
			t.Fatalf("%s: %+v %v", r.ID, got, err)
		}
		if hasSecret(r) {
			continue // a sealed value is bound to its task id by itself
		}
		v2 := bytes.Clone(b)
		v2[0] = recordV2
		binary.LittleEndian.PutUint32(v2[len(v2)-4:], crc32.Checksum(v2[:len(v2)-4], crcTable))
		got, err := decodeRecord(r.ID, v2, sl)
		if err != nil || got.Status != r.Status || len(got.Outputs) != len(r.Outputs) {
			t.Fatalf("%s as format 2: %+v %v", r.ID, got, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	sl := testSealer(f)
	for _, r := range sampleRecords() {
		for _, s := range []*sealer{sl, nil} {
			b, err := encodeRecord(r, s)
			if err != nil {
				f.Fatal(err)
			}
			b = fixCRCFor("id", b) // the task id the fuzz function decodes with
			f.Add(b)
			f.Add(b[:len(b)/2])
			m := bytes.Clone(b)
			m[len(m)/2] ^= 0xff
			f.Add(m)
			f.Add(fixCRCFor("id", m))
			f.Add(fixCRCFor("id", append(bytes.Clone(b[:len(b)-4]), 0, 0, 0, 0, 0)))
			v2 := bytes.Clone(b)
			v2[0] = recordV2
			f.Add(fixCRCFor("id", v2))
		}
	}
	f.Add([]byte(`{"v":1,"s":2,"a":1,"o":{"x":{"v":"y"}}}`))
	f.Add([]byte(`{"v":1,"s":9}`))
	f.Add([]byte(`{"v":1,"h":"AAAA"}`))
	f.Add([]byte(`{"v":1,"o":{"k":{"x":"AAAAAAAAAAAAAAAAAAAA"}}}`))
	f.Add([]byte(`{`))
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, fixCRCFor("id", b)} {
			for _, s := range []*sealer{sl, nil} {
				r, err := decodeRecord("id", in, s)
				if err != nil {
					if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `state record "id"`) {
						t.Fatalf("unclassified error %v", err)
					}
					continue
				}
				if r == nil || r.ID != "id" || r.Status > Failed {
					t.Fatalf("bad record %+v", r)
				}
				// What decodes re-encodes and decodes to the same record.
				again, err := encodeRecord(r, s)
				if err != nil {
					t.Fatal(err)
				}
				r2, err := decodeRecord("id", again, s)
				if err != nil || !sameRecord(r, r2) {
					t.Fatalf("re-encoding changed the record: %+v -> %+v, %v", r, r2, err)
				}
			}
		}
	})
}
