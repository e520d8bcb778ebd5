package main

import "testing"

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
