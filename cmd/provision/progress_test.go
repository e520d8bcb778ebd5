package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"provision/runner"
)

func TestProgressLine_CountsRateAndETA(t *testing.T) {
	p := &runner.Progress{}
	p.Total.Store(100)
	p.UpToDate.Store(10)
	p.Done.Store(30)
	p.Failed.Store(2)
	p.Skipped.Store(3)
	p.Running.Store(4)
	p.Queued.Store(59) // includes the running ones
	p.Retries.Store(7)
	got := progressLine(p, 8*time.Second)
	for _, want := range []string{"45/100 (45%)", "done=30", "up-to-date=10", "running=4", "queued=55", "failed=2", "skipped=3", "retries=7", "rate=4/s", "eta=14s"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}

func TestStartProgress_PlainLinesWhenNotATerminal(t *testing.T) {
	p := &runner.Progress{}
	p.Total.Store(3)
	var buf lockedWriter
	var out bytes.Buffer
	buf.w = &out
	stop := startProgress(p, &buf, false, 20*time.Millisecond)
	time.Sleep(70 * time.Millisecond)
	stop()
	buf.mu.Lock()
	defer buf.mu.Unlock()
	lines := strings.Count(out.String(), "progress: ")
	if lines < 2 || strings.Contains(out.String(), "\r") {
		t.Fatalf("want plain periodic lines, got %q", out.String())
	}
}
