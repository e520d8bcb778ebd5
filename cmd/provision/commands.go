package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
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
	fs.StringVar(&only, "only", "", "limit to tasks matching `PATTERNS` (comma-separated globs) and what they depend on")
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

func cmdApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var o runner.Options
	var dry, asJSON, prune, yes bool
	var only, eventsFile, uiListen string
	var progressEvery time.Duration
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
	c.register(fs, flagState|flagShard|flagLog|flagSandbox|flagFaults)
	registerRunFlags(fs, &o, &progressEvery)
	fs.BoolVar(&c.retarget, "retarget", false, "record the plan's endpoints as this state's target where they differ from the recorded ones (the same systems under a new address)")
	fs.StringVar(&only, "only", "", "run only tasks matching `PATTERNS` (comma-separated globs) and what they depend on")
	fs.BoolVar(&prune, "prune", false, "also delete the objects of tasks the plan no longer lists (reverse dependency order; adopted objects stay)")
	fs.BoolVar(&dry, "dry-run", false, "same as `provision plan`")
	fs.BoolVar(&asJSON, "json", false, "print the final report (or the dry run) as JSON")
	fs.BoolVar(&c.refresh, "refresh", false, "re-read done objects first and put back what changed outside provision (drift)")
	fs.BoolVar(&yes, "yes", false, "do not ask for confirmation on a terminal")
	fs.StringVar(&uiListen, "ui", "", "serve a read-only live page of the run at `ADDR` (a port alone, :8701, is served on loopback only)")
	fs.StringVar(&eventsFile, "events", "", "append one JSON line per task event (started, retrying, done, failed, skipped) to `FILE` (docs/json.md)")
	pos, err := parse(fs, args, stderr, "plan")
	if err != nil {
		return err
	}
	saved, err := readSavedPlan(pos[0])
	if err != nil {
		return err
	}
	savedPath := ""
	if saved != nil {
		if only != "" || c.refresh || dry {
			return withCode(ExitBadInput, fmt.Errorf("apply %s: a saved plan fixes --only and --refresh; give them to plan --out instead (--dry-run: provision plan)", pos[0]))
		}
		savedPath = pos[0]
		pos[0], only = saved.PlanFile, saved.Only
	}
	if dry {
		return dryRunPlan(ctx, &c, pos[0], planOpts{only: only, asJSON: asJSON}, stdout, stderr)
	}
	if err := checkRunFlags("apply", o, progressEvery); err != nil {
		return err
	}
	if err := c.checkStateFlag(); err != nil {
		return err
	}
	o.Only = splitList(only)
	l, err := c.load(ctx, pos[0], stderr)
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
	if _, err := forgetDestroyed(st); err != nil {
		return withCode(ExitBadInput, stateError(sp, err))
	}
	recs, err := st.Load()
	if err != nil {
		return withCode(ExitBadInput, stateError(sp, err))
	}
	runner.RegisterSecrets(red, recs)
	switch {
	case saved != nil:
		infos, err := st.Infos()
		if err != nil {
			return withCode(ExitBadInput, stateError(sp, err))
		}
		if err := checkSavedPlan(savedPath, saved, &c, l, &stateRead{path: sp, recs: recs, infos: infos}); err != nil {
			return err
		}
		o.Force = forceSet(saved.Force)
	case c.refresh || (!yes && interactive(stderr)):
		infos, err := st.Infos()
		if err != nil {
			return withCode(ExitBadInput, stateError(sp, err))
		}
		dr, err := c.decideAll(ctx, l, &stateRead{path: sp, recs: recs, infos: infos}, only, false)
		if err != nil {
			return err
		}
		if c.refresh {
			o.Force = forceSet(dr.Drifted)
			if len(dr.Drifted) > 0 {
				log.Info().Int("tasks", len(dr.Drifted)).Str("ids", joinIDs(dr.Drifted, 10)).Msg("drift: putting back what changed outside provision")
			}
		}
		if !yes {
			if err := confirmApply(&dr, stderr); err != nil {
				return err
			}
		}
	}
	removed := removedIDs(l.graph, recs)
	if len(removed) > 0 && !prune {
		log.Warn().Int("tasks", len(removed)).Str("ids", joinIDs(removed, 10)).Msg("removed from the plan: left alone (provision plan lists them; apply --prune deletes them)")
	}
	sel, err := l.graph.Select(o.Only)
	if err != nil {
		return withCode(ExitBadInput, err)
	}
	live := newLiveStats(l.graph, sel, recs, o.Force)
	sinks := []func(runner.Event){live.observe}
	if eventsFile != "" {
		el, err := openEventLog(eventsFile, l.plan.Name, red, log)
		if err != nil {
			return err
		}
		defer el.Close()
		sinks = append(sinks, el.write)
	}
	var page *uiServer
	if uiListen != "" {
		u := newUIState(l.plan.Name, o.Progress, live, red, time.Now())
		u.rates = rates
		if page, err = startUI(uiListen, u); err != nil {
			return err
		}
		defer page.Close()
		sinks = append(sinks, u.observe)
		fmt.Fprintf(stderr, "ui: the live page of this run (read-only): %s\n", page.URL())
	}
	o.Events = func(e runner.Event) {
		for _, f := range sinks {
			f(e)
		}
	}
	view := newProgressView(o.Progress, live, newPalette(con))
	view.endpoints = func() string { return strings.TrimPrefix(rateSuffix(rates()), " | ") }
	stopProgress := startProgress(view, con, progressEvery)
	res, err := runner.Run(ctx, l.graph, st, o)
	stopProgress()
	if page != nil {
		page.finish()
	}
	var pruned *runner.Result
	var kept []keptLine
	if err == nil && prune && len(removed) > 0 && !res.Interrupted {
		pruned, kept, err = runDeletes(ctx, l, st, removed, false, true, o, stderr, progressEvery)
	}
	if cerr := st.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close state: %w", cerr)
	}
	rep := applyReport{Plan: l.plan.Name, State: sp, Result: res}
	if !prune {
		rep.Removed = removed
	} else if pruned != nil {
		rep.Pruned = &destroyReport{Result: pruned, Kept: kept}
	}
	if err != nil {
		if res == nil {
			return withCode(ExitBadInput, stateError(sp, err))
		}
		rep.Endpoints = rates()
		report(stdout, red, &rep, asJSON, l.sandbox)
		return withCode(ExitFailed, err)
	}
	rep.Endpoints = rates()
	report(stdout, red, &rep, asJSON, l.sandbox)
	switch {
	case res.Interrupted || (pruned != nil && pruned.Interrupted):
		return errQuiet(ExitInterrupted)
	case !res.OK() || (pruned != nil && !pruned.OK()):
		return errQuiet(ExitFailed)
	}
	return nil
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

