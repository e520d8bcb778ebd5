package main

// The rest of a rollout's life: tasks the plan no longer lists (removed), deleting
// what a plan created (destroy, apply --prune), both through the runner with the
// same intent-before-effect records, retries and progress as apply.

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

	"golang.org/x/term"

	"provision/providers"
	"provision/providers/milestone"
	"provision/runner"
	"provision/state"
)

// removedIDs lists, in ID order, the tasks the state has records of that the plan
// (before --only) no longer builds. Records of finished deletes are not counted.
func removedIDs(g *runner.Graph, recs map[string]*state.Record) []string {
	var out []string
	for id, r := range recs {
		if _, ok := g.Task(id); ok {
			continue
		}
		if runner.Destroyed(r) {
			continue
		}
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// delItem is one task considered for deletion.
type delItem struct {
	ID      string
	Kind    string
	Rec     *state.Record
	Info    *state.TaskInfo
	Planned *providers.Task // nil: the plan no longer lists it
	deps    []string
	// Keep says why the object stays ("" means it is deleted).
	Keep string
}

// planDeletes decides, for the tasks ids, which objects are deleted and which stay
// (adopted, not deletable, needed by something that stays). Tasks without a record
// of any attempt made nothing and are left out.
func planDeletes(l *loaded, recs map[string]*state.Record, infos map[string]*state.TaskInfo, ids []string, includeAdopted, prune bool) []*delItem {
	reg := registry()
	var items []*delItem
	byID := map[string]*delItem{}
	for _, id := range ids {
		rec := recs[id]
		if !runner.Deletable(rec) {
			continue
		}
		it := &delItem{ID: id, Rec: rec, Info: infos[id]}
		if t, ok := l.graph.Task(id); ok {
			it.Planned, it.Kind, it.deps = t, t.Kind, t.Deps
		} else if it.Info != nil {
			it.Kind, it.deps = it.Info.Kind, it.Info.Deps
		}
		switch k, ok := reg.Kind(it.Kind); {
		case it.Kind == "":
			it.Keep = "its kind was not recorded (done by an older provision): delete it by hand, then `provision state forget " + id + "`"
		case !ok:
			it.Keep = fmt.Sprintf("unknown kind %q", it.Kind)
		default:
			if _, ok := k.(providers.Remover); !ok {
				it.Keep = fmt.Sprintf("%s objects cannot be deleted by provision", it.Kind)
			}
		}
		if it.Keep == "" && it.Info != nil && it.Info.Adopted && !includeAdopted {
			it.Keep = "adopted (it existed before this rollout): left alone; --include-adopted deletes it too"
		}
		items = append(items, it)
		byID[id] = it
	}
	// What stays keeps what it depends on; when pruning, so does a task the plan
	// still runs.
	still := map[string]string{} // dep -> a task that needs it and stays
	for _, it := range items {
		if it.Keep != "" {
			for _, d := range it.deps {
				still[d] = it.ID
			}
		}
	}
	if prune {
		for _, t := range l.graph.Tasks {
			if byID[t.ID] == nil {
				for _, d := range t.Deps {
					if byID[d] != nil && still[d] == "" {
						still[d] = t.ID
					}
				}
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, it := range items {
			if by := still[it.ID]; by != "" && it.Keep == "" {
				it.Keep = "kept: " + by + " depends on it and stays"
				for _, d := range it.deps {
					if still[d] == "" {
						still[d] = it.ID
					}
				}
				changed = true
			}
		}
	}
	return items
}

// deleteGraph is the graph of the deletes of the items to delete, in reverse
// dependency order (runner.DeleteTasks).
func deleteGraph(l *loaded, items []*delItem) (*runner.Graph, error) {
	reg := registry()
	var dels []runner.Delete
	for _, it := range items {
		if it.Keep != "" {
			continue
		}
		k, _ := reg.Kind(it.Kind)
		rm := k.(providers.Remover)
		endpoint := ""
		if it.Planned != nil {
			endpoint = it.Planned.Endpoint
		} else if it.Info != nil {
			endpoint = it.Info.Endpoint
		}
		info, planned := it.Info, it.Planned
		dels = append(dels, runner.Delete{ID: it.ID, Kind: it.Kind, Endpoint: endpoint, Record: it.Rec, Deps: it.deps,
			Remove: func(ctx context.Context, x *providers.Exec) error {
				return rm.Delete(ctx, l.build, &providers.Deletion{Exec: x, Info: info, Planned: planned})
			}})
	}
	return runner.NewGraph(runner.DeleteTasks(dels))
}

// deleteSummary counts a deletion plan.
type deleteSummary struct {
	Delete int            `json:"delete"`
	Keep   int            `json:"keep"`
	Kept   []keptLine     `json:"kept"`
	Lines  []deletionLine `json:"tasks"`
}

type keptLine struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

type deletionLine struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Action string `json:"action"` // delete or keep
	Reason string `json:"reason"`
}

func summarizeDeletes(items []*delItem) deleteSummary {
	var s deleteSummary
	for _, it := range items {
		if it.Keep != "" {
			s.Keep++
			s.Kept = append(s.Kept, keptLine{it.ID, it.Keep})
			s.Lines = append(s.Lines, deletionLine{it.ID, it.Kind, "keep", it.Keep})
			continue
		}
		s.Delete++
		reason := "created " + stamp(it.Rec.FinishedAt)
		switch {
		case it.Rec.Status == state.Started || it.Rec.MaybeApplied:
			reason = "in doubt: looked up first, deleted if found"
		case it.Rec.Status == state.Failed:
			reason = "its last attempt failed: deleted if it exists"
		case it.Planned == nil:
			reason = "no longer in the plan; " + reason
		}
		s.Lines = append(s.Lines, deletionLine{it.ID, it.Kind, "delete", reason})
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "(time unknown)"
	}
	return t.UTC().Format(time.RFC3339)
}

// joinIDs lists up to max IDs, then how many more.
func joinIDs(ids []string, max int) string {
	if len(ids) <= max {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:max], ", ") + fmt.Sprintf(" and %d more", len(ids)-max)
}

// destroyReport is the result of a run of deletes (as JSON: deletesJSON).
type destroyReport struct {
	*runner.Result
	Kept []keptLine
}

// runDeletes deletes the objects of the tasks ids (what planDeletes lets go), through
// the runner, then forgets the records of what it deleted.
func runDeletes(ctx context.Context, l *loaded, st *state.Store, ids []string, includeAdopted, prune bool, o runner.Options, stderr io.Writer, every time.Duration) (*runner.Result, []keptLine, error) {
	recs, err := st.Load()
	if err != nil {
		return nil, nil, err
	}
	runner.RegisterSecrets(l.plan.Redactor, recs)
	infos, err := st.Infos()
	if err != nil {
		return nil, nil, err
	}
	items := planDeletes(l, recs, infos, ids, includeAdopted, prune)
	sum := summarizeDeletes(items)
	g, err := deleteGraph(l, items)
	if err != nil {
		return nil, nil, err
	}
	o.Only = nil
	o.Progress = &runner.Progress{}
	con, ok := stderr.(*console)
	if !ok {
		con = newConsole(stderr)
	}
	live := newLiveStats(g, nil, nil, nil)
	prev := o.Events
	o.Events = func(e runner.Event) {
		live.observe(e)
		if prev != nil {
			prev(e)
		}
	}
	stop := startProgress(newProgressView(o.Progress, live, newPalette(con)), con, every)
	restoreGC := widenGC()
	res, err := runner.Run(ctx, g, st, o)
	restoreGC()
	stop()
	if err != nil {
		return res, sum.Kept, err
	}
	if _, err := runner.ForgetDestroyed(st); err != nil {
		return res, sum.Kept, err
	}
	return res, sum.Kept, nil
}

// writeDeletes prints the outcome of a run of deletes.
func writeDeletes(w io.Writer, r *destroyReport, indent string) {
	res := r.Result
	fmt.Fprintf(w, "%sdeleted      %d\n", indent, res.Applied)
	if res.UpToDate > 0 {
		fmt.Fprintf(w, "%salready gone %d\n", indent, res.UpToDate)
	}
	fmt.Fprintf(w, "%sfailed       %d\n", indent, res.Failed)
	fmt.Fprintf(w, "%sskipped      %d (something that depends on it could not be deleted)\n", indent, res.Skipped)
	if res.InDoubt > 0 {
		fmt.Fprintf(w, "%sin doubt     %d (rerun to finish)\n", indent, res.InDoubt)
	}
	fmt.Fprintf(w, "%skept         %d\n", indent, len(r.Kept))
	for i, k := range r.Kept {
		if i == 30 {
			fmt.Fprintf(w, "%s  ... and %d more (provision plan --destroy lists them all)\n", indent, len(r.Kept)-30)
			break
		}
		fmt.Fprintf(w, "%s  %s: %s\n", indent, k.ID, k.Reason)
	}
	writeFailures(w, res)
}

// destroyTargets lists the tasks a destroy considers: with patterns, the matching
// planned tasks and everything that depends on them, plus matching removed tasks;
// without, every task of the plan and every removed one.
func destroyTargets(l *loaded, recs map[string]*state.Record, patterns []string) ([]string, error) {
	var ids []string
	removed := removedIDs(l.graph, recs)
	if len(patterns) == 0 {
		for _, t := range l.graph.Tasks {
			ids = append(ids, t.ID)
		}
		return append(ids, removed...), nil
	}
	var errs []error
	var planned []string
	for _, p := range patterns {
		if err := runner.CheckPattern(p); err != nil {
			errs = append(errs, fmt.Errorf("--only %w", err))
			continue
		}
		n := 0
		for _, t := range l.graph.Tasks {
			if runner.Match(p, t.ID) {
				n++
			}
		}
		for _, id := range removed {
			if runner.Match(p, id) {
				ids = append(ids, id)
				n++
			}
		}
		if n == 0 {
			errs = append(errs, fmt.Errorf("--only %q matches no task of the plan or the state", p))
		}
		planned = append(planned, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// A milestone is an ordering point, not an object: what waits for it does not
	// use what it waits for, so deleting a store does not reach past it.
	sel, _ := l.graph.SelectDependents(planned, func(t *providers.Task) bool { return t.Kind != milestone.Section })
	for i, t := range l.graph.Tasks {
		if sel[int32(i)] && (t.Kind != milestone.Section || matchAny(planned, t.ID)) {
			ids = append(ids, t.ID)
		}
	}
	return ids, nil
}

func cmdDestroy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var o runner.Options
	var dry, asJSON, yes, includeAdopted bool
	var only string
	var every time.Duration
	fs := newFlagSet("destroy", `destroy [flags] PLAN

Deletes what this plan's state says the plan created, in reverse dependency order,
with the same records as apply: intent before each delete, the result after, retries,
lookups for tasks in doubt; a rerun resumes. Objects that were adopted (they existed
before the rollout) stay unless --include-adopted; objects an API cannot delete are
listed. With --only, the matching tasks and everything that depends on them (not
past a milestone, which only orders).
Without a terminal to confirm on, --yes is required.`)
	c.register(fs, flagState|flagShard|flagLog|flagSandbox|flagFaults)
	registerRunFlags(fs, &o, &every)
	fs.StringVar(&only, "only", "", "delete only tasks matching `PATTERNS` (comma-separated globs as in depends_on: * and ? stop at a slash, [abc] a class; an item's pattern also selects its sub-tasks) and everything that depends on them")
	fs.BoolVar(&includeAdopted, "include-adopted", false, "also delete objects the plan adopted (found existing) rather than created")
	fs.BoolVar(&dry, "dry-run", false, "list what would be deleted and what stays; nothing is deleted (same as plan --destroy)")
	fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	fs.BoolVar(&asJSON, "json", false, "print the report (or the dry run) as JSON")
	pos, err := parse(fs, args, stderr, "plan")
	if err != nil {
		return err
	}
	if err := checkRunFlags("destroy", o, every); err != nil {
		return err
	}
	if dry {
		return previewDestroy(ctx, &c, pos[0], only, includeAdopted, asJSON, stdout, stderr)
	}
	l, err := c.load(ctx, pos[0], stderr)
	if err != nil {
		return err
	}
	defer l.close()
	red := l.plan.Redactor
	stderr = newConsole(stderr) // logs and progress share stderr
	log, err := c.logger(stderr, red)
	if err != nil {
		return err
	}
	o.Log, o.Redactor = log, red
	sp := c.statePathFor(l.plan)
	if _, err := os.Stat(sp); err != nil {
		return withCode(ExitBadInput, fmt.Errorf("destroy: no state for plan %s at %s: nothing this plan created is known", l.plan.Name, sp))
	}
	st, err := c.openState(sp, l, false)
	if err != nil {
		return err
	}
	defer st.Close()
	ids, sum, err := destroyTargetsOf(l, st, sp, only, includeAdopted)
	if err != nil {
		return err
	}
	if !yes {
		q := fmt.Sprintf("destroy %s: %d objects will be deleted, %d kept (state %s).", l.plan.Name, sum.Delete, sum.Keep, sp)
		if err := confirm(q, stderr); err != nil {
			return err
		}
	}
	log.Info().Str("plan", l.plan.Name).Int("delete", sum.Delete).Int("keep", sum.Keep).Str("state", sp).Msg("destroy")
	res, kept, err := runDeletes(ctx, l, st, ids, includeAdopted, false, o, stderr, every)
	if cerr := st.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close state: %w", cerr)
	}
	if res == nil {
		return withCode(ExitBadInput, stateError(sp, err))
	}
	w := bufio.NewWriter(red.Writer(stdout))
	writeDestroy(w, l.plan.Name, sp, &destroyReport{Result: res, Kept: kept}, asJSON)
	w.Flush()
	switch {
	case err != nil:
		return withCode(ExitFailed, err)
	case res.Interrupted:
		return errQuiet(ExitInterrupted)
	case !res.OK():
		return errQuiet(ExitFailed)
	}
	return nil
}

// destroyTargetsOf forgets the records of finished deletes, then returns the tasks
// a destroy considers (destroyTargets) and what it would delete and keep.
func destroyTargetsOf(l *loaded, st *state.Store, sp, only string, includeAdopted bool) ([]string, deleteSummary, error) {
	if _, err := runner.ForgetDestroyed(st); err != nil {
		return nil, deleteSummary{}, withCode(ExitBadInput, stateError(sp, err))
	}
	recs, err := st.Load()
	if err != nil {
		return nil, deleteSummary{}, withCode(ExitBadInput, stateError(sp, err))
	}
	runner.RegisterSecrets(l.plan.Redactor, recs)
	ids, err := destroyTargets(l, recs, splitList(only))
	if err != nil {
		return nil, deleteSummary{}, withCode(ExitBadInput, err)
	}
	infos, err := st.Infos()
	if err != nil {
		return nil, deleteSummary{}, withCode(ExitBadInput, stateError(sp, err))
	}
	return ids, summarizeDeletes(planDeletes(l, recs, infos, ids, includeAdopted, false)), nil
}

// writeDestroy prints a destroy's report, as text or as JSON (destroyJSON).
func writeDestroy(w io.Writer, planName, sp string, rep *destroyReport, asJSON bool) {
	res := rep.Result
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(destroyJSON{SchemaVersion: jsonSchemaVersion, Plan: planName, State: sp,
			deletesJSON: deletesJSON{runJSON: runOf(res), Kept: nonNil(rep.Kept)}})
		return
	}
	verdict := "done"
	switch {
	case res.Interrupted:
		verdict = "interrupted: rerun the same command to resume"
	case !res.OK():
		verdict = "incomplete: fix the failures and rerun the same command"
	}
	fmt.Fprintf(w, "\nprovision destroy %s: %s\n", planName, verdict)
	writeDeletes(w, rep, "  ")
	fmt.Fprintf(w, "  state        %s\n", sp)
}

// previewDestroy prints what a destroy would delete and keep; read-only.
func previewDestroy(ctx context.Context, c *common, path, only string, includeAdopted, asJSON bool, stdout, stderr io.Writer) error {
	l, err := c.load(ctx, path, stderr)
	if err != nil {
		return err
	}
	defer l.close()
	sp := c.statePathFor(l.plan)
	recs, infos := map[string]*state.Record{}, map[string]*state.TaskInfo{}
	st, err := c.openState(sp, l, true)
	if err != nil {
		return err
	}
	if st != nil {
		recs, err = st.Load()
		if err == nil {
			infos, err = st.Infos()
		}
		st.Close()
		if err != nil {
			return withCode(ExitBadInput, stateError(sp, err))
		}
	}
	ids, err := destroyTargets(l, recs, splitList(only))
	if err != nil {
		return withCode(ExitBadInput, err)
	}
	sum := summarizeDeletes(planDeletes(l, recs, infos, ids, includeAdopted, false))
	w := bufio.NewWriter(l.plan.Redactor.Writer(stdout))
	defer w.Flush()
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		sum.Kept, sum.Lines = nonNil(sum.Kept), nonNil(sum.Lines)
		return enc.Encode(struct {
			SchemaVersion int    `json:"schema_version"`
			Plan          string `json:"plan"`
			State         string `json:"state"`
			deleteSummary
		}{jsonSchemaVersion, l.plan.Name, sp, sum})
	}
	width := 4
	for _, d := range sum.Lines {
		width = max(width, len(d.ID))
	}
	width = min(width, 60)
	for _, d := range sum.Lines {
		fmt.Fprintf(w, "%-6s  %-*s  %s\n", d.Action, width, d.ID, d.Reason)
	}
	if len(sum.Lines) > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "destroy %s (state %s): %d to delete, %d kept\n", l.plan.Name, sp, sum.Delete, sum.Keep)
	return nil
}

// stdin is where confirmations are read; interactive says whether a person can
// answer there (both stdin and stderr are terminals). Tests replace both.
var (
	stdin       io.Reader = os.Stdin
	interactive           = func(stderr io.Writer) bool { return term.IsTerminal(int(os.Stdin.Fd())) && isTerminal(stderr) }
)

// confirm asks on the terminal for "yes"; without a terminal it refuses, naming --yes.
func confirm(question string, stderr io.Writer) error {
	if !interactive(stderr) {
		return withCode(ExitBadInput, fmt.Errorf("%s\n  no terminal to confirm on: rerun with --yes to go ahead", question))
	}
	fmt.Fprintf(stderr, "%s\nType yes to go ahead: ", question)
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return withCode(ExitBadInput, errors.New("not confirmed: nothing was changed"))
	}
	return nil
}
