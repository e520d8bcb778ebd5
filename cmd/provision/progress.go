package main

// The live display of a run: a console that owns stderr (log lines and the progress
// block), per-section counters fed by the runner's events, a moving-window rate,
// and the rendering of it all at the terminal's width.

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"provision/runner"
	"provision/state"
)

// console is the one writer of stderr during a run. Log lines and the progress
// block share it: on a terminal, each log line clears the block, is written, and
// the block is drawn again under it, so that neither overwrites the other. Safe for
// concurrent use.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	size  func() (width, height int) // the terminal's size (tty)
	block []string                   // the progress lines to keep on screen
	drawn int                        // how many of them are on screen
}

func newConsole(w io.Writer) *console {
	c := &console{w: w, tty: isTerminal(w), size: func() (int, int) { return 80, 24 }}
	if c.tty {
		fd := int(w.(interface{ Fd() uintptr }).Fd())
		c.size = func() (int, int) {
			wd, ht, err := term.GetSize(fd)
			if err != nil || wd <= 0 {
				return 80, 24
			}
			return wd, ht
		}
	}
	return c
}

// Write writes a log line (or any text) above the progress block.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
	n, err := c.w.Write(p)
	c.drawLocked()
	return n, err
}

// Fd lets isTerminal see the terminal behind the console.
func (c *console) Fd() uintptr {
	if f, ok := c.w.(interface{ Fd() uintptr }); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

// show replaces the progress block (a terminal only).
func (c *console) show(lines []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
	c.block = lines
	c.drawLocked()
}

// done clears the progress block for good.
func (c *console) done() { c.show(nil) }

func (c *console) clearLocked() {
	if !c.tty || c.drawn == 0 {
		return
	}
	s := "\r\033[K" + strings.Repeat("\033[1A\r\033[K", c.drawn-1)
	io.WriteString(c.w, s)
	c.drawn = 0
}

// drawLocked draws the block, each line cut to the terminal's width (less one
// column, so that no terminal wraps it), the cursor left at the end of the last.
func (c *console) drawLocked() {
	if !c.tty || len(c.block) == 0 {
		return
	}
	w, _ := c.size()
	var b strings.Builder
	for i, l := range c.block {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(fit(l, w-1))
	}
	io.WriteString(c.w, b.String())
	c.drawn = len(c.block)
}

// visibleLen is the width of s on a terminal: runes, less SGR escape sequences.
func visibleLen(s string) int {
	n, esc := 0, false
	for _, r := range s {
		switch {
		case esc:
			if r >= '@' && r <= '~' && r != '[' {
				esc = false
			}
		case r == '\033':
			esc = true
		default:
			n++
		}
	}
	return n
}

// fit cuts s to at most w visible columns, keeping escape sequences whole and
// resetting colour when it cuts.
func fit(s string, w int) string {
	if visibleLen(s) <= w {
		return s
	}
	if w < 1 {
		return ""
	}
	var b strings.Builder
	n, esc, coloured := 0, false, false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case esc:
			if r >= '@' && r <= '~' && r != '[' {
				esc = false
			}
		case r == '\033':
			esc, coloured = true, true
		default:
			if n == w-1 {
				b.WriteString("…")
				if coloured {
					b.WriteString(sgrReset)
				}
				return b.String()
			}
			n++
		}
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

// sectionStat counts one plan section's tasks in a run.
type sectionStat struct {
	name                                   string
	total, upToDate, done, failed, skipped int
	inDoubt                                int
}

func (s *sectionStat) finished() int { return s.upToDate + s.done + s.failed + s.skipped }

// liveStats follows a run per section, from the runner's events. Safe for
// concurrent use (events come from the coordinator, reads from the renderer).
type liveStats struct {
	mu       sync.Mutex
	sections []*sectionStat
	byName   map[string]*sectionStat
	task     map[string]*sectionStat
	doubt    map[string]bool // tasks in doubt now
}

// newLiveStats counts the selected tasks of g per section: those the run skips as
// up to date (done with this spec and not forced), and those already in doubt.
func newLiveStats(g *runner.Graph, sel map[int32]bool, recs map[string]*state.Record, force map[string]bool) *liveStats {
	ls := &liveStats{byName: map[string]*sectionStat{}, task: map[string]*sectionStat{}, doubt: map[string]bool{}}
	for i, t := range g.Tasks {
		if sel != nil && !sel[int32(i)] {
			continue
		}
		s := ls.byName[t.Kind]
		if s == nil {
			s = &sectionStat{name: t.Kind}
			ls.byName[t.Kind] = s
			ls.sections = append(ls.sections, s)
		}
		s.total++
		ls.task[t.ID] = s
		// The runner decides the same way (runner.Decide): the counts match the run.
		switch d := runner.Decide(t.ID, t.Kind, t.Hash, recs[t.ID]); {
		case !d.Runs(force[t.ID]):
			s.upToDate++
		case d.InDoubt:
			ls.doubt[t.ID] = true
			s.inDoubt++
		}
	}
	return ls
}

// observe counts one runner event.
func (ls *liveStats) observe(e runner.Event) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	s := ls.task[e.Task]
	if s == nil {
		return
	}
	setDoubt := func(on bool) {
		if on != ls.doubt[e.Task] {
			if on {
				s.inDoubt++
			} else {
				s.inDoubt--
			}
			ls.doubt[e.Task] = on
		}
	}
	switch e.Type {
	case runner.EventDone:
		s.done++
		setDoubt(false)
	case runner.EventFailed:
		s.failed++
		setDoubt(ls.doubt[e.Task] || e.MaybeApplied)
	case runner.EventRetrying:
		setDoubt(ls.doubt[e.Task] || e.MaybeApplied)
	case runner.EventSkipped:
		s.skipped++
	}
}

