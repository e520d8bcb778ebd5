package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
	"provision/runner"
	"provision/state"
)

func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlagSet("validate", "validate [flags] PLAN\n\nChecks the plan (syntax, fields, references, cycles, expansion) without any remote call\nor state access. Every problem is listed with its position.")
	c.register(fs, 0)
	c.secrets = plan.CheckSecrets
	pos, err := parse(fs, args, stderr, "plan")
	if err != nil {
		return err
	}
	l, err := c.load(ctx, pos[0], stderr)
	if err != nil {
		return err
	}
	defer l.close()
	fmt.Fprintf(stdout, "plan %s is valid: %d items, %d tasks, %d endpoints\n", l.plan.Name, l.items, l.graph.Len(), len(l.plan.Endpoints))
	return nil
}

func cmdGraph(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlagSet("graph", "graph [flags] PLAN > plan.dot\n\nPrints the task graph in Graphviz DOT form (edges point from a task to what it depends on).")
	c.register(fs, flagShard)
	c.secrets = plan.CheckSecrets
	pos, err := parse(fs, args, stderr, "plan")
	if err != nil {
		return err
	}
	l, err := c.load(ctx, pos[0], stderr)
	if err != nil {
		return err
	}
	defer l.close()
	_, err = io.WriteString(stdout, l.graph.DOT(l.plan.Name))
	return err
}

// dryRun is the JSON form of `provision plan`.
type dryRun struct {
	SchemaVersion int                `json:"schema_version"`
	Plan          string             `json:"plan"`
	State         string             `json:"state"`
	Tasks         []runner.Decision  `json:"tasks"`
	Totals        runner.Totals      `json:"totals"`
	ByKind        map[string]*counts `json:"by_kind"`
	// Changes counts the tasks a run would change (create, update, retry, remove).
	Changes int `json:"changes"`
	// Drifted lists done tasks whose objects differ from the plan (--refresh).
	Drifted []string `json:"drifted"`
}

type counts struct {
	Create int `json:"create"`
	Adopt  int `json:"adopt"`
	Update int `json:"update"`
	Skip   int `json:"skip"`
	Retry  int `json:"retry"`
	Remove int `json:"remove"`
}

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var po planOpts
	var asJSON, summary, destroy, includeAdopted, showSkips bool
	var only string
	fs := newFlagSet("plan", "plan [flags] PLAN\n\nDry run: lists, per task, create / update / skip (done) / retry (failed or in doubt)\nwith the reason, and the totals. No remote change, nothing written to the state; with\n--probe, read-only calls report which objects already exist remotely.")
	c.register(fs, flagState|flagShard|flagSandbox|flagFaults)
	fs.BoolVar(&c.probe, "probe", false, "ask the APIs (read-only) whether each object to create or retry exists already")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.BoolVar(&summary, "summary", false, "print only the totals")
	fs.BoolVar(&showSkips, "show-skips", false, "list the tasks that are done and unchanged too (by default they are counted per section)")
	fs.StringVar(&only, "only", "", "limit to tasks matching `PATTERNS` (comma-separated globs as in depends_on: * and ? stop at a slash, [abc] a class; an item's pattern also selects its sub-tasks) and what they depend on")
	fs.BoolVar(&destroy, "destroy", false, "preview provision destroy: what would be deleted and what stays")
	fs.BoolVar(&includeAdopted, "include-adopted", false, "with --destroy: as destroy --include-adopted")
	fs.BoolVar(&c.refresh, "refresh", false, "re-read done objects (read-only) and show what differs from the plan, field by field")
	fs.StringVar(&po.out, "out", "", "save the decided actions to `FILE`; provision apply FILE applies exactly them, or refuses if anything changed")
	fs.BoolVar(&po.exitCode, "exit-code", false, "exit 4 when there are changes (create, update, retry, remove), 0 when there are none")
	pos, err := parse(fs, args, stderr, "plan")
	if err != nil {
		return err
	}
	if destroy {
		return previewDestroy(ctx, &c, pos[0], only, includeAdopted, asJSON, stdout, stderr)
	}
	po.only, po.asJSON, po.summary, po.showSkips = only, asJSON, summary, showSkips
	return dryRunPlan(ctx, &c, pos[0], po, stdout, stderr)
}

