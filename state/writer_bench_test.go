package state

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The store's own group-commit writer and binary codec stay only while they beat
// what bbolt and the standard library give for free. These benchmarks measure the
// alternatives on the same records and the same durable (fsynced) file:
//
//	BenchmarkWrite/store.Put         the writer (queue, one transaction per group)
//	BenchmarkWrite/bolt.Update       one plain bbolt Update per record
//	BenchmarkWrite/bolt.Batch        bbolt's own group commit (db.Batch)
//	BenchmarkCodec/binary, /json     the record format against encoding/json of the
//	                                 same fields (the format-1 form, still read)

// benchWrite has goroutines write one record at a time, as the runner's tasks do,
// with put, and reports records made durable per second.
func benchWrite(b *testing.B, goroutines int, put func(*Record) error) {
	recs := make([]*Record, 10_000)
	for i := range recs {
		recs[i] = benchRecord(i)
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for {
				n := int(next.Add(1))
				if n > b.N {
					return
				}
				if err := put(recs[n%len(recs)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}

// plainBolt opens a state file as a bare bbolt database with the store's options.
func plainBolt(b *testing.B) *bolt.DB {
	path := filepath.Join(b.TempDir(), "s.db")
	closeT(b, openT(b, path, Options{}))
	db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func BenchmarkWrite(b *testing.B) {
	sl := testSealer(b)
	for _, g := range []int{1, 64} {
		gs := "goroutines=" + strconv.Itoa(g)
		b.Run("store.Put/"+gs, func(b *testing.B) {
			s := openT(b, filepath.Join(b.TempDir(), "s.db"), Options{Key: testKey})
			benchWrite(b, g, func(r *Record) error { return s.Put(r) })
			b.ReportMetric(float64(b.N)/float64(s.commits.Load()), "records/commit")
		})
		// The same work per record as Put (encode, seal; these records carry no
		// task info) in one bbolt transaction of its own.
		for _, batch := range []bool{false, true} {
			name := "bolt.Update/"
			if batch {
				name = "bolt.Batch/"
			}
			b.Run(name+gs, func(b *testing.B) {
				db := plainBolt(b)
				benchWrite(b, g, func(r *Record) error {
					v, err := encodeRecord(r, sl)
					if err != nil {
						return err
					}
					fn := func(tx *bolt.Tx) error { return tx.Bucket(bucketTasks).Put([]byte(r.ID), v) }
					if batch {
						return db.Batch(fn) // fn is idempotent: it puts fixed values
					}
					return db.Update(fn)
				})
			})
		}
	}
}

// encodeJSON is the same record as encoding/json of the format-1 form, with secret
// outputs sealed the same way (it has no checksum: damage goes unseen).
func encodeJSON(r *Record, sl *sealer) ([]byte, error) {
	j := recordV1{V: 1, Status: r.Status, Attempts: r.Attempts, Err: r.LastError, Outputs: map[string]outputV1{}}
	if r.Hash != ([32]byte{}) {
		j.Hash = r.Hash[:]
	}
	if !r.StartedAt.IsZero() {
		j.Started = r.StartedAt.UnixNano()
	}
	if !r.FinishedAt.IsZero() {
		j.Finished = r.FinishedAt.UnixNano()
	}
	for k, o := range r.Outputs {
		if !o.Secret {
			j.Outputs[k] = outputV1{V: o.Value}
			continue
		}
		sealed, err := sl.seal([]byte(o.Value), []byte(r.ID+"\x00"+k)) // format 1's additional data
		if err != nil {
			return nil, err
		}
		j.Outputs[k] = outputV1{Sealed: sealed}
	}
	return json.Marshal(&j)
}

func BenchmarkCodec(b *testing.B) {
	sl := testSealer(b)
	r := benchRecord(42)
	for _, tc := range []struct {
		name   string
		encode func(*Record, *sealer) ([]byte, error)
	}{
		{"binary", encodeRecord},
		{"json", encodeJSON},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				v, err := tc.encode(r, sl)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := decodeRecord(r.ID, v, sl); err != nil {
					b.Fatal(err)
				}
				size = len(v)
			}
			b.ReportMetric(float64(size), "bytes/record")
		})
	}
}
