package main

// provision status (what the state files say, with or without the plan) and
// provision state list|show|forget: read and mend a state file task by task.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"provision/plan"
	"provision/runner"
	"provision/state"
)

const stateUsage = `Usage:
  provision state list   [flags] PLAN [PATTERN...]   tasks of the state (--status S to filter)
  provision state show   [flags] PLAN TASK           one task: status, attempts, times, error, outputs
  provision state forget [flags] PLAN TASK...        mark tasks in doubt, their outputs dropped: the
                                                     next apply looks their objects up again by
                                                     natural key and reconciles them (for an object
                                                     someone broke or removed by hand)
With --state FILE instead of PLAN, every argument is a pattern or a task. Each takes --json.
Secret outputs are shown as "***".
`

func cmdState(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, stateUsage)
		if len(args) == 0 {
			return errQuiet(ExitBadInput)
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	var c common
	var asJSON bool
	var status string
	fs := newFlagSet("state "+sub, strings.TrimPrefix(stateUsage, "Usage:\n"))
	c.register(fs, flagState|flagShard|flagSandboxState)
	c.secrets = plan.CheckSecrets
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	switch sub {
	case "list":
		fs.StringVar(&status, "status", "", "only tasks with this `STATUS`: done, failed, in_doubt (or in-doubt, started), pending")
	case "show", "forget":
	default:
		return withCode(ExitBadInput, fmt.Errorf("state %q: want list, show or forget (see provision state --help)", sub))
	}
	pos, err := parse(fs, rest, stderr, "")
	if err != nil {
		return err
	}
	sp, red := c.statePath, (*plan.Redactor)(nil)
	if sp == "" {
		if len(pos) == 0 {
			return withCode(ExitBadInput, fmt.Errorf("state %s: give a PLAN or --state FILE", sub))
		}
		l, err := c.load(ctx, pos[0], stderr)
		if err != nil {
			return err
		}
		defer l.close()
		sp, red, pos = c.statePathFor(l.plan), l.plan.Redactor, pos[1:]
	}
	if _, err := os.Stat(sp); errors.Is(err, os.ErrNotExist) {
		return withCode(ExitBadInput, fmt.Errorf("state %s: no run yet (no state file %s)", sub, sp))
	}
	w := bufio.NewWriter(red.Writer(stdout))
	defer w.Flush()
	switch sub {
	case "list":
		return stateList(sp, status, pos, asJSON, w)
	case "show":
		if len(pos) != 1 {
			return withCode(ExitBadInput, fmt.Errorf("state show: want one TASK, got %d", len(pos)))
		}
		return stateShow(sp, pos[0], asJSON, w)
	}
	if len(pos) == 0 {
		return withCode(ExitBadInput, errors.New("state forget: want at least one TASK"))
	}
	return stateForget(sp, pos, asJSON, w)
}

// openStateFile opens a state file for the state commands (any plan, any target).
func openStateFile(sp string, readOnly bool) (*state.Store, error) {
	st, err := state.Open(sp, state.Options{Key: os.Getenv(state.KeyEnv), ReadOnly: readOnly})
	if err != nil {
		return nil, withCode(ExitBadInput, stateError(sp, err))
	}
	return st, nil
}

