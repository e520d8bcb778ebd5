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

// A run on a small heap widens the collector's percent and puts it back after; an
// operator's GOGC stands.
func TestWidenGC_SetsAndRestoresUnlessTheOperatorChose(t *testing.T) {
	percent := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	before := percent()
	t.Run("GOGC set", func(t *testing.T) {
		t.Setenv("GOGC", "100")
		restore := widenGC()
		if p := percent(); p != before {
			t.Errorf("GC percent %d with GOGC set, want it left at %d", p, before)
		}
		restore()
	})
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if _, ok := os.LookupEnv(k); ok {
			t.Skipf("%s is set in this environment", k)
		}
	}
	restore := widenGC() // the test binary's heap is far below gcHeadroom
	if p := percent(); p <= 100 || p > maxGCPercent {
		t.Errorf("GC percent %d on a small heap, want above 100 and at most %d", p, maxGCPercent)
	}
	restore()
	if p := percent(); p != before {
		t.Errorf("GC percent %d after restore, want %d", p, before)
	}
}
