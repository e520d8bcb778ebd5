package main

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
