package main

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
)

// gcHeadroom is the least the heap may grow between two collections during a run.
//
// A run's heap is mostly what lives as long as the run (the graph, the records);
// what the requests allocate is garbage within milliseconds. Go collects each time
// the heap has grown by its live size (GOGC=100), so a run of a few thousand tasks,
// with a live heap of some 20 MB, collects every 20 MB of request garbage (in
// BenchmarkLimits_Latency1000Stores: 21 collections, 7% of the CPU). A small heap
// gets at least gcHeadroom of growth, the percent capped at maxGCPercent; a heap of
// gcHeadroom or more keeps Go's default, so a large run uses no more memory than
// before.
const (
	gcHeadroom   = 64 << 20
	maxGCPercent = 400
)

// gcPercentFor is the collector's percent for a run whose heap holds heap bytes.
func gcPercentFor(heap uint64) int {
	if heap == 0 {
		return 100
	}
	return int(min(max(100, gcHeadroom*100/heap), maxGCPercent))
}

// widenGC sets the collector's percent for the run about to start from the heap the
// loaded plan holds, unless the operator set GOGC or GOMEMLIMIT (theirs stand), and
// returns what puts the previous percent back.
func widenGC() (restore func()) { return widenGCFor(heapObjectBytes) }

// widenGCFor is widenGC with the heap read by heap, which reports 0 when it cannot
// tell; a test passes its own, since the test binary's heap is whatever the tests
// running beside it hold.
func widenGCFor(heap func() uint64) (restore func()) {
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if _, ok := os.LookupEnv(k); ok {
			return func() {}
		}
	}
	pct := gcPercentFor(heap())
	if pct == 100 {
		return func() {}
	}
	prev := debug.SetGCPercent(pct)
	return func() { debug.SetGCPercent(prev) }
}

// heapObjectBytes is the bytes in heap objects: the live ones and garbage not yet
// swept, so the percent errs toward Go's default. 0 when the runtime does not say.
func heapObjectBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
