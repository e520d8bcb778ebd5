package main

// provision plan: the dry run, its field-by-field changes, drift (--refresh), saved
// plans (--out, applied with `provision apply FILE`) and --exit-code.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/runner"
	"provision/state"
)

// ExitChanges is plan --exit-code's answer when the plan would change something.
const ExitChanges = 4

// planOpts are the options of one dry run.
type planOpts struct {
	only            string
	asJSON, summary bool
	showSkips       bool
	exitCode        bool
	out             string // save the decided actions here
}

// stateRead is what a command read from a state file (maybe none).
type stateRead struct {
	path     string
	recs     map[string]*state.Record
	infos    map[string]*state.TaskInfo
	warnings []string // from opening the state (state.Store.Warnings)
}

// readState reads the records and task infos of a loaded plan's state, read-only;
// no file yet means no records.
func (c *common) readState(l *loaded) (*stateRead, error) {
	sr := &stateRead{path: c.statePathFor(l.plan), recs: map[string]*state.Record{}, infos: map[string]*state.TaskInfo{}}
	st, err := c.openState(sr.path, l, true)
	if err != nil || st == nil {
		return sr, err
	}
	defer st.Close()
	sr.warnings = st.Warnings()
	if sr.recs, err = st.Load(); err == nil {
		sr.infos, err = st.Infos()
	}
	if err != nil {
		return nil, withCode(ExitBadInput, stateError(sr.path, err))
	}
	runner.RegisterSecrets(l.plan.Redactor, sr.recs)
	return sr, nil
}

// decideAll is the dry run of a loaded plan over what its state says: one decision
// per selected task (plus removed tasks when nothing is selected), with the fields
// each update changes, and, with c.refresh, the drift of done objects.
func (c *common) decideAll(ctx context.Context, l *loaded, sr *stateRead, only string, keepSkips bool) (dryRun, error) {
	sel, err := l.graph.Select(splitList(only))
	if err != nil {
		return dryRun{}, withCode(ExitBadInput, err)
	}
	out := dryRun{SchemaVersion: jsonSchemaVersion, Plan: l.plan.Name, State: sr.path, ByKind: map[string]*counts{}, Tasks: []runner.Decision{}, Drifted: []string{}}
	red := l.plan.Redactor
	add := func(d runner.Decision) {
		out.Totals.Add(d)
		k := out.ByKind[d.Kind]
		if k == nil {
			k = &counts{}
			out.ByKind[d.Kind] = k
		}
		switch d.Verb {
		case runner.Create:
			k.Create++
		case runner.Adopt:
			k.Adopt++
		case runner.Update:
			k.Update++
		case runner.Skip:
			k.Skip++
		case runner.Retry:
			k.Retry++
		case runner.Remove:
			k.Remove++
		}
		if keepSkips || d.Verb != runner.Skip {
			out.Tasks = append(out.Tasks, d)
		}
	}
	for i, t := range l.graph.Tasks {
		if sel != nil && !sel[int32(i)] {
			continue
		}
		rec := sr.recs[t.ID]
		d := runner.Decide(t.ID, t.Kind, t.Hash, rec)
		switch {
		case c.probe && (d.Verb == runner.Create || d.Verb == runner.Retry):
			exists, note := probe(ctx, t, sr.recs, red)
			d.Reason += note
			if exists && d.Verb == runner.Create {
				d.Verb, d.Reason = runner.Adopt, "exists remotely, will be taken over"+strings.TrimPrefix(note, "; exists remotely")
			}
		case d.Verb == runner.Update:
			d.Changes = specChanges(sr.infos[t.ID], providers.SpecJSON(t.Spec, red))
		case d.Verb == runner.Skip && c.refresh:
			if diffs, note := refresh(ctx, t, rec, sr.recs, red); len(diffs) > 0 {
				d.Verb, d.Reason = runner.Update, "drift: changed outside provision since it was done; apply --refresh puts it back"
				for _, f := range diffs {
					if f.Field == "" {
						f.Field = "(object)"
					}
					d.Changes = append(d.Changes, runner.Change{Field: f.Field, Old: f.Got, New: f.Want})
				}
				out.Drifted = append(out.Drifted, t.ID)
			} else if note != "" {
				d.Reason += "; " + note
			}
		}
		d.Reason = red.RedactValue(d.Reason)
		add(d)
	}
	if sel == nil {
		for _, id := range removedIDs(l.graph, sr.recs) {
			d := runner.Decision{ID: id, Verb: runner.Remove, Reason: "in the state, no longer in the plan: apply leaves it alone, apply --prune deletes it"}
			if ti := sr.infos[id]; ti != nil {
				d.Kind = ti.Kind
			}
			add(d)
		}
	}
	out.Changes = out.Totals.Create + out.Totals.Adopt + out.Totals.Update + out.Totals.Retry + out.Totals.Remove
	return out, nil
}

