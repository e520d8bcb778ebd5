package state

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// benchRecord is a typical record: a done task with a hash, times and two outputs.
func benchRecord(i int) *Record {
	now := time.Now()
	return &Record{
		ID: "nx_system/store-" + strconv.Itoa(i), Hash: sha256.Sum256([]byte(strconv.Itoa(i))), Status: Done, Attempts: 1,
		StartedAt: now, FinishedAt: now,
		Outputs: Outputs{"system_id": Plain("0b1c2d3e-4f50-6172-8394-" + strconv.Itoa(100000000000+i)), "auth_key": SecretOutput("ak-" + strconv.Itoa(i))},
	}
}

// benchPut has goroutines Put one record at a time, as the runner does, and
// reports the records made durable per second.
func benchPut(b *testing.B, goroutines int, o Options) {
	o.Key = testKey
	s := openT(b, filepath.Join(b.TempDir(), "s.db"), o)
	benchWrite(b, goroutines, func(r *Record) error { return s.Put(r) })
	b.ReportMetric(float64(b.N)/float64(s.commits.Load()), "records/commit")
}

// BenchmarkPut_Concurrent64 measures durable (fsynced) group-committed writes.
func BenchmarkPut_Concurrent64(b *testing.B) { benchPut(b, 64, Options{}) }

func BenchmarkPut_Concurrent256(b *testing.B) { benchPut(b, 256, Options{}) }

// BenchmarkPut_Serial is one caller: one commit, two fsyncs, per record.
func BenchmarkPut_Serial(b *testing.B) { benchPut(b, 1, Options{}) }

// BenchmarkPut_Concurrent64NoSync is the non-durable path, for comparison.
func BenchmarkPut_Concurrent64NoSync(b *testing.B) { benchPut(b, 64, Options{NoSync: true}) }

// BenchmarkLoad_100k is the resume path: every record of a 100,000-task state.
func BenchmarkLoad_100k(b *testing.B) {
	for _, key := range []string{testKey, ""} {
		b.Run(fmt.Sprintf("key=%v", key != ""), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "s.db")
			s := openT(b, path, Options{Key: key})
			batch := make([]*Record, 0, 5000)
			for i := range 100_000 {
				batch = append(batch, benchRecord(i))
				if len(batch) == cap(batch) {
					if err := s.Put(batch...); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			closeT(b, s)
			b.ResetTimer()
			for b.Loop() {
				s, err := Open(path, Options{PlanName: "plan-a", Key: key})
				if err != nil {
					b.Fatal(err)
				}
				all, err := s.Load()
				if err != nil || len(all) != 100_000 {
					b.Fatal(len(all), err)
				}
				s.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/open+load")
		})
	}
}
