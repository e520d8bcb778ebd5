package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"provision/runner"
)

// startProgress renders the runner's counters: a live line redrawn on a terminal,
// or a plain line every interval otherwise; extra, when given, adds to each line (the
// endpoints' rates). The returned func stops it and clears the live line.
func startProgress(p *runner.Progress, w io.Writer, tty bool, every time.Duration, extra ...func() string) func() {
	tick := every
	if tty {
		tick = 250 * time.Millisecond
	}
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case <-t.C:
				line := progressLine(p, time.Since(start))
				for _, f := range extra {
					line += f()
				}
				if tty {
					fmt.Fprint(w, "\r\033[K"+line)
				} else {
					fmt.Fprintln(w, "progress: "+line)
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func progressLine(p *runner.Progress, elapsed time.Duration) string {
	total := p.Total.Load()
	upToDate := p.UpToDate.Load()
	done := p.Done.Load()
	failed := p.Failed.Load()
	skipped := p.Skipped.Load()
	running := p.Running.Load()
	queued := p.Queued.Load() - running
	if queued < 0 {
		queued = 0
	}
	finished := upToDate + done + failed + skipped
	r := float64(done+failed) / elapsed.Seconds()
	eta := "-"
	if r > 0 {
		left := total - finished
		eta = time.Duration(float64(left) / r * float64(time.Second)).Round(time.Second).String()
	}
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(finished) / float64(total)
	}
	return fmt.Sprintf("%d/%d (%.0f%%) done=%d up-to-date=%d running=%d queued=%d failed=%d skipped=%d retries=%d rate=%.0f/s eta=%s",
		finished, total, pct, done, upToDate, running, queued, failed, skipped, p.Retries.Load(), r, eta)
}