// taskView is one task as the state commands show it.
type taskView struct {
	ID         string            `json:"id"`
	Status     string            `json:"status"`
	Attempts   int               `json:"attempts"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	Error      string            `json:"error,omitempty"`
	Outputs    map[string]string `json:"outputs,omitempty"`
	Kind       string            `json:"kind,omitempty"`
	Endpoint   string            `json:"endpoint,omitempty"`
	Adopted    bool              `json:"adopted,omitempty"`
	Deps       []string          `json:"depends_on,omitempty"`
	Spec       json.RawMessage   `json:"spec,omitempty"`
	// SecretsDropped: secret outputs were not kept (no state key) or not readable.
	SecretsDropped bool `json:"secrets_not_kept,omitempty"`
}

// statusName is the name the state commands use for a record's status.
func statusName(r *state.Record) string {
	if r.Status == state.Started || (r.Status == state.Failed && r.MaybeApplied) {
		return "in_doubt"
	}
	return r.Status.String()
}

func viewOf(r *state.Record, ti *state.TaskInfo, full bool) taskView {
	v := taskView{ID: r.ID, Status: statusName(r), Attempts: r.Attempts, Error: r.LastError, SecretsDropped: r.SecretsDropped}
	if !r.StartedAt.IsZero() {
		t := r.StartedAt.UTC()
		v.StartedAt = &t
	}
	if !r.FinishedAt.IsZero() {
		t := r.FinishedAt.UTC()
		v.FinishedAt = &t
	}
	if ti != nil {
		v.Kind, v.Endpoint, v.Adopted = ti.Kind, ti.Endpoint, ti.Adopted
		if full {
			v.Deps, v.Spec = ti.Deps, ti.Spec
		}
	}
	if full && len(r.Outputs) > 0 {
		v.Outputs = map[string]string{}
		for k, o := range r.Outputs {
			if o.Secret {
				v.Outputs[k] = "***"
			} else {
				v.Outputs[k] = o.Value
			}
		}
	}
	return v
}

func stateList(sp, status string, patterns []string, asJSON bool, w io.Writer) error {
	switch status {
	case "", "done", "failed", "in_doubt", "pending":
	case "started", "in-doubt":
		status = "in_doubt"
	default:
		return withCode(ExitBadInput, fmt.Errorf("state list --status %q: want done, failed, in_doubt or pending", status))
	}
	for _, p := range patterns {
		if err := runner.CheckPattern(p); err != nil {
			return withCode(ExitBadInput, fmt.Errorf("state list: pattern %w", err))
		}
	}
	st, err := openStateFile(sp, true)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := st.Load()
	if err != nil {
		return withCode(ExitBadInput, stateError(sp, err))
	}
	infos, err := st.Infos()
	if err != nil {
		return withCode(ExitBadInput, stateError(sp, err))
	}
	ids := sortedKeys(recs)
	views := []taskView{}
	for _, id := range ids {
		r := recs[id]
		if status != "" && statusName(r) != status {
			continue
		}
		if len(patterns) > 0 && !matchAny(patterns, id) {
			continue
		}
		views = append(views, viewOf(r, infos[id], false))
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			SchemaVersion int        `json:"schema_version"`
			State         string     `json:"state"`
			Tasks         []taskView `json:"tasks"`
		}{jsonSchemaVersion, sp, nonNil(views)})
	}
	width := 4
	for _, v := range views {
		width = max(width, len(v.ID))
	}
	width = min(width, 60)
	for _, v := range views {
		when := ""
		if v.FinishedAt != nil {
			when = v.FinishedAt.Format(time.RFC3339)
		} else if v.StartedAt != nil {
			when = "started " + v.StartedAt.Format(time.RFC3339)
		}
		extra := ""
		if v.Adopted {
			extra = "  adopted"
		}
		fmt.Fprintf(w, "%-*s  %-8s  %-14s  %-11s  %s%s\n", width, v.ID, v.Status, plural(v.Attempts, "attempt"), v.Kind, when, extra)
	}
	fmt.Fprintf(w, "%d of %d tasks (state %s)\n", len(views), len(recs), sp)
	return nil
}

func matchAny(patterns []string, id string) bool {
	for _, p := range patterns {
		if runner.Match(p, id) {
			return true
		}
	}
	return false
}

func stateShow(sp, id string, asJSON bool, w io.Writer) error {
	st, err := openStateFile(sp, true)
	if err != nil {
		return err
	}
	defer st.Close()
	r, ok, err := st.Get(id)
	if err != nil {
		return withCode(ExitBadInput, stateError(sp, err))
	}
	if !ok {
		return withCode(ExitBadInput, fmt.Errorf("state show: no task %q in %s (provision state list shows the tasks)", id, sp))
	}
	infos, err := st.Infos()
	if err != nil {
		return withCode(ExitBadInput, stateError(sp, err))
	}
	v := viewOf(r, infos[id], true)
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			SchemaVersion int `json:"schema_version"`
			taskView
		}{jsonSchemaVersion, v})
	}
	fmt.Fprintf(w, "task       %s\n", v.ID)
	fmt.Fprintf(w, "status     %s\n", v.Status)
	fmt.Fprintf(w, "attempts   %d\n", v.Attempts)
	if v.StartedAt != nil {
		fmt.Fprintf(w, "started    %s\n", v.StartedAt.Format(time.RFC3339))
	}
	if v.FinishedAt != nil {
		fmt.Fprintf(w, "finished   %s\n", v.FinishedAt.Format(time.RFC3339))
	}
	if v.Kind != "" {
		fmt.Fprintf(w, "kind       %s\n", v.Kind)
	}
	if v.Endpoint != "" {
		fmt.Fprintf(w, "endpoint   %s\n", v.Endpoint)
	}
	if v.Kind != "" {
		how := "created"
		if v.Adopted {
			how = "adopted (it existed before; destroy leaves it unless --include-adopted)"
		}
		fmt.Fprintf(w, "object     %s\n", how)
	}
	if len(v.Deps) > 0 {
		fmt.Fprintf(w, "depends on %s\n", strings.Join(v.Deps, ", "))
	}
	if v.Error != "" {
		fmt.Fprintf(w, "error      %s\n", v.Error)
	}
	if len(v.Outputs) > 0 {
		fmt.Fprintln(w, "outputs")
		keys := make([]string, 0, len(v.Outputs))
		for k := range v.Outputs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %-20s %s\n", k, v.Outputs[k])
		}
	}
	if v.SecretsDropped {
		fmt.Fprintf(w, "note       secret outputs were not kept (no %s) or cannot be read with this key\n", state.KeyEnv)
	}
	return nil
}

func stateForget(sp string, ids []string, asJSON bool, w io.Writer) error {
	st, err := openStateFile(sp, false)
	if err != nil {
		return err
	}
	defer st.Close()
	var recs []*state.Record
	var missing []string
	for _, id := range ids {
		r, ok, err := st.Get(id)
		if err != nil {
			return withCode(ExitBadInput, stateError(sp, err))
		}
		if !ok {
			missing = append(missing, id)
			continue
		}
		// In doubt, with nothing checkpointed: the next run looks the object up by
		// its natural key and re-applies the spec.
		recs = append(recs, &state.Record{ID: id, Hash: r.Hash, Status: state.Started, Attempts: r.Attempts, StartedAt: time.Now()})
	}
	if len(missing) > 0 {
		return withCode(ExitBadInput, fmt.Errorf("state forget: no task %s in %s; nothing was changed", strings.Join(missing, ", "), sp))
	}
	if err := st.Put(recs...); err != nil {
		return withCode(ExitBadInput, stateError(sp, err))
	}
	if err := st.Close(); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			SchemaVersion int      `json:"schema_version"`
			State         string   `json:"state"`
			Forgotten     []string `json:"forgotten"`
		}{jsonSchemaVersion, sp, nonNil(ids)})
	}
	for _, id := range ids {
		fmt.Fprintf(w, "forgot %s: marked in doubt; the next apply looks its object up again and reconciles it\n", id)
	}
	return nil
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
	// Without its plan, status still knows the secret outputs the state holds (when
	// the key is given) and masks them wherever they appear.
	red := plan.NewRedactor()
	if l != nil {
		red = l.plan.Redactor
	}
	all, err := readStatusStates(states, l, red, &rep)
	if errors.Is(err, errNoRunYet) {
		return noRunYet(stdout, states[0], asJSON)
	}
	if err != nil {
		return err
	}
	rep.count(all, red)
	if l != nil {
		rep.comparePlan(l, all)
	}
	w := bufio.NewWriter(red.Writer(stdout))
	defer w.Flush()
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeStatus(w, &rep, states, l != nil)
	return nil
}

// errNoRunYet: status of a plan whose one state file does not exist yet.
var errNoRunYet = errors.New("no run yet")

// readStatusStates reads the records of every state file (one per shard), gives
// the redactor their secret outputs and adds their warnings to rep.
func readStatusStates(states []string, l *loaded, red *plan.Redactor, rep *statusReport) (map[string]*state.Record, error) {
	all := map[string]*state.Record{}
	for _, sp := range states {
		if _, err := os.Stat(sp); errors.Is(err, os.ErrNotExist) {
			if l != nil && len(states) == 1 {
				return nil, errNoRunYet
			}
			return nil, withCode(ExitBadInput, fmt.Errorf("state %s: no such file (no run has written it yet?)", sp))
		} else if err != nil {
			return nil, withCode(ExitBadInput, fmt.Errorf("state %s: %w", sp, err))
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
			return nil, withCode(ExitBadInput, stateError(sp, err))
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
			return nil, withCode(ExitBadInput, stateError(sp, err))
		}
	}
	return all, nil
}

// count adds the records' counts per status, failures and tasks in doubt.
func (rep *statusReport) count(all map[string]*state.Record, red *plan.Redactor) {
	for _, id := range sortedKeys(all) {
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
}

// comparePlan adds what the plan says of the records: removed tasks, tasks not
// started, tasks changed since done (an update, as runner.Decide says).
func (rep *statusReport) comparePlan(l *loaded, all map[string]*state.Record) {
	rep.Removed = nonNil(removedIDs(l.graph, all))
	rep.Planned = l.graph.Len()
	for _, t := range l.graph.Tasks {
		r, ok := all[t.ID]
		if !ok {
			rep.NotStarted++
		} else if runner.Decide(t.ID, t.Kind, t.Hash, r).Verb == runner.Update {
			rep.Changed++
		}
	}
}

// writeStatus prints status as text.
func writeStatus(w io.Writer, rep *statusReport, states []string, planned bool) {
	fmt.Fprintf(w, "state: %s\n", strings.Join(states, ", "))
	keys := sortedKeys(rep.Counts)
	sort.SliceStable(keys, func(i, j int) bool { return statusOrder(keys[i]) < statusOrder(keys[j]) })
	fmt.Fprintf(w, "  recorded     %d\n", rep.Total)
	for _, k := range keys {
		label := strings.ReplaceAll(k, "_", " ")
		fmt.Fprintf(w, "  %-12s %d\n", label, rep.Counts[k])
	}
	if planned {
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