// refresh asks a done task's provider to re-read its object (read-only).
func refresh(ctx context.Context, t *providers.Task, rec *state.Record, recs map[string]*state.Record, red *plan.Redactor) ([]providers.FieldDiff, string) {
	r, ok := t.Action.(providers.Refresher)
	if !ok {
		return nil, "not re-read (" + t.Kind + " has no read-back)"
	}
	x := execFor(t, recs, red)
	x.Prior = rec.Outputs
	diffs, err := r.Drift(ctx, x)
	if err != nil {
		return nil, "remote state unknown: " + err.Error()
	}
	return diffs, ""
}

// execFor is the Exec of a read-only provider call outside a run (probe, drift):
// references resolve from the outputs of done tasks in the state.
func execFor(t *providers.Task, recs map[string]*state.Record, red *plan.Redactor) *providers.Exec {
	x := &providers.Exec{Task: t, Attempt: 1, Log: zerolog.Nop(), Redactor: red,
		Lookup: func(r plan.Ref) (string, error) {
			if rec := recs[r.Item]; rec != nil && rec.Status == state.Done {
				if v, ok := rec.Outputs[r.Key]; ok {
					return v.Value, nil
				}
			}
			return "", fmt.Errorf("%s has no recorded output %s yet", r.Item, r.Key)
		}}
	if rec := recs[t.ID]; rec != nil {
		x.Prior = rec.Outputs
		x.Attempt = rec.Attempts + 1
	}
	return x
}

// specChanges compares the spec recorded when a task was done with the one the plan
// builds now, field by field. Values that come from other tasks' outputs are not
// known before the run and are left out; masked secrets show as "(changed)".
func specChanges(ti *state.TaskInfo, now []byte) []runner.Change {
	if ti == nil || len(ti.Spec) == 0 || len(now) == 0 {
		return nil
	}
	var a, b any
	if json.Unmarshal(ti.Spec, &a) != nil || json.Unmarshal(now, &b) != nil {
		return nil
	}
	old, cur := map[string]string{}, map[string]string{}
	flatten("", a, old)
	flatten("", b, cur)
	keys := map[string]bool{}
	for k := range old {
		keys[k] = true
	}
	for k := range cur {
		keys[k] = true
	}
	var out []runner.Change
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	}) {
		o, n := old[k], cur[k]
		if o == n || strings.Contains(n, "${outputs.") {
			continue
		}
		if o == "***" || n == "***" {
			out = append(out, runner.Change{Field: k, Old: "(secret)", New: "(changed)"})
			continue
		}
		out = append(out, runner.Change{Field: k, Old: orNone(o), New: orNone(n)})
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// flatten maps every leaf of a JSON value to its path (a.b, list[0]).
func flatten(prefix string, v any, out map[string]string) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, e, out)
		}
	case []any:
		for i, e := range t {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), e, out)
		}
	case nil:
	default:
		b, _ := json.Marshal(t)
		s := string(b)
		if str, ok := t.(string); ok {
			s = str
		}
		if s != "" && s != "[]" && s != "{}" {
			out[prefix] = s
		}
	}
}

func dryRunPlan(ctx context.Context, c *common, path string, po planOpts, stdout, stderr io.Writer) error {
	if err := c.checkStateFlag(); err != nil {
		return err
	}
	l, err := c.load(ctx, path, stderr)
	if err != nil {
		return err
	}
	defer l.close()
	sr, err := c.readState(l)
	if err != nil {
		return err
	}
	for _, m := range sr.warnings {
		fmt.Fprintf(stderr, "provision: warning: %s\n", m)
	}
	out, err := c.decideAll(ctx, l, sr, po.only, true)
	if err != nil {
		return err
	}
	if po.summary {
		out.Tasks = []runner.Decision{}
	}
	if po.out != "" {
		if err := savePlan(po.out, c, l, sr, po.only, &out); err != nil {
			return err
		}
	}
	w := bufio.NewWriterSize(l.plan.Redactor.Writer(stdout), 64<<10)
	if po.asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(out)
	} else {
		printDryRun(w, &out, po.showSkips, newPalette(stdout))
		if po.out != "" {
			fmt.Fprintf(w, "saved to %s: provision apply %s applies exactly this, or refuses if anything changed\n", po.out, po.out)
		}
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if po.exitCode && out.Changes > 0 {
		return errQuiet(ExitChanges)
	}
	return nil
}

