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
	"sync"
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
	c.register(fs, true)
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
	c.register(fs, true)
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
	Drifted []string `json:"drifted,omitempty"`
}

type counts struct {
	Create int `json:"create"`
	Update int `json:"update"`
	Skip   int `json:"skip"`
	Retry  int `json:"retry"`
	Remove int `json:"remove"`
}

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var po planOpts
	var asJSON, summary, destroy, includeAdopted bool
	var only string
	fs := newFlagSet("plan", "plan [flags] PLAN\n\nDry run: lists, per task, create / update / skip (done) / retry (failed or in doubt)\nwith the reason, and the totals. No remote change, nothing written to the state; with\n--probe, read-only calls report which objects already exist remotely.")
	c.register(fs, true)
	fs.BoolVar(&c.probe, "probe", false, "ask the APIs (read-only) whether each object to create or retry exists already")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.BoolVar(&summary, "summary", false, "print only the totals (and tasks that are not skipped are still counted)")
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
	po.only, po.asJSON, po.summary = only, asJSON, summary
	return dryRunPlan(ctx, &c, pos[0], po, stdout, stderr)
}

// probe asks a task's provider, read-only, whether its object exists already.
func probe(ctx context.Context, t *providers.Task, recs map[string]*state.Record, red *plan.Redactor) string {
	p, ok := t.Action.(providers.Prober)
	if !ok {
		return ""
	}
	exists, detail, err := p.Probe(ctx, execFor(t, recs, red))
	switch {
	case err != nil:
		return "; remote state unknown: " + err.Error()
	case exists:
		return "; exists remotely: " + detail
	case detail != "":
		return "; not found remotely (" + detail + ")"
	}
	return "; not found remotely"
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
	var only string
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
	c.register(fs, true)
	registerRunFlags(fs, &o, &progressEvery)
	fs.BoolVar(&c.retarget, "retarget", false, "record the plan's endpoints as this state's target where they differ from the recorded ones (the same systems under a new address)")
	fs.StringVar(&only, "only", "", "run only tasks matching `PATTERNS` (comma-separated globs) and what they depend on")
	fs.BoolVar(&prune, "prune", false, "also delete the objects of tasks the plan no longer lists (reverse dependency order; adopted objects stay)")
	fs.BoolVar(&dry, "dry-run", false, "same as `provision plan`")
	fs.BoolVar(&asJSON, "json", false, "print the final report (or the dry run) as JSON")
	fs.BoolVar(&c.refresh, "refresh", false, "re-read done objects first and put back what changed outside provision (drift)")
	fs.BoolVar(&yes, "yes", false, "do not ask for confirmation on a terminal")
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
	// Logs (from every worker) and the progress line share stderr: one lock.
	stderr = &lockedWriter{w: stderr}
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
	stopProgress := startProgress(o.Progress, stderr, isTerminal(stderr), progressEvery, func() string { return rateSuffix(rates()) })
	res, err := runner.Run(ctx, l.graph, st, o)
	stopProgress()
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

type applyReport struct {
	Plan  string `json:"plan"`
	State string `json:"state"`
	*runner.Result
	Rate    float64        `json:"tasks_per_second"`
	Sandbox map[string]any `json:"sandbox,omitempty"`
	// Removed: tasks in the state the plan no longer lists, left alone (no --prune).
	Removed []string `json:"removed,omitempty"`
	// Pruned: the deletes of removed tasks (--prune).
	Pruned *destroyReport `json:"pruned,omitempty"`
	// Endpoints: per endpoint, the rate it settled at and its throttled answers.
	Endpoints []rest.RateStats `json:"endpoints"`
}

func report(stdout io.Writer, red *plan.Redactor, r *applyReport, asJSON bool, sb *sandboxRun) {
	w := bufio.NewWriter(red.Writer(stdout))
	defer w.Flush()
	res := r.Result
	applied := res.Applied + res.Failed
	if asJSON {
		r.Rate = rate(applied, res.Elapsed)
		if r.Endpoints == nil {
			r.Endpoints = []rest.RateStats{}
		}
		if sb != nil {
			r.Sandbox = sb.Stats()
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
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

type statusReport struct {
	States   []string       `json:"states"`
	Counts   map[string]int `json:"counts"`
	Total    int            `json:"total"`
	NotRun   int            `json:"not_started,omitempty"`
	Failed   []taskLine     `json:"failed,omitempty"`
	InDoubt  []taskLine     `json:"in_doubt,omitempty"`
	Changed  int            `json:"changed_since_done,omitempty"`
	Planned  int            `json:"planned,omitempty"`
	Removed  []string       `json:"removed,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
}

type taskLine struct {
	ID       string    `json:"id"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started,omitempty"`
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var asJSON bool
	var states stringList
	fs := newFlagSet("status", `status [flags] [PLAN]

Reports what the state says: counts per status, failed tasks with their errors, tasks
in doubt. With PLAN, also tasks not started yet and tasks changed since done. Several
--state flags (one per shard) report the whole rollout.`)
	c.register(fs, false)
	fs.Var(&states, "state", "state file (repeatable: one per shard); default: the plan's")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
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
	rep := statusReport{States: states, Counts: map[string]int{}}
	all := map[string]*state.Record{}
	// Without its plan, status still knows the secret outputs the state holds (when
	// the key is given) and masks them wherever they appear.
	red := plan.NewRedactor()
	if l != nil {
		red = l.plan.Redactor
	}
	for _, sp := range states {
		if _, err := os.Stat(sp); err != nil {
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
		rep.Counts[r.Status.String()]++
		rep.Total++
		switch r.Status {
		case state.Failed:
			rep.Failed = append(rep.Failed, taskLine{ID: id, Attempts: r.Attempts, Error: red.RedactValue(r.LastError)})
		case state.Started:
			rep.InDoubt = append(rep.InDoubt, taskLine{ID: id, Attempts: r.Attempts, Started: r.StartedAt})
		}
	}
	if l != nil {
		rep.Removed = removedIDs(l.graph, all)
		rep.Planned = l.graph.Len()
		for _, t := range l.graph.Tasks {
			r, ok := all[t.ID]
			if !ok {
				rep.NotRun++
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
		label := k
		if k == "started" {
			label = "in doubt"
		}
		fmt.Fprintf(w, "  %-12s %d\n", label, rep.Counts[k])
	}
	if l != nil {
		fmt.Fprintf(w, "  planned      %d (not started: %d, changed since done: %d)\n", rep.Planned, rep.NotRun, rep.Changed)
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
	if len(rep.Failed) > 0 {
		fmt.Fprintln(w, "failed:")
		for _, f := range rep.Failed {
			fmt.Fprintf(w, "  %s (%d attempts): %s\n", f.ID, f.Attempts, f.Error)
		}
	}
	if len(rep.InDoubt) > 0 {
		fmt.Fprintln(w, "in doubt (reconciled on the next apply):")
		for _, f := range rep.InDoubt {
			fmt.Fprintf(w, "  %s (attempt %d started %s)\n", f.ID, f.Attempts, f.Started.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func statusOrder(s string) int {
	switch s {
	case "done":
		return 0
	case "failed":
		return 1
	case "started":
		return 2
	}
	return 3
}

// lockedWriter serialises writes from concurrent goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Fd lets isTerminal see through the lock.
func (l *lockedWriter) Fd() uintptr {
	if f, ok := l.w.(interface{ Fd() uintptr }); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
