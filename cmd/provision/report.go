package main

// provision report PLAN --html FILE: one self-contained HTML file from the state
// (and an --events file): totals per section, failures with their errors, a
// histogram of task durations and a timeline.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var htmlFile, eventsFile string
	fs := newFlagSet("report", `report [flags] PLAN --html FILE

Writes one self-contained HTML file from the plan's state (read-only; no remote call,
no secret read): totals per section, failures with their errors, a histogram of task
durations and a timeline of finished tasks. With --events (the file of apply
--events), the timeline shows every event.`)
	c.register(fs, flagState|flagShard|flagSandboxState)
	c.secrets = plan.CheckSecrets
	fs.StringVar(&htmlFile, "html", "", "write the report to `FILE` (required)")
	fs.StringVar(&eventsFile, "events", "", "read task events from `FILE` (written by apply --events)")
	pos, err := parse(fs, args, stderr, "plan")
	if err != nil {
		return err
	}
	if htmlFile == "" {
		return cmdFlagErr("report", "--html FILE is required")
	}
	if err := c.checkStateFlag(); err != nil {
		return err
	}
	l, err := c.load(ctx, pos[0], stderr)
	if err != nil {
		return err
	}
	defer l.close()
	sr, err := c.readState(l)
	if err != nil {
		return err
	}
	var events []eventJSON
	if eventsFile != "" {
		if events, err = readEvents(eventsFile); err != nil {
			return err
		}
	}
	rd := buildReport(l, sr, events, time.Now())
	var buf bytes.Buffer
	if err := reportPage.Execute(&buf, rd); err != nil {
		return err
	}
	out := []byte(l.plan.Redactor.Redact(buf.String()))
	if err := os.WriteFile(htmlFile, out, 0o644); err != nil {
		return cmdFlagErr("report", "--html %s: %v", htmlFile, err)
	}
	fmt.Fprintf(stdout, "report of %s written to %s (%d tasks, %d failed)\n", l.plan.Name, htmlFile, rd.Total, len(rd.Failures))
	return nil
}

// readEvents reads an apply --events file; a bad line is an error naming it.
func readEvents(path string) ([]eventJSON, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, cmdFlagErr("report", "--events %s: %v", path, err)
	}
	defer f.Close()
	var out []eventJSON
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e eventJSON
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, withCode(ExitBadInput, fmt.Errorf("%s:%d: not an event line: %v", path, n, err))
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, withCode(ExitBadInput, fmt.Errorf("%s: %v", path, err))
	}
	return out, nil
}

type reportData struct {
	Plan, State, Generated string
	Total, Done, Failed    int
	InDoubt, NotStarted    int
	Sections               []reportSection
	Failures               []failure
	Histogram              []reportBar
	Timeline               []reportBar
	TimelineFrom           string
	TimelineTo             string
	TimelineWhat           string
}

type reportSection struct {
	Name                                          string
	Total, Done, Failed, InDoubt, NotStarted, Pct int
}

// reportBar is one bar of a chart: its label, count and height in pixels.
type reportBar struct {
	Label    string
	N        int
	X, H, Y  int
	W        int
	LabelPos int
}

var durationBuckets = []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute}

func buildReport(l *loaded, sr *stateRead, events []eventJSON, now time.Time) reportData {
	rd := reportData{Plan: l.plan.Name, State: sr.path, Generated: now.UTC().Format(time.RFC3339)}
	durations, finished := rd.tally(l.graph.Tasks, sr)
	rd.Histogram = durationHistogram(durations)
	rd.timeline(events, finished)
	return rd
}

// tally counts the tasks by status, in total and per section (in the order the
// sections first appear), and lists the failures by task ID. It returns the
// durations and finish times of the done tasks' last attempts.
func (rd *reportData) tally(tasks []*providers.Task, sr *stateRead) (durations []time.Duration, finished []time.Time) {
	bySec := map[string]*reportSection{}
	var order []string
	for _, t := range tasks {
		s := bySec[t.Kind]
		if s == nil {
			s = &reportSection{Name: t.Kind}
			bySec[t.Kind] = s
			order = append(order, t.Kind)
		}
		s.Total++
		rd.Total++
		r := sr.recs[t.ID]
		switch {
		case r == nil || r.Status == state.Pending:
			s.NotStarted++
			rd.NotStarted++
		case r.Status == state.Done:
			s.Done++
			rd.Done++
			if !r.StartedAt.IsZero() && !r.FinishedAt.IsZero() {
				durations = append(durations, r.FinishedAt.Sub(r.StartedAt))
				finished = append(finished, r.FinishedAt)
			}
		case r.Status == state.Started || r.MaybeApplied:
			s.InDoubt++
			rd.InDoubt++
		case r.Status == state.Failed:
			s.Failed++
			rd.Failed++
			rd.Failures = append(rd.Failures, failure{ID: t.ID, Attempts: r.Attempts, Error: r.LastError, FinishedAt: r.FinishedAt.UTC()})
		}
	}
	for _, k := range order {
		s := bySec[k]
		if s.Total > 0 {
			s.Pct = 100 * (s.Done + s.Failed) / s.Total
		}
		rd.Sections = append(rd.Sections, *s)
	}
	sort.Slice(rd.Failures, func(i, j int) bool { return rd.Failures[i].ID < rd.Failures[j].ID })
	return durations, finished
}

