package main

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestGCPercentFor_SmallHeapsGetHeadroomLargeOnesGosDefault(t *testing.T) {
	for _, tc := range []struct {
		heap uint64
		want int
	}{
		{0, 100},                // unknown: Go's default
		{1 << 20, maxGCPercent}, // 1 MB: capped
		{16 << 20, 400},         // 16 MB: 64 MB of growth
		{32 << 20, 200},         // 32 MB: 64 MB of growth
		{64 << 20, 100},         // the headroom itself: default
		{1 << 30, 100},          // a large run: default, never less
	} {
		if got := gcPercentFor(tc.heap); got != tc.want {
			t.Errorf("gcPercentFor(%d MB) = %d, want %d", tc.heap>>20, got, tc.want)
		}
	}
}

// A run on a small heap widens the collector's percent and puts it back after; a
// large one keeps Go's default; an operator's GOGC or GOMEMLIMIT stands.
func TestWidenGC_SetsAndRestoresUnlessTheOperatorChose(t *testing.T) {
	percent := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	heapOf := func(n uint64) func() uint64 { return func() uint64 { return n } }
	before := percent()
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(k+" set", func(t *testing.T) {
			t.Setenv(k, "100")
			restore := widenGCFor(heapOf(1 << 20))
			if p := percent(); p != before {
				t.Errorf("GC percent %d with %s set, want it left at %d", p, k, before)
			}
			restore()
		})
	}
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if _, ok := os.LookupEnv(k); ok {
			t.Skipf("%s is set in this environment", k)
		}
	}
	for _, tc := range []struct {
		heap uint64
		want int
	}{{16 << 20, 400}, {32 << 20, 200}, {1 << 30, before}} {
		restore := widenGCFor(heapOf(tc.heap))
		if p := percent(); p != tc.want {
			t.Errorf("GC percent %d on a %d MB heap, want %d", p, tc.heap>>20, tc.want)
		}
		restore()
		if p := percent(); p != before {
			t.Errorf("GC percent %d after restore, want %d", p, before)
		}
	}
	if heapObjectBytes() == 0 {
		t.Error("heapObjectBytes = 0: the runtime's heap metric is not read")
	}
}
