package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/runner"
	"provision/state"
)

// benchTasks is the size of the generated plan: half "systems", half "shares" that
// each depend on their system (the shape of a real rollout).
const benchTasks = 100_000

const benchPlan = `version: 1
name: bench
milestones:
  items:
    - name: sys-${row.value}
      foreach: {range: {from: 1, to: %d}}
      note: system ${row.value}
    - name: share-${row.value}
      foreach: {range: {from: 1, to: %d}}
      depends_on: ["sys-${row.value}"]
      note: share of system ${row.value}
`

func writeBenchPlan(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	p := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(benchPlan, benchTasks/2, benchTasks/2)), 0o600); err != nil {
		b.Fatal(err)
	}
	return p
}

// peakRSS reports the process's peak resident set (VmHWM) in MB.
func peakRSS(b *testing.B) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			b.ReportMetric(float64(kb)/1024, "peak-RSS-MB")
		}
	}
}

func benchLoad(b *testing.B, path string) *loaded {
	b.Helper()
	var c common
	l, err := c.load(context.Background(), path, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	if l.graph.Len() != benchTasks {
		b.Fatalf("tasks = %d", l.graph.Len())
	}
	return l
}

// BenchmarkPipeline_ExpandValidate100k: parse, expand, build and check the graph.
func BenchmarkPipeline_ExpandValidate100k(b *testing.B) {
	path := writeBenchPlan(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchLoad(b, path)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/plan")
	peakRSS(b)
}

func benchApply(b *testing.B, parallel int) {
	path := writeBenchPlan(b)
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		l := benchLoad(b, path)
		st, err := state.Open(filepath.Join(b.TempDir(), "apply.db"), state.Options{PlanName: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := runner.Run(context.Background(), l.graph, st, runner.Options{Parallel: parallel, Log: zerolog.Nop(), Redactor: l.plan.Redactor})
		total += time.Since(start)
		if err != nil || res.Applied != benchTasks {
			b.Fatalf("res=%+v err=%v", res, err)
		}
		b.StopTimer()
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(benchTasks*b.N)/total.Seconds(), "tasks/s")
	peakRSS(b)
}

// BenchmarkPipeline_Apply100k: every task's intent and result durable (fsync'd,
// group-committed), in-process no-op provider.
func BenchmarkPipeline_Apply100k_Parallel16(b *testing.B)  { benchApply(b, 16) }
func BenchmarkPipeline_Apply100k_Parallel256(b *testing.B) { benchApply(b, 256) }

// doneState applies the plan once and returns the state path.
func doneState(b *testing.B, path string) string {
	b.Helper()
	l := benchLoad(b, path)
	sp := filepath.Join(filepath.Dir(path), ".provision", "bench.db")
	st, err := state.Open(sp, state.Options{PlanName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if res, err := runner.Run(context.Background(), l.graph, st, runner.Options{Parallel: 256, Log: zerolog.Nop()}); err != nil || !res.OK() {
		b.Fatalf("res=%+v err=%v", res, err)
	}
	return sp
}

// BenchmarkPipeline_Resume100kDone: rerun of a fully done plan: load the plan and the
// state, skip everything (what an operator waits for on a rerun).
func BenchmarkPipeline_Resume100kDone(b *testing.B) {
	path := writeBenchPlan(b)
	sp := doneState(b, path)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l := benchLoad(b, path)
		st, err := state.Open(sp, state.Options{PlanName: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		res, err := runner.Run(context.Background(), l.graph, st, runner.Options{Parallel: 16, Log: zerolog.Nop()})
		st.Close()
		if err != nil || res.UpToDate != benchTasks || res.Applied != 0 {
			b.Fatalf("res=%+v err=%v", res, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/resume")
	peakRSS(b)
}

// BenchmarkPipeline_DryRun100kDone: `provision plan` over a fully done state.
func BenchmarkPipeline_DryRun100kDone(b *testing.B) {
	path := writeBenchPlan(b)
	doneState(b, path)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var c common
		if err := dryRunPlan(context.Background(), &c, path, planOpts{}, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/dry-run")
	peakRSS(b)
}