// probe asks a task's provider, read-only, whether its object exists already, and
// says so in a note for the decision's reason.
func probe(ctx context.Context, t *providers.Task, recs map[string]*state.Record, red *plan.Redactor) (exists bool, note string) {
	p, ok := t.Action.(providers.Prober)
	if !ok {
		return false, ""
	}
	exists, detail, err := p.Probe(ctx, execFor(t, recs, red))
	switch {
	case err != nil:
		return false, "; remote state unknown: " + err.Error()
	case exists:
		return true, "; exists remotely: " + detail
	case detail != "":
		return false, "; not found remotely (" + detail + ")"
	}
	return false, "; not found remotely"
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// applyFlags are apply's flags.
type applyFlags struct {
	c                          common
	o                          runner.Options
	dry, asJSON, prune, yes    bool
	only, eventsFile, uiListen string
	progressEvery              time.Duration
}

func cmdApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var a applyFlags
	fs := newFlagSet("apply", `apply [flags] PLAN
       provision apply [flags] SAVED-PLAN   (from provision plan --out: exactly that, or nothing)

Runs the plan. Every task's intent is recorded in the state file before its remote
change and its result after, so rerunning the same command resumes: done tasks are
skipped, failed and in-doubt ones run again (in-doubt ones look the object up first),
changed ones are updated. First SIGINT/SIGTERM: no new tasks, in-flight ones finish
(--grace), exit 3; a second signal exits at once.

Secret outputs (auth keys) are stored encrypted when PROVISION_STATE_KEY is set
(32 bytes base64/hex: head -c32 /dev/urandom | base64; or a passphrase of at least
16 characters), and not stored otherwise.`)
	a.c.register(fs, flagState|flagShard|flagLog|flagSandbox|flagFaults)
	registerRunFlags(fs, &a.o, &a.progressEvery)
	fs.BoolVar(&a.c.retarget, "retarget", false, "record the plan's endpoints as this state's target where they differ from the recorded ones (the same systems under a new address)")
	fs.StringVar(&a.only, "only", "", "run only tasks matching `PATTERNS` (comma-separated globs as in depends_on: * and ? stop at a slash, [abc] a class; an item's pattern also selects its sub-tasks) and what they depend on")
	fs.BoolVar(&a.prune, "prune", false, "also delete the objects of tasks the plan no longer lists (reverse dependency order; adopted objects stay)")
	fs.BoolVar(&a.dry, "dry-run", false, "same as `provision plan`")
	fs.BoolVar(&a.asJSON, "json", false, "print the final report (or the dry run) as JSON")
	fs.BoolVar(&a.c.refresh, "refresh", false, "re-read done objects first and put back what changed outside provision (drift)")
	fs.BoolVar(&a.yes, "yes", false, "do not ask for confirmation on a terminal")
	fs.StringVar(&a.uiListen, "ui", "", "serve a read-only live page of the run at `ADDR` (a port alone, :8701, is served on loopback only)")
	fs.StringVar(&a.eventsFile, "events", "", "append one JSON line per task event (started, retrying, done, failed, skipped) to `FILE` (docs/json.md)")
	pos, err := parse(fs, args, stderr, "plan")
	if err != nil {
		return err
	}
	saved, err := readSavedPlan(pos[0])
	if err != nil {
		return err
	}
	planPath, savedPath := pos[0], ""
	if saved != nil {
		if a.only != "" || a.c.refresh || a.dry {
			return withCode(ExitBadInput, fmt.Errorf("apply %s: a saved plan fixes --only and --refresh; give them to plan --out instead (--dry-run: provision plan)", pos[0]))
		}
		savedPath = pos[0]
		planPath, a.only = saved.PlanFile, saved.Only
	}
	if a.dry {
		return dryRunPlan(ctx, &a.c, planPath, planOpts{only: a.only, asJSON: a.asJSON}, stdout, stderr)
	}
	if err := checkRunFlags("apply", a.o, a.progressEvery); err != nil {
		return err
	}
	if err := a.c.checkStateFlag(); err != nil {
		return err
	}
	return a.run(ctx, planPath, saved, savedPath, stdout, stderr)
}