// verbOrder is the order of the blocks within a section of the dry run.
var verbOrder = []runner.Verb{runner.Create, runner.Adopt, runner.Update, runner.Retry, runner.Remove, runner.Skip}

// printDryRun writes the dry run grouped by section (in plan order): each section's
// counts, then its creates, adoptions, updates, retries and removals, one line each
// with the reason (and an update's fields); done tasks are a count unless showSkips.
// Then the totals.
func printDryRun(w io.Writer, out *dryRun, showSkips bool, pal palette) {
	type section struct {
		kind  string
		tasks map[runner.Verb][]runner.Decision
	}
	var order []*section
	byKind := map[string]*section{}
	width := 4
	for _, d := range out.Tasks {
		s := byKind[d.Kind]
		if s == nil {
			s = &section{kind: d.Kind, tasks: map[runner.Verb][]runner.Decision{}}
			byKind[d.Kind] = s
			order = append(order, s)
		}
		s.tasks[d.Verb] = append(s.tasks[d.Verb], d)
		if d.Verb != runner.Skip || showSkips {
			width = max(width, len(d.ID))
		}
	}
	width = min(width, 60)
	for _, s := range order {
		kind := s.kind
		if kind == "" {
			kind = "(unknown section)"
		}
		fmt.Fprintf(w, "%s: %s\n", pal.bold(kind), sectionCounts(out.ByKind[s.kind]))
		for _, v := range verbOrder {
			ds := s.tasks[v]
			if v == runner.Skip && !showSkips {
				if len(ds) > 0 {
					fmt.Fprintf(w, "  %s  %d done and unchanged (--show-skips lists them)\n", pal.verb(v, fmt.Sprintf("%-6s", v)), len(ds))
				}
				continue
			}
			for _, d := range ds {
				fmt.Fprintf(w, "  %s  %-*s  %s\n", pal.verb(d.Verb, fmt.Sprintf("%-6s", d.Verb)), width, d.ID, d.Reason)
				for _, ch := range d.Changes {
					fmt.Fprintf(w, "  %-6s  %-*s    %s: %s -> %s\n", "", width, "", ch.Field, ch.Old, ch.New)
				}
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "plan %s (state %s)\n", out.Plan, out.State)
	for _, k := range sortedKeys(out.ByKind) {
		fmt.Fprintf(w, "  %-22s %s\n", k, sectionCounts(out.ByKind[k]))
	}
	t := out.Totals
	line := fmt.Sprintf("total: %d tasks: %d to create, %d to update, %d to retry, %d done (skip)", t.Total, t.Create, t.Update, t.Retry, t.Skip)
	if t.Adopt > 0 {
		line += fmt.Sprintf("; %d to adopt (exist remotely, taken over)", t.Adopt)
	}
	if t.Remove > 0 {
		line += fmt.Sprintf("; %d to remove (no longer in the plan; apply --prune deletes them)", t.Remove)
	}
	fmt.Fprintln(w, line)
}

// sectionCounts is one section's counts: create, update, skip and retry always,
// adopt and remove when there are any.
func sectionCounts(n *counts) string {
	if n == nil {
		return ""
	}
	line := fmt.Sprintf("create %d, update %d, skip %d, retry %d", n.Create, n.Update, n.Skip, n.Retry)
	if n.Adopt > 0 {
		line += fmt.Sprintf(", adopt %d", n.Adopt)
	}
	if n.Remove > 0 {
		line += fmt.Sprintf(", remove %d", n.Remove)
	}
	return line
}

// savedPlan is the file plan --out writes and apply FILE reads. It holds no value
// of the plan, only digests: apply FILE loads the plan again (with the same --var
// flags) and refuses unless the plan, its inputs and the state are as they were.
type savedPlan struct {
	Format      string `json:"provision_saved_plan"`
	PlanFile    string `json:"plan_file"`
	PlanName    string `json:"plan_name"`
	State       string `json:"state"`
	Only        string `json:"only,omitempty"`
	Shard       string `json:"shard,omitempty"`
	Sandbox     string `json:"sandbox,omitempty"`
	TasksDigest string `json:"tasks_digest"`
	StateDigest string `json:"state_digest"`
	// Force lists the done tasks whose drift (plan --refresh) the apply puts back.
	Force   []string          `json:"refresh,omitempty"`
	Actions []runner.Decision `json:"actions"`
	Totals  runner.Totals     `json:"totals"`
}

const savedPlanFormat = "1"

// digests of what a saved plan depends on: the selected tasks with their spec
// hashes (which cover the plan, vars and CSV rows, never a secret value), and the
// state's records.
func planDigests(l *loaded, sr *stateRead, only string) (string, string) {
	h := sha256.New()
	sel, _ := l.graph.Select(splitList(only))
	for i, t := range l.graph.Tasks {
		if sel == nil || sel[int32(i)] {
			fmt.Fprintf(h, "%s\x00%x\x00", t.ID, t.Hash)
		}
	}
	tasks := hex.EncodeToString(h.Sum(nil))
	h.Reset()
	for _, id := range sortedKeys(sr.recs) {
		r := sr.recs[id]
		fmt.Fprintf(h, "%s\x00%d\x00%x\x00%d\x00%t\x00", id, r.Status, r.Hash, r.Attempts, r.MaybeApplied)
	}
	return tasks, hex.EncodeToString(h.Sum(nil))
}

func (c *common) sandboxMode() string {
	switch {
	case c.sandbox:
		return "in-process"
	case c.sandboxURL != "":
		return c.sandboxURL
	}
	return ""
}

func savePlan(path string, c *common, l *loaded, sr *stateRead, only string, out *dryRun) error {
	abs, err := filepath.Abs(l.plan.File)
	if err != nil {
		return withCode(ExitBadInput, err)
	}
	td, sd := planDigests(l, sr, only)
	sp := savedPlan{Format: savedPlanFormat, PlanFile: abs, PlanName: l.plan.Name, State: sr.path, Only: only, Shard: c.shard,
		Sandbox: c.sandboxMode(), TasksDigest: td, StateDigest: sd, Force: out.Drifted, Actions: out.Tasks, Totals: out.Totals}
	b, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return err
	}
	b = []byte(l.plan.Redactor.Redact(string(b))) // reasons may quote remote errors
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return withCode(ExitBadInput, fmt.Errorf("plan --out %s: %w", path, err))
	}
	return nil
}