// durationHistogram charts the durations of done tasks' last attempts in
// durationBuckets.
func durationHistogram(durations []time.Duration) []reportBar {
	counts := make([]int, len(durationBuckets)+1)
	for _, d := range durations {
		i := sort.Search(len(durationBuckets), func(i int) bool { return d < durationBuckets[i] })
		counts[i]++
	}
	labels := []string{}
	for _, b := range durationBuckets {
		labels = append(labels, "<"+b.String())
	}
	labels = append(labels, "≥"+durationBuckets[len(durationBuckets)-1].String())
	return bars(labels, counts, 640, 120)
}

// timeline charts when things happened in 40 slices: the task events when there
// are some (--events), else the done tasks' finish times from the state.
func (rd *reportData) timeline(events []eventJSON, finished []time.Time) {
	var times []time.Time
	rd.TimelineWhat = "tasks finished (from the state)"
	if len(events) > 0 {
		rd.TimelineWhat = "task events (from --events)"
		for _, e := range events {
			times = append(times, e.Time)
		}
	} else {
		times = finished
	}
	if len(times) == 0 {
		return
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	from, to := times[0], times[len(times)-1]
	const slices = 40
	span := to.Sub(from)
	counts := make([]int, slices)
	for _, t := range times {
		i := 0
		if span > 0 {
			i = int(float64(slices-1) * float64(t.Sub(from)) / float64(span))
		}
		counts[i]++
	}
	tl := make([]string, slices)
	rd.Timeline = bars(tl, counts, 640, 120)
	rd.TimelineFrom, rd.TimelineTo = from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339)
}

// bars lays out a bar chart of w x h pixels.
func bars(labels []string, counts []int, w, h int) []reportBar {
	top := 1
	for _, c := range counts {
		top = max(top, c)
	}
	bw := w / max(len(counts), 1)
	out := make([]reportBar, len(counts))
	for i, c := range counts {
		bh := int(math.Round(float64(h-20) * float64(c) / float64(top)))
		out[i] = reportBar{Label: labels[i], N: c, X: i * bw, W: max(bw-2, 1), H: bh, Y: h - 16 - bh, LabelPos: i*bw + bw/2}
	}
	return out
}

var reportPage = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>provision report: {{.Plan}}</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
.sub { color: #666; margin-bottom: 16px; }
table { border-collapse: collapse; margin-bottom: 20px; }
td, th { padding: 3px 12px 3px 0; text-align: left; vertical-align: top; }
th { color: #555; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { width: 260px; height: 12px; background: #e4e4e4; border-radius: 3px; overflow: hidden; }
.fill { height: 12px; background: #2e9d4f; }
.fail { color: #c62828; font-weight: 600; }
.doubt { color: #b26a00; font-weight: 600; }
.err { font-family: ui-monospace, monospace; font-size: 12px; }
svg { background: #fafafa; border: 1px solid #ddd; }
svg text { font-size: 10px; fill: #555; }
</style>
</head>
<body>
<h1>provision report: {{.Plan}}</h1>
<div class="sub">state {{.State}} · generated {{.Generated}}</div>
<p id="totals">{{.Total}} tasks: {{.Done}} done, <span class="{{if .Failed}}fail{{end}}">{{.Failed}} failed</span>,
<span class="{{if .InDoubt}}doubt{{end}}">{{.InDoubt}} in doubt</span>, {{.NotStarted}} not started</p>
<h2>Sections</h2>
<table id="sections">
<tr><th>section</th><th></th><th class="num">tasks</th><th class="num">done</th><th class="num">failed</th><th class="num">in doubt</th><th class="num">not started</th></tr>
{{range .Sections}}<tr><td>{{.Name}}</td><td><div class="bar"><div class="fill" style="width: {{.Pct}}%"></div></div></td>
<td class="num">{{.Total}}</td><td class="num">{{.Done}}</td><td class="num{{if .Failed}} fail{{end}}">{{.Failed}}</td>
<td class="num{{if .InDoubt}} doubt{{end}}">{{.InDoubt}}</td><td class="num">{{.NotStarted}}</td></tr>
{{end}}</table>
<h2>Failures</h2>
<table id="failures">
{{range .Failures}}<tr><td class="fail">{{.ID}}</td><td>{{.Attempts}} attempt(s)</td><td class="err">{{.Error}}</td></tr>
{{else}}<tr><td>none</td></tr>
{{end}}</table>
<h2>Durations of done tasks (last attempt)</h2>
<svg id="histogram" width="640" height="120" viewBox="0 0 640 120">
{{range .Histogram}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="#1565c0"><title>{{.Label}}: {{.N}}</title></rect>
<text x="{{.LabelPos}}" y="116" text-anchor="middle">{{.Label}}</text>
{{end}}</svg>
<h2>Timeline: {{.TimelineWhat}}</h2>
{{if .Timeline}}<div class="sub">{{.TimelineFrom}} to {{.TimelineTo}}</div>
<svg id="timeline" width="640" height="120" viewBox="0 0 640 120">
{{range .Timeline}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="#2e9d4f"><title>{{.N}}</title></rect>
{{end}}</svg>{{else}}<p>nothing finished yet</p>{{end}}
</body>
</html>
`))