// run is an apply after its flags are checked: load the plan and the state, decide
// what to force and confirm, run, prune, report.
func (a *applyFlags) run(ctx context.Context, planPath string, saved *savedPlan, savedPath string, stdout, stderr io.Writer) error {
	c, o := &a.c, &a.o
	o.Only = splitList(a.only)
	l, err := c.load(ctx, planPath, stderr)
	if err != nil {
		return err
	}
	defer l.close()
	red := l.plan.Redactor
	// Logs (from every worker) and the progress block share stderr: the console
	// owns both.
	con := newConsole(stderr)
	stderr = con
	log, err := c.logger(stderr, red)
	if err != nil {
		return err
	}
	o.Log = log
	o.Redactor = red
	o.Progress = &runner.Progress{}
	sp := c.statePathFor(l.plan)
	st, err := c.openState(sp, l, false)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, m := range st.Warnings() {
		log.Warn().Msg(m)
	}
	if l.sandbox != nil {
		log.Info().Str("urls", l.sandbox.Describe()).Msg("sandbox: fake vendor APIs started in-process")
	}
	log.Info().Str("plan", l.plan.Name).Int("tasks", l.graph.Len()).Str("state", sp).Int("parallel", o.Parallel).Msg("apply")
	// Every endpoint client reports its rate and throttled answers here.
	meters := rest.NewMeters()
	ctx = rest.WithMeters(ctx, meters)
	rates := func() []rest.RateStats { return endpointRates(meters, l.plan) }
	if _, err := runner.ForgetDestroyed(st); err != nil {
		return withCode(ExitBadInput, stateError(sp, err))
	}
	recs, err := st.Load()
	if err != nil {
		return withCode(ExitBadInput, stateError(sp, err))
	}
	runner.RegisterSecrets(red, recs)
	if o.Force, err = a.preflight(ctx, l, st, sp, recs, saved, savedPath, stderr); err != nil {
		return err
	}
	removed := removedIDs(l.graph, recs)
	if len(removed) > 0 && !a.prune {
		log.Warn().Int("tasks", len(removed)).Str("ids", joinIDs(removed, 10)).Msg("removed from the plan: left alone (provision plan lists them; apply --prune deletes them)")
	}
	sel, err := l.graph.Select(o.Only)
	if err != nil {
		return withCode(ExitBadInput, err)
	}
	live := newLiveStats(l.graph, sel, recs, o.Force)
	events, page, closeEvents, err := a.eventSinks(l, o.Progress, live, rates, stderr)
	defer closeEvents()
	if err != nil {
		return err
	}
	o.Events = events
	view := newProgressView(o.Progress, live, newPalette(con))
	view.endpoints = func() string { return strings.TrimPrefix(rateSuffix(rates()), " | ") }
	stopProgress := startProgress(view, con, a.progressEvery)
	restoreGC := widenGC()
	res, err := runner.Run(ctx, l.graph, st, *o)
	restoreGC()
	stopProgress()
	if page != nil {
		page.finish()
	}
	var pruned *runner.Result
	var kept []keptLine
	if err == nil && a.prune && len(removed) > 0 && !res.Interrupted {
		pruned, kept, err = runDeletes(ctx, l, st, removed, false, true, *o, stderr, a.progressEvery)
	}
	if cerr := st.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close state: %w", cerr)
	}
	rep := applyReport{Plan: l.plan.Name, State: sp, Result: res}
	if !a.prune {
		rep.Removed = removed
	} else if pruned != nil {
		rep.Pruned = &destroyReport{Result: pruned, Kept: kept}
	}
	return a.report(stdout, l, &rep, rates, err)
}

// report prints an apply's report and returns its exit: 1 with the error that
// stopped the run, 3 when interrupted, 1 when something is not done.
func (a *applyFlags) report(stdout io.Writer, l *loaded, rep *applyReport, rates func() []rest.RateStats, err error) error {
	res, pruned := rep.Result, (*runner.Result)(nil)
	if rep.Pruned != nil {
		pruned = rep.Pruned.Result
	}
	if err != nil && res == nil {
		return withCode(ExitBadInput, stateError(rep.State, err))
	}
	rep.Endpoints = rates()
	report(stdout, l.plan.Redactor, rep, a.asJSON, l.sandbox)
	switch {
	case err != nil:
		return withCode(ExitFailed, err)
	case res.Interrupted || (pruned != nil && pruned.Interrupted):
		return errQuiet(ExitInterrupted)
	case !res.OK() || (pruned != nil && !pruned.OK()):
		return errQuiet(ExitFailed)
	}
	return nil
}