// readSavedPlan returns the saved plan in path, or nil when path is not one (a
// YAML plan).
func readSavedPlan(path string) (*savedPlan, error) {
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) || !bytes.Contains(b, []byte(`"provision_saved_plan"`)) {
		return nil, nil // not a saved plan; the plan loader reports what is wrong
	}
	var sp savedPlan
	if err := json.Unmarshal(b, &sp); err != nil {
		return nil, withCode(ExitBadInput, fmt.Errorf("saved plan %s is damaged: %v", path, err))
	}
	if sp.Format != savedPlanFormat || sp.PlanFile == "" {
		return nil, withCode(ExitBadInput, fmt.Errorf("saved plan %s: unknown format %q (written by another provision version?)", path, sp.Format))
	}
	return &sp, nil
}

// checkSavedPlan refuses a saved plan when anything it was decided on changed.
func checkSavedPlan(file string, sp *savedPlan, c *common, l *loaded, sr *stateRead) error {
	var why []string
	if c.shard != sp.Shard {
		why = append(why, fmt.Sprintf("--shard %q, the saved plan was made with %q", c.shard, sp.Shard))
	}
	if c.sandboxMode() != sp.Sandbox {
		why = append(why, fmt.Sprintf("sandbox %q, the saved plan was made with %q", c.sandboxMode(), sp.Sandbox))
	}
	if sr.path != sp.State {
		why = append(why, fmt.Sprintf("state %s, the saved plan was made with %s", sr.path, sp.State))
	}
	td, sd := planDigests(l, sr, sp.Only)
	if td != sp.TasksDigest {
		why = append(why, "the plan or its inputs (vars, CSV files) changed; pass the same --var flags as to plan --out")
	}
	if sd != sp.StateDigest {
		why = append(why, "the state changed (another run since?)")
	}
	if len(why) > 0 {
		return withCode(ExitBadInput, fmt.Errorf("saved plan %s is out of date: %s\n  nothing was changed; run provision plan --out again", file, strings.Join(why, "; ")))
	}
	return nil
}

// forceSet turns the saved plan's drifted tasks into runner.Options.Force.
func forceSet(ids []string) map[string]bool {
	if len(ids) == 0 {
		return nil
	}
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// confirmApply asks on a terminal before an apply that changes something.
func confirmApply(out *dryRun, stderr io.Writer) error {
	if out.Changes == 0 || !interactive(stderr) {
		return nil
	}
	t := out.Totals
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{t.Create, "to create"}, {t.Adopt, "to adopt"}, {t.Update, "to update"}, {t.Retry, "to retry"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	sort.Strings(parts)
	return confirm(fmt.Sprintf("apply %s: %s (provision plan lists them).", out.Plan, strings.Join(parts, ", ")), stderr)
}
