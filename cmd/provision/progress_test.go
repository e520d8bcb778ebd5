package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"provision/providers"
	"provision/runner"
	"provision/state"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func TestProgressLine_CountsRateAndETA(t *testing.T) {
	p := &runner.Progress{}
	p.Total.Store(100)
	p.UpToDate.Store(10)
	v := newProgressView(p, nil, palette{})
	v.sample(t0)
	p.Done.Store(30)
	p.Failed.Store(2)
	p.Skipped.Store(3)
	p.Running.Store(4)
	p.Queued.Store(59) // includes the running ones
	p.Retries.Store(7)
	v.sample(t0.Add(8 * time.Second))
	got := v.progressLine()
	for _, want := range []string{"45/100 (45%)", "done=30", "up-to-date=10", "running=4", "queued=55", "failed=2", "skipped=3", "retries=7", "rate=4/s", "eta=14s"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}

// The rate is that of the last 30 s, not the average since the start.
func TestRateWindow_IsAMovingWindow(t *testing.T) {
	rw := rateWindow{span: 30 * time.Second}
	n := int64(0)
	for s := 0; s <= 120; s++ {
		if s > 60 {
			n += 10 // fast after a slow minute
		} else {
			n++
		}
		rw.add(t0.Add(time.Duration(s)*time.Second), n)
	}
	if r := rw.rate(); r < 9.9 || r > 10.1 {
		t.Fatalf("rate %.2f/s, want 10/s (the cumulative average would be %.1f)", r, float64(n)/120)
	}
	if len(rw.samples) > 32 {
		t.Fatalf("%d samples kept for a 30 s window of 1 s samples", len(rw.samples))
	}
}

// progressFixture is a run a third of the way through, with failures and doubt.
func progressFixture(pal palette) *progressView {
	p := &runner.Progress{}
	p.Total.Store(1017)
	p.Done.Store(340)
	p.Failed.Store(3)
	p.Skipped.Store(2)
	p.Running.Store(16)
	p.Queued.Store(688)
	p.Retries.Store(12)
	live := &liveStats{}
	for _, s := range []sectionStat{
		{name: "nx_systems", total: 200, done: 150, failed: 2, inDoubt: 1},
		{name: "nx_shares", total: 400, done: 100, skipped: 2},
		{name: "edge_cluster_labels", total: 300, done: 80, failed: 1},
		{name: "openvcloud_cloudspaces", total: 117, done: 10},
	} {
		s := s
		live.sections = append(live.sections, &s)
	}
	v := newProgressView(p, live, pal)
	v.win.add(t0, 0)
	v.win.add(t0.Add(20*time.Second), 343)
	return v
}

// The rendering at 80 and 160 columns (testdata/progress-*.golden): never wider
// than the terminal less one column, one line per section only when wide.
func TestProgressView_Lines_AtGivenWidths(t *testing.T) {
	for _, width := range []int{80, 160} {
		for _, colour := range []bool{false, true} {
			lines := progressFixture(palette{on: colour}).lines(width, 24)
			for _, l := range lines {
				if n := visibleLen(l); n > width-1 {
					t.Errorf("width %d: line of %d columns: %q", width, n, l)
				}
			}
			if colour {
				if !strings.Contains(strings.Join(lines, "\n"), sgrBRed+"failed 3"+sgrReset) {
					t.Errorf("width %d: failures not in red: %q", width, lines)
				}
				continue
			}
			got := strings.Join(lines, "\n") + "\n"
			golden := filepath.Join("testdata", "progress-"+map[int]string{80: "80", 160: "160"}[width]+".golden")
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, _ := os.ReadFile(golden)
			if got != string(want) {
				t.Errorf("width %d differs from %s (-update after checking):\n%s", width, golden, got)
			}
		}
	}
	if n := len(progressFixture(palette{}).lines(80, 24)); n != 1 {
		t.Errorf("80 columns: %d lines, want the totals alone", n)
	}
	if n := len(progressFixture(palette{}).lines(160, 24)); n != 5 {
		t.Errorf("160 columns: %d lines, want 4 sections and the totals", n)
	}
	if n := len(progressFixture(palette{}).lines(160, 6)); n != 4 {
		t.Errorf("160x6: %d lines, want 2 sections, a '… more' line and the totals", n)
	}
	// The endpoints' rates (branch rate's rateSuffix) get their own line above the totals.
	ve := progressFixture(palette{})
	ve.endpoints = func() string { return "nxcloud 7.7/s throttled=3, edge unlimited throttled=0" }
	for _, w := range []int{80, 160} {
		ls := ve.lines(w, 24)
		if len(ls) < 2 || !strings.HasPrefix(ls[len(ls)-2], "  endpoints: nxcloud 7.7/s") {
			t.Errorf("width %d: no endpoints line above the totals: %q", w, ls)
		}
		for _, l := range ls {
			if visibleLen(l) > w-1 {
				t.Errorf("width %d: %q", w, l)
			}
		}
	}
	if !strings.HasSuffix(ve.progressLine(), " | nxcloud 7.7/s throttled=3, edge unlimited throttled=0") {
		t.Errorf("plain line without the endpoints: %q", ve.progressLine())
	}
	for w := 20; w <= 200; w += 7 {
		for _, l := range progressFixture(palette{on: true}).lines(w, 24) {
			if visibleLen(l) > w-1 {
				t.Fatalf("width %d: %q", w, l)
			}
		}
	}
}

// On a terminal a log line clears the progress block, then the block is drawn
// again below it; each drawn line is cut to the width.
func TestConsole_LogLinesClearAndRedrawTheBlock(t *testing.T) {
	var buf bytes.Buffer
	c := &console{w: &buf, tty: true, size: func() (int, int) { return 20, 10 }}
	c.show([]string{"section a [####....] 1/2", "total 1/2"})
	first := buf.String()
	if first != "section a [####...…\ntotal 1/2" {
		t.Fatalf("drawn %q", first)
	}
	buf.Reset()
	c.Write([]byte("10:00:00 INF retrying task=x\n"))
	want := "\r\033[K\033[1A\r\033[K" + "10:00:00 INF retrying task=x\n" + first
	if buf.String() != want {
		t.Fatalf("got  %q\nwant %q", buf.String(), want)
	}
	buf.Reset()
	c.done()
	if buf.String() != "\r\033[K\033[1A\r\033[K" {
		t.Fatalf("done wrote %q", buf.String())
	}
	buf.Reset()
	c.Write([]byte("after\n"))
	if buf.String() != "after\n" {
		t.Fatalf("after done: %q", buf.String())
	}
	// Not a terminal: text passes as is.
	buf.Reset()
	plain := &console{w: &buf, size: func() (int, int) { return 20, 10 }}
	plain.show([]string{"x"})
	plain.Write([]byte("log\n"))
	if buf.String() != "log\n" {
		t.Fatalf("plain console wrote %q", buf.String())
	}
}

func TestRunProgress_PlainLinesWhenNotATerminal(t *testing.T) {
	p := &runner.Progress{}
	p.Total.Store(3)
	var out bytes.Buffer
	c := &console{w: &out, size: func() (int, int) { return 80, 24 }}
	ticks := make(chan time.Time)
	now := t0
	clock := func() time.Time { return now }
	stop := runProgress(newProgressView(p, nil, palette{}), c, ticks, clock, 10*time.Second)
	for i := 1; i <= 25; i++ { // 25 one-second ticks: lines at 1 s, 11 s and 21 s
		now = t0.Add(time.Duration(i) * time.Second)
		ticks <- now
	}
	stop()
	if n := strings.Count(out.String(), "progress: "); n != 3 || strings.Contains(out.String(), "\r") {
		t.Fatalf("want 3 plain lines, got %q", out.String())
	}
}

func TestLiveStats_CountsPerSectionFromEvents(t *testing.T) {
	tasks := []*providers.Task{
		{ID: "a", Kind: "s1"}, {ID: "b", Kind: "s1"}, {ID: "c", Kind: "s2"}, {ID: "d", Kind: "s2"},
	}
	g, err := runner.NewGraph(tasks)
	if err != nil {
		t.Fatal(err)
	}
	recs := map[string]*state.Record{"a": {ID: "a", Status: state.Done, Hash: tasks[0].Hash}, "d": {ID: "d", Status: state.Started}}
	ls := newLiveStats(g, nil, recs, nil)
	ls.observe(runner.Event{Type: runner.EventRetrying, Task: "b", MaybeApplied: true})
	ls.observe(runner.Event{Type: runner.EventFailed, Task: "c"})
	ls.observe(runner.Event{Type: runner.EventDone, Task: "d"})
	got := ls.snapshot()
	want := []sectionStat{{name: "s1", total: 2, upToDate: 1, inDoubt: 1}, {name: "s2", total: 2, done: 1, failed: 1}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	ls.observe(runner.Event{Type: runner.EventDone, Task: "b"})
	if s := ls.snapshot()[0]; s.inDoubt != 0 || s.done != 1 || s.finished() != 2 {
		t.Fatalf("after done: %+v", s)
	}
}

func TestPalette_OffWithNoColorOrWithoutATerminal(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if !colourAllowed(env(map[string]string{"TERM": "xterm"})) {
		t.Error("colour refused on a plain terminal")
	}
	if colourAllowed(env(map[string]string{"TERM": "xterm", "NO_COLOR": "1"})) || colourAllowed(env(map[string]string{"TERM": "dumb"})) {
		t.Error("colour allowed with NO_COLOR or TERM=dumb")
	}
	var buf bytes.Buffer
	if newPalette(&buf).on {
		t.Error("colour on for a buffer")
	}
	if got := (palette{}).verb(runner.Create, "create"); got != "create" {
		t.Errorf("off palette wrote %q", got)
	}
	if got := (palette{on: true}).verb(runner.Create, "create"); got != sgrGreen+"create"+sgrReset {
		t.Errorf("on palette wrote %q", got)
	}
}
