package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"provision/providers"
	"provision/state"
)

// slowDisk is a real store whose every write takes delay longer to become durable,
// as on a network disk where an fsync costs milliseconds.
type slowDisk struct {
	*state.Store
	delay time.Duration
}

func (s slowDisk) Put(recs ...*state.Record) error { return s.PutWithin(0, recs...) }

func (s slowDisk) PutWithin(linger time.Duration, recs ...*state.Record) error {
	time.Sleep(s.delay)
	return s.Store.PutWithin(linger, recs...)
}

// BenchmarkRun_SlowDisk: 2,000 tasks of one 20 ms request each, 100 at once, on a
// state whose writes take 10 ms to be durable. Ideal: 2,000 x 20 ms / 100 = 0.4 s,
// plus one intent and one result commit on the critical path. Reported as
// wall/ideal.
func BenchmarkRun_SlowDisk(b *testing.B) {
	const n, parallel, request, disk = 2000, 100, 20 * time.Millisecond, 10 * time.Millisecond
	for i := 0; i < b.N; i++ {
		tasks := make([]*providers.Task, n)
		for j := range tasks {
			tasks[j] = task(fmt.Sprintf("t%05d", j), nil, func(ctx context.Context, _ *providers.Exec) (state.Outputs, error) {
				time.Sleep(request)
				return nil, nil
			})
		}
		g := mustGraph(b, tasks...)
		st := slowDisk{Store: openStore(b, filepath.Join(b.TempDir(), "s.db")), delay: disk}
		o := opts()
		o.Parallel = parallel
		start := time.Now()
		res, err := Run(context.Background(), g, st, o)
		wall := time.Since(start)
		if err != nil || !res.OK() {
			b.Fatalf("%v %+v", err, res)
		}
		ideal := time.Duration(n)*request/parallel + request + 2*disk
		b.ReportMetric(wall.Seconds(), "wall-s")
		b.ReportMetric(wall.Seconds()/ideal.Seconds(), "wall/ideal")
	}
}