// statusReport is status --json (and what the text is printed from).
type statusReport struct {
	SchemaVersion int      `json:"schema_version"`
	Plan          string   `json:"plan,omitempty"`
	States        []string `json:"states"`
	// Total is the number of records; Counts splits them by status: done, failed,
	// in_doubt, pending.
	Total  int            `json:"total"`
	Counts map[string]int `json:"counts"`
	// With a plan: its tasks, those without a record, and those done with another spec.
	Planned      int        `json:"planned,omitempty"`
	NotStarted   int        `json:"not_started,omitempty"`
	Changed      int        `json:"changed_since_done,omitempty"`
	Failures     []failure  `json:"failures"`
	InDoubtTasks []taskLine `json:"in_doubt_tasks"`
	Removed      []string   `json:"removed"`
	Warnings     []string   `json:"warnings"`
	// NoRunYet: the plan's state file does not exist yet.
	NoRunYet bool `json:"no_run_yet,omitempty"`
}

// taskLine is a task in doubt: its attempts and when the last one started.
type taskLine struct {
	ID        string    `json:"id"`
	Attempts  int       `json:"attempts"`
	StartedAt time.Time `json:"started_at,omitzero"`
}

func newStatusReport(states []string) statusReport {
	return statusReport{SchemaVersion: jsonSchemaVersion, States: nonNil(states), Counts: map[string]int{"done": 0, "failed": 0, "in_doubt": 0},
		Failures: []failure{}, InDoubtTasks: []taskLine{}, Removed: []string{}, Warnings: []string{}}
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var asJSON bool
	var states stringList
	fs := newFlagSet("status", `status [flags] [PLAN]

Reports what the state says: counts per status, failed tasks with their errors, tasks
in doubt. With PLAN, also tasks not started yet and tasks changed since done. Several
--state flags (one per shard) report the whole rollout.`)
	c.register(fs, flagShard|flagSandboxState)
	c.secrets = plan.CheckSecrets
	fs.Var(&states, "state", "state `FILE` (repeatable: one per shard); default: the plan's")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	check := statusCheckFlag(fs)
	pos, err := parse(fs, args, stderr, "")
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return withCode(ExitBadInput, fmt.Errorf("status: want at most one PLAN, got %d", len(pos)))
	}
	var l *loaded
	if len(pos) == 1 {
		if l, err = c.load(ctx, pos[0], stderr); err != nil {
			return err
		}
		defer l.close()
		if len(states) == 0 {
			states = append(states, c.statePathFor(l.plan))
		}
	}
	if len(states) == 0 {
		return withCode(ExitBadInput, errors.New("status: give a PLAN or at least one --state file"))
	}
	if *check {
		return checkStates(states, stdout)
	}
	rep := newStatusReport(states)
	if l != nil {
		rep.Plan = l.plan.Name
	}
	all := map[string]*state.Record{}
	// Without its plan, status still knows the secret outputs the state holds (when
	// the key is given) and masks them wherever they appear.
	red := plan.NewRedactor()
	if l != nil {
		red = l.plan.Redactor
	}
	for _, sp := range states {
		if _, err := os.Stat(sp); errors.Is(err, os.ErrNotExist) {
			if l != nil && len(states) == 1 {
				return noRunYet(stdout, sp, asJSON)
			}
			return withCode(ExitBadInput, fmt.Errorf("state %s: no such file (no run has written it yet?)", sp))
		} else if err != nil {
			return withCode(ExitBadInput, fmt.Errorf("state %s: %w", sp, err))
		}
		name := ""
		if l != nil {
			name = l.plan.Name
		}
		st, err := state.Open(sp, state.Options{PlanName: name, Key: os.Getenv(state.KeyEnv), ReadOnly: true})
		if errors.Is(err, os.ErrNotExist) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s holds no records yet", sp))
			continue
		}
		if err != nil {
			return withCode(ExitBadInput, stateError(sp, err))
		}
		rep.Warnings = append(rep.Warnings, st.Warnings()...)
		if l != nil {
			for _, d := range state.TargetDiff(st.Meta().Target, l.target) {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: %s (its records say nothing about the plan's endpoints)", sp, d))
			}
		}
		err = st.ForEach(func(r *state.Record) error {
			if _, dup := all[r.ID]; dup {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("task %s is in more than one state file", r.ID))
			}
			all[r.ID] = r
			for _, o := range r.Outputs {
				if o.Secret {
					red.Add(o.Value)
				}
			}
			return nil
		})
		st.Close()
		if err != nil {
			return withCode(ExitBadInput, stateError(sp, err))
		}
	}
	ids := sortedKeys(all)
	for _, id := range ids {
		r := all[id]
		rep.Counts[statusKey(r.Status)]++
		rep.Total++
		switch r.Status {
		case state.Failed:
			rep.Failures = append(rep.Failures, failure{ID: id, Attempts: r.Attempts, Error: red.RedactValue(r.LastError), FinishedAt: r.FinishedAt.UTC()})
		case state.Started:
			rep.InDoubtTasks = append(rep.InDoubtTasks, taskLine{ID: id, Attempts: r.Attempts, StartedAt: r.StartedAt.UTC()})
		}
	}
	if l != nil {
		rep.Removed = nonNil(removedIDs(l.graph, all))
		rep.Planned = l.graph.Len()
		for _, t := range l.graph.Tasks {
			r, ok := all[t.ID]
			if !ok {
				rep.NotStarted++
			} else if r.Status == state.Done && r.Hash != t.Hash {
				rep.Changed++
			}
		}
	}
	w := bufio.NewWriter(red.Writer(stdout))
	defer w.Flush()
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(w, "state: %s\n", strings.Join(states, ", "))
	keys := sortedKeys(rep.Counts)
	sort.SliceStable(keys, func(i, j int) bool { return statusOrder(keys[i]) < statusOrder(keys[j]) })
	fmt.Fprintf(w, "  recorded     %d\n", rep.Total)
	for _, k := range keys {
		label := strings.ReplaceAll(k, "_", " ")
		fmt.Fprintf(w, "  %-12s %d\n", label, rep.Counts[k])
	}
	if l != nil {
		fmt.Fprintf(w, "  planned      %d (not started: %d, changed since done: %d)\n", rep.Planned, rep.NotStarted, rep.Changed)
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if len(rep.Removed) > 0 {
		fmt.Fprintf(w, "no longer in the plan (%d; apply --prune deletes them, destroy too):\n", len(rep.Removed))
		for _, id := range rep.Removed {
			fmt.Fprintf(w, "  %s\n", id)
		}
	}
	if len(rep.Failures) > 0 {
		fmt.Fprintln(w, "failed:")
		for _, f := range rep.Failures {
			fmt.Fprintf(w, "  %s (%s): %s\n", f.ID, plural(f.Attempts, "attempt"), f.Error)
		}
	}
	if len(rep.InDoubtTasks) > 0 {
		fmt.Fprintln(w, "in doubt (reconciled on the next apply):")
		for _, f := range rep.InDoubtTasks {
			fmt.Fprintf(w, "  %s (attempt %d started %s)\n", f.ID, f.Attempts, stamp(f.StartedAt))
		}
	}
	return nil
}

// noRunYet is status for a plan whose state file does not exist yet.
func noRunYet(stdout io.Writer, sp string, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		rep := newStatusReport([]string{sp})
		rep.NoRunYet, rep.Warnings = true, []string{"no run yet for this plan"}
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "no run yet for this plan (no state file at %s; provision apply writes it)\n", sp)
	return nil
}

// statusKey is a record status's name in status counts: "in_doubt" for a started
// record, as everywhere in the JSON.
func statusKey(s state.Status) string {
	if s == state.Started {
		return "in_doubt"
	}
	return s.String()
}

func statusOrder(s string) int {
	switch s {
	case "done":
		return 0
	case "failed":
		return 1
	case "in_doubt":
		return 2
	}
	return 3
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
