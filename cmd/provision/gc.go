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
func widenGC() (restore func()) {
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if _, ok := os.LookupEnv(k); ok {
			return func() {}
		}
	}
	// Objects in the heap: the live ones and garbage not yet swept, so the percent
	// errs toward Go's default.
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return func() {}
	}
	pct := gcPercentFor(s[0].Value.Uint64())
	if pct == 100 {
		return func() {}
	}
	prev := debug.SetGCPercent(pct)
	return func() { debug.SetGCPercent(prev) }
}