// snapshot copies the sections' counts.
func (ls *liveStats) snapshot() []sectionStat {
	if ls == nil {
		return nil
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := make([]sectionStat, len(ls.sections))
	for i, s := range ls.sections {
		out[i] = *s
	}
	return out
}

// rateWindow is the rate of finished attempts over the last span (a moving
// window), so that a slow start or a burst of faults fades out of the rate and ETA.
type rateWindow struct {
	span    time.Duration
	samples []rateSample
}

type rateSample struct {
	at time.Time
	n  int64
}

func (rw *rateWindow) add(at time.Time, n int64) {
	rw.samples = append(rw.samples, rateSample{at, n})
	// Keep one sample at or before the window's start.
	cut := 0
	for cut+1 < len(rw.samples) && at.Sub(rw.samples[cut+1].at) >= rw.span {
		cut++
	}
	rw.samples = rw.samples[cut:]
}

// rate is per second over the window (0 until two samples).
func (rw *rateWindow) rate() float64 {
	if len(rw.samples) < 2 {
		return 0
	}
	a, b := rw.samples[0], rw.samples[len(rw.samples)-1]
	d := b.at.Sub(a.at).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(b.n-a.n) / d
}

// progressView renders a run's progress.
type progressView struct {
	p    *runner.Progress
	live *liveStats // per-section counts; nil: totals only
	win  rateWindow
	pal  palette
	// endpoints, when set, tells the endpoints' rates in force and throttled
	// answers (rateSuffix without its separator).
	endpoints func() string
}

// rateSpan is the moving window of the rate and ETA.
const rateSpan = 30 * time.Second

func newProgressView(p *runner.Progress, live *liveStats, pal palette) *progressView {
	return &progressView{p: p, live: live, pal: pal, win: rateWindow{span: rateSpan}}
}

// sample records the count of finished attempts at a moment.
func (v *progressView) sample(now time.Time) {
	v.win.add(now, v.p.Done.Load()+v.p.Failed.Load())
}

// totals are the run's counts at one moment.
type totals struct {
	total, upToDate, done, failed, skipped, running, queued, retries, inDoubt, throttled int64
	rate                                                                                 float64
	eta                                                                                  string
}

func (v *progressView) totals(sections []sectionStat) totals {
	p := v.p
	t := totals{total: p.Total.Load(), upToDate: p.UpToDate.Load(), done: p.Done.Load(), failed: p.Failed.Load(),
		skipped: p.Skipped.Load(), running: p.Running.Load(), retries: p.Retries.Load(), throttled: p.Throttled.Load()}
	t.queued = max(p.Queued.Load()-t.running, 0)
	for _, s := range sections {
		t.inDoubt += int64(s.inDoubt)
	}
	t.rate = v.win.rate()
	t.eta = "-"
	if left := t.total - t.upToDate - t.done - t.failed - t.skipped; t.rate > 0 {
		t.eta = (time.Duration(float64(left) / t.rate * float64(time.Second))).Round(time.Second).String()
	}
	return t
}

func (t totals) finished() int64 { return t.upToDate + t.done + t.failed + t.skipped }

// progressLine is the plain progress line (stderr not a terminal).
func (v *progressView) progressLine() string {
	t := v.totals(v.live.snapshot())
	pct := 0.0
	if t.total > 0 {
		pct = 100 * float64(t.finished()) / float64(t.total)
	}
	line := fmt.Sprintf("%d/%d (%.0f%%) done=%d up-to-date=%d running=%d queued=%d failed=%d in-doubt=%d skipped=%d retries=%d throttled=%d rate=%.0f/s eta=%s",
		t.finished(), t.total, pct, t.done, t.upToDate, t.running, t.queued, t.failed, t.inDoubt, t.skipped, t.retries, t.throttled, t.rate, t.eta)
	if e := v.endpointText(); e != "" {
		line += " | " + e
	}
	return line
}

// wideColumns is the width from which each section gets its own line.
const wideColumns = 100

// lines renders the live block for a terminal of width x height: on a wide one, a
// line per section (bar of finished/total, failed, in doubt) above the totals;
// otherwise the totals alone. No line is wider than width-1.
func (v *progressView) lines(width, height int) []string {
	secs := v.live.snapshot()
	t := v.totals(secs)
	var out []string
	if width >= wideColumns && len(secs) > 0 {
		maxSecs := max(height-4, 1)
		nameW := 8
		for _, s := range secs {
			nameW = max(nameW, len(s.name))
		}
		nameW = min(nameW, 24)
		numW := len(fmt.Sprint(secs[0].total))
		for _, s := range secs {
			numW = max(numW, len(fmt.Sprint(s.total)))
		}
		for i, s := range secs {
			if i == maxSecs && len(secs) > maxSecs {
				out = append(out, fmt.Sprintf("  … %d more sections", len(secs)-maxSecs))
				break
			}
			tail := fmt.Sprintf("  %*d/%-*d  %s  %s", numW, s.finished(), numW, s.total,
				v.count(s.failed, "failed", v.pal.fail), v.count(s.inDoubt, "in doubt", v.pal.doubt))
			barW := min(40, width-1-2-nameW-2-visibleLen(tail))
			out = append(out, fmt.Sprintf("  %-*s  %s%s", nameW, fit(s.name, nameW), v.bar(s.finished(), s.total, barW), tail))
		}
	}
	// The endpoints' rates in force and throttled answers, between the sections and
	// the totals.
	if e := v.endpointText(); e != "" {
		out = append(out, fit("  endpoints: "+e, width-1))
	}
	out = append(out, v.totalsLine(t, width-1))
	return out
}

func (v *progressView) endpointText() string {
	if v.endpoints == nil {
		return ""
	}
	return v.endpoints()
}

func (v *progressView) count(n int, what string, colour func(string) string) string {
	s := fmt.Sprintf("%s %d", what, n)
	if n > 0 {
		return colour(s)
	}
	return s
}

// bar is a bar of w columns, done of total filled ("" when w < 5).
func (v *progressView) bar(done, total, w int) string {
	if w < 5 {
		return ""
	}
	in := w - 2
	fill := 0
	if total > 0 {
		fill = in * done / total
	}
	return "[" + v.pal.done(strings.Repeat("#", fill)) + strings.Repeat(".", in-fill) + "]"
}

// totalsLine fits the run's totals into w columns, dropping the least needed
// fields first and giving a bar what room is left.
func (v *progressView) totalsLine(t totals, w int) string {
	pct := 0.0
	if t.total > 0 {
		pct = 100 * float64(t.finished()) / float64(t.total)
	}
	type field struct {
		text string
		keep int // lower goes first
	}
	fields := []field{
		{fmt.Sprintf("%d/%d %.0f%%", t.finished(), t.total, pct), 9},
		{fmt.Sprintf("done %d", t.done), 5},
		{fmt.Sprintf("up to date %d", t.upToDate), 1},
		{v.count(int(t.failed), "failed", v.pal.fail), 8},
		{v.count(int(t.inDoubt), "in doubt", v.pal.doubt), 7},
		{fmt.Sprintf("skipped %d", t.skipped), 3},
		{fmt.Sprintf("running %d", t.running), 4},
		{fmt.Sprintf("queued %d", t.queued), 2},
		{fmt.Sprintf("retries %d", t.retries), 3},
		{fmt.Sprintf("throttled %d", t.throttled), 2},
		{fmt.Sprintf("%.1f/s", t.rate), 6},
		{"eta " + t.eta, 6},
	}
	join := func() string {
		var parts []string
		for _, f := range fields {
			parts = append(parts, f.text)
		}
		return strings.Join(parts, "  ")
	}
	for visibleLen(join()) > w && len(fields) > 1 {
		low := 0
		for i, f := range fields {
			if f.keep < fields[low].keep {
				low = i
			}
		}
		fields = append(fields[:low], fields[low+1:]...)
	}
	line := join()
	if room := w - visibleLen(line) - 1; room >= 12 {
		line = v.bar(int(t.finished()), int(t.total), min(room, 40)) + " " + line
	}
	return fit(line, w)
}

// startProgress shows the progress of a run on the console: redrawn every 250 ms on
// a terminal, or a plain line every interval otherwise. The returned func stops it
// and clears the live block.
func startProgress(v *progressView, c *console, every time.Duration) func() {
	tick := every
	if c.tty {
		tick = 250 * time.Millisecond
	}
	sampleEvery := min(tick, time.Second)
	t := time.NewTicker(sampleEvery)
	stop := runProgress(v, c, t.C, time.Now, tick)
	return func() {
		t.Stop()
		stop()
	}
}

// runProgress is startProgress on a given tick channel (each tick carries its time)
// and clock for the first sample (tests). It samples the rate on every tick and
// draws every `every`.
func runProgress(v *progressView, c *console, ticks <-chan time.Time, now func() time.Time, every time.Duration) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	v.sample(now())
	go func() {
		defer wg.Done()
		var last time.Time
		for {
			select {
			case <-done:
				if c.tty {
					c.done()
				}
				return
			case at := <-ticks:
				v.sample(at)
				if !last.IsZero() && at.Sub(last) < every {
					continue
				}
				last = at
				if c.tty {
					w, h := c.size()
					c.show(v.lines(w, h))
				} else {
					c.Write([]byte("progress: " + v.progressLine() + "\n"))
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