// preflight is what an apply checks before it runs: a saved plan must still hold
// (its drifted tasks are forced); with --refresh, the dry run's drifted tasks are
// forced; on a terminal without --yes, the operator confirms the dry run's changes.
// It returns the tasks to force (runner.Options.Force). a.o.Log is the run's logger.
func (a *applyFlags) preflight(ctx context.Context, l *loaded, st *state.Store, sp string, recs map[string]*state.Record, saved *savedPlan, savedPath string, stderr io.Writer) (map[string]bool, error) {
	c := &a.c
	if saved == nil && !c.refresh && (a.yes || !interactive(stderr)) {
		return nil, nil
	}
	infos, err := st.Infos()
	if err != nil {
		return nil, withCode(ExitBadInput, stateError(sp, err))
	}
	sr := &stateRead{path: sp, recs: recs, infos: infos}
	if saved != nil {
		if err := checkSavedPlan(savedPath, saved, c, l, sr); err != nil {
			return nil, err
		}
		return forceSet(saved.Force), nil
	}
	dr, err := c.decideAll(ctx, l, sr, a.only, false)
	if err != nil {
		return nil, err
	}
	var force map[string]bool
	if c.refresh {
		force = forceSet(dr.Drifted)
		if len(dr.Drifted) > 0 {
			a.o.Log.Info().Int("tasks", len(dr.Drifted)).Str("ids", joinIDs(dr.Drifted, 10)).Msg("drift: putting back what changed outside provision")
		}
	}
	if !a.yes {
		if err := confirmApply(&dr, stderr); err != nil {
			return nil, err
		}
	}
	return force, nil
}

// eventSinks fans the run's events out to the live section counts, the --events
// file and the --ui page (started here; the caller finishes it after the run).
// closeAll ends the events file and the page (call it even on an error).
func (a *applyFlags) eventSinks(l *loaded, p *runner.Progress, live *liveStats, rates func() []rest.RateStats, stderr io.Writer) (events func(runner.Event), page *uiServer, closeAll func(), err error) {
	red := l.plan.Redactor
	sinks := []func(runner.Event){live.observe}
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if a.eventsFile != "" {
		el, err := openEventLog(a.eventsFile, l.plan.Name, red, a.o.Log)
		if err != nil {
			return nil, nil, closeAll, err
		}
		closers = append(closers, func() { el.Close() })
		sinks = append(sinks, el.write)
	}
	if a.uiListen != "" {
		u := newUIState(l.plan.Name, p, live, red, time.Now())
		u.rates = rates
		if page, err = startUI(a.uiListen, u); err != nil {
			return nil, nil, closeAll, err
		}
		closers = append(closers, func() { page.Close() })
		sinks = append(sinks, u.observe)
		fmt.Fprintf(stderr, "ui: the live page of this run (read-only): %s\n", page.URL())
	}
	events = func(e runner.Event) {
		for _, f := range sinks {
			f(e)
		}
	}
	return events, page, closeAll, nil
}

// registerRunFlags registers the flags of commands that run tasks (apply, destroy).
func registerRunFlags(fs *flag.FlagSet, o *runner.Options, progressEvery *time.Duration) {
	fs.IntVar(&o.Parallel, "parallel", 16, "tasks run at once")
	fs.IntVar(&o.MaxAttempts, "max-attempts", 5, "attempts per task in one run, for retryable failures (5xx, network); throttled answers cost none")
	fs.DurationVar(&o.ThrottleTimeout, "throttle-timeout", 30*time.Minute, "how long a task may keep being throttled (429, or 503 with Retry-After) before it fails")
	fs.DurationVar(&o.BackoffBase, "backoff", 500*time.Millisecond, "first retry delay (doubles per attempt, with jitter; Retry-After honoured)")
	fs.DurationVar(&o.BackoffMax, "backoff-max", 30*time.Second, "longest retry delay")
	fs.BoolVar(&o.FailFast, "fail-fast", false, "stop starting tasks after the first failure")
	fs.IntVar(&o.MaxFailures, "max-failures", 0, "stop starting tasks after `N` failures (0: no limit)")
	fs.DurationVar(&o.Grace, "grace", 30*time.Second, "after a stop request, how long in-flight tasks may finish")
	fs.DurationVar(progressEvery, "progress-interval", 10*time.Second, "how often to print a progress line when stderr is not a terminal")
}

// applyReport is what an apply did (printed as text, or as applyJSON).
type applyReport struct {
	Plan, State string
	Result      *runner.Result
	// Removed: tasks in the state the plan no longer lists, left alone (no --prune).
	Removed []string
	// Pruned: the deletes of removed tasks (--prune).
	Pruned *destroyReport
	// Endpoints: per endpoint, the rate it settled at and its throttled answers.
	Endpoints []rest.RateStats
}

func report(stdout io.Writer, red *plan.Redactor, r *applyReport, asJSON bool, sb *sandboxRun) {
	w := bufio.NewWriter(red.Writer(stdout))
	defer w.Flush()
	res := r.Result
	applied := res.Applied + res.Failed
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(applyJSONOf(r, sb))
		return
	}
	verdict := "done"
	switch {
	case res.Interrupted:
		verdict = "interrupted: rerun the same command to resume"
	case res.Stopped:
		verdict = "stopped after failures: fix them and rerun the same command"
	case !res.OK():
		verdict = "incomplete: fix the failures and rerun the same command"
	}
	fmt.Fprintf(w, "\nprovision apply %s: %s\n", r.Plan, verdict)
	fmt.Fprintf(w, "  tasks        %d\n", res.Total)
	fmt.Fprintf(w, "  up to date   %d\n", res.UpToDate)
	fmt.Fprintf(w, "  applied      %d\n", res.Applied)
	fmt.Fprintf(w, "  failed       %d\n", res.Failed)
	fmt.Fprintf(w, "  skipped      %d (a dependency failed)\n", res.Skipped)
	if res.NotStarted > 0 {
		fmt.Fprintf(w, "  not started  %d\n", res.NotStarted)
	}
	if res.InDoubt > 0 {
		fmt.Fprintf(w, "  in doubt     %d (reconciled on the next run)\n", res.InDoubt)
	}
	fmt.Fprintf(w, "  retries      %d\n", res.Retries)
	if res.Throttled > 0 {
		fmt.Fprintf(w, "  throttled    %d (retried; no attempt counted)\n", res.Throttled)
	}
	fmt.Fprintf(w, "  elapsed      %s (%.0f tasks/s)\n", res.Elapsed.Round(time.Millisecond), rate(applied, res.Elapsed))
	fmt.Fprintf(w, "  state        %s\n", r.State)
	if len(r.Removed) > 0 {
		fmt.Fprintf(w, "  removed      %d no longer in the plan, left alone (apply --prune deletes them): %s\n", len(r.Removed), joinIDs(r.Removed, 5))
	}
	if sb != nil {
		fmt.Fprintf(w, "  sandbox      %s\n", sb.Summary())
	}
	writeRates(w, r.Endpoints)
	writeFailures(w, res)
	if r.Pruned != nil {
		fmt.Fprintf(w, "prune (tasks no longer in the plan):\n")
		writeDeletes(w, r.Pruned, "  ")
	}
}

// writeFailures lists a run's failed and skipped tasks.
func writeFailures(w io.Writer, res *runner.Result) {
	if len(res.Failures) > 0 {
		fmt.Fprintln(w, "failed:")
		for i, f := range res.Failures {
			if i == 30 {
				fmt.Fprintf(w, "  ... and %d more (provision status lists them all)\n", len(res.Failures)-30)
				break
			}
			fmt.Fprintf(w, "  %s (%s): %s\n", f.ID, plural(f.Attempts, "attempt"), f.Error)
		}
	}
	if len(res.SkippedBy) > 0 {
		fmt.Fprintln(w, "skipped:")
		for i, s := range res.SkippedBy {
			if i == 20 {
				fmt.Fprintf(w, "  ... and %d more\n", len(res.SkippedBy)-20)
				break
			}
			fmt.Fprintf(w, "  %s (depends on failed %s)\n", s.ID, s.Cause)
		}
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
