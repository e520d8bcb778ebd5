package openvcloud

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

var (
	_ providers.Remover   = CloudSpaceKind{}
	_ providers.Refresher = (*cloudSpace)(nil)
)

// gone reports whether a status means the space no longer exists: DELETED
// (soft-deleted) and DESTROYED (API-NOTES section 6, cloudbrokerlib resourcestatus.py).
func gone(status string) bool { return status == "DELETED" || status == "DESTROYED" }

// Delete implements providers.Remover: cloudspaces/delete {cloudspaceId,
// permanently: true} of the space the task recorded. permanently, because a
// soft-deleted (DELETED) space still holds its name: the duplicate check ignores
// only DESTROYED ones, so a re-run after destroy could not create it again. A space
// already DELETED, DESTROYED or unknown (404) is gone. In doubt with no recorded id,
// the live space of the item's account and name is the task's own.
func (CloudSpaceKind) Delete(ctx context.Context, b *providers.Build, d *providers.Deletion) error {
	s := &Spec{}
	switch {
	case d.Planned != nil && d.Planned.Spec != nil:
		if p, ok := d.Planned.Spec.(*Spec); ok {
			s = p
		}
	case d.Info != nil:
		if err := providers.DecodeSpecJSON(d.Info.Spec, s); err != nil {
			return err
		}
	}
	if s.Endpoint == "" {
		s.Endpoint = d.Task.Endpoint
	}
	if s.Name == "" {
		s.Name = d.Task.ID
	}
	c, err := providers.EndpointClient(b, plan.Pos{}, s.Endpoint, EndpointKind, func(ep *plan.Endpoint) (*Client, error) {
		if err := checkAuth(ep.Auth); err != nil {
			return nil, err
		}
		return NewClient(ep, b.Plan.Redactor)
	})
	if err != nil {
		return err
	}
	id, _ := strconv.Atoi(d.PriorValue(OutCloudSpaceID))
	if guid := d.PriorValue(OutTaskGUID); id == 0 && guid != "" {
		// A create whose task was still running when its run stopped: the server
		// may still make the space after a lookup by name finds nothing, so its
		// outcome comes first.
		if id, err = createdBy(ctx, c, d.Exec, guid); err != nil {
			return err
		}
	}
	if id == 0 {
		if !d.InDoubt && d.PriorValue(OutTaskGUID) == "" {
			d.Log.Info().Msg("no cloud space was recorded for this task: nothing to delete")
			return nil
		}
		if s.AccountID == 0 {
			return fmt.Errorf("no record of the account of %s: cannot tell which cloud space an interrupted create made", d.Task.ID)
		}
		// An interrupted create: the live space of this account and name is ours.
		sp, err := (&cloudSpace{s: s, c: c}).lookup(ctx, d.Exec)
		if err != nil {
			return err
		}
		if sp == nil {
			if err := mayStillBeQueued(d, s); err != nil {
				return err
			}
			d.Log.Info().Msg("no cloud space of this name in the account: nothing to delete")
			return nil
		}
		id = sp.ID
	}
	sp, err := c.Get(ctx, id)
	switch {
	case providers.StatusOf(err) == http.StatusNotFound:
		d.Log.Debug().Int("cloudspace_id", id).Msg("cloud space unknown: gone already")
		return nil
	case err != nil:
		return fmt.Errorf("read cloud space %d: %w", id, err)
	case gone(sp.Status):
		d.Log.Debug().Int("cloudspace_id", id).Str("status", sp.Status).Msg("cloud space gone already")
		return nil
	case s.AccountID != 0 && sp.AccountID != 0 && sp.AccountID != s.AccountID:
		return fmt.Errorf("cloud space %d is in account %d, the task recorded account %d: not deleting a space it cannot identify", id, sp.AccountID, s.AccountID)
	}
	err = c.call(ctx, "cloudspaces/delete", map[string]any{"cloudspaceId": id, "permanently": true}, true, nil)
	var pe *providers.Error
	switch {
	case err == nil:
	case providers.StatusOf(err) == http.StatusNotFound:
		return nil
	case providers.StatusOf(err) == http.StatusBadRequest && errors.As(err, &pe) && strings.Contains(pe.Message, "being deployed"):
		// cloudbrokerlib refuses to delete a space while it deploys: later it can.
		pe.Retryable = true
		return fmt.Errorf("delete cloud space %d: %w", id, err)
	case providers.StatusOf(err) == http.StatusConflict:
		return fmt.Errorf("delete cloud space %d: %w (delete its virtual machines first)", id, err)
	default:
		return fmt.Errorf("delete cloud space %d: %w", id, err)
	}
	d.Log.Debug().Int("cloudspace_id", id).Msg("cloud space deleted")
	return nil
}

// Drift implements providers.Refresher, read-only (cloudspaces/get): the space gone,
// or its name, account, location or resource limits changed.
func (a *cloudSpace) Drift(ctx context.Context, x *providers.Exec) ([]providers.FieldDiff, error) {
	id, _ := strconv.Atoi(x.PriorValue(OutCloudSpaceID))
	if id == 0 {
		return []providers.FieldDiff{providers.Missing("cloud space " + a.s.Name + " (no id recorded)")}, nil
	}
	sp, err := a.c.Get(ctx, id)
	if providers.StatusOf(err) == http.StatusNotFound {
		return []providers.FieldDiff{providers.Missing("cloud space " + strconv.Itoa(id))}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cloud space %d: %w", id, err)
	}
	if gone(sp.Status) {
		return []providers.FieldDiff{{Field: "", Want: "cloud space " + strconv.Itoa(id), Got: "(missing: " + sp.Status + ")"}}, nil
	}
	var out []providers.FieldDiff
	if sp.Name != "" && sp.Name != a.s.Name {
		out = append(out, providers.FieldDiff{Field: "cloudspace_name", Want: a.s.Name, Got: sp.Name})
	}
	if sp.AccountID != 0 && sp.AccountID != a.s.AccountID {
		out = append(out, providers.FieldDiff{Field: "account_id", Want: strconv.Itoa(a.s.AccountID), Got: strconv.Itoa(sp.AccountID)})
	}
	if sp.Location != "" && sp.Location != a.s.Location {
		out = append(out, providers.FieldDiff{Field: "location", Want: a.s.Location, Got: sp.Location})
	}
	want := a.limits()
	for _, l := range []struct{ key, param, field string }{
		{"CU_M", "maxMemoryCapacity", "max_memory_capacity"}, {"CU_D", "maxVDiskCapacity", "max_vdisk_capacity"},
		{"CU_C", "maxCPUCapacity", "max_cpu_capacity"}, {"CU_NP", "maxNetworkPeerTransfer", "max_network_peer_transfer"},
		{"CU_I", "maxNumPublicIP", "max_num_public_ip"},
	} {
		have, ok := sp.ResourceLimits[l.key]
		if !ok || have == nil {
			continue
		}
		var w float64
		switch v := want[l.param].(type) {
		case int:
			w = float64(v)
		case float64:
			w = v
		}
		if math.Abs(*have-w) > 1e-9 {
			out = append(out, providers.FieldDiff{Field: l.field, Want: num(w), Got: num(*have)})
		}
	}
	return out, nil
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// createdBy waits for the create task guid and returns the id of the space it made:
// 0 when it made none (it failed, or the API no longer knows the task).
func createdBy(ctx context.Context, c *Client, x *providers.Exec, guid string) (int, error) {
	res, err := c.Await(ctx, guid)
	var te *TaskError
	switch {
	case errors.As(err, &te):
		x.Log.Debug().Str("task_guid", guid).Str("error", te.Message).Msg("the interrupted create failed: looking the space up by name")
		return 0, nil
	case errors.Is(err, ErrTaskGone):
		x.Log.Debug().Str("task_guid", guid).Msg("the interrupted create's task is unknown or expired: looking the space up by name")
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("wait for the interrupted create (async task %s): %w", guid, err)
	}
	id, err := decodeID(res)
	if err != nil {
		return 0, fmt.Errorf("the interrupted create (async task %s): task result: %w", guid, err)
	}
	return id, nil
}

// queuedCreateWindow is how long after an async create was sent its queued task may
// still make the space: public clients poll a task for up to 10 minutes and the
// server keeps a result for 600 s (API-NOTES section 3). Inference: a task not run
// within that time is not run.
const queuedCreateWindow = 10 * time.Minute

// outQueuedUntil records, on the first delete that met a possibly queued create,
// until when that create may still run: later attempts keep the bound, so a rerun
// of destroy does not move it.
const outQueuedUntil = "_create_may_run_until"

// mayStillBeQueued is the error that keeps the record of an interrupted async create
// whose task id was never recorded (the run died between the create's answer and its
// checkpoint) while the server may still run it: no space of its name is listed
// yet, but one may appear, which no record would then stand for. nil once the
// window is over, or when no such create was sent.
func mayStillBeQueued(d *providers.Deletion, s *Spec) error {
	if !d.InDoubt || d.PriorValue(OutTaskGUID) != "" || s.Async != nil && !*s.Async {
		return nil
	}
	until, err := time.Parse(time.RFC3339, d.PriorValue(outQueuedUntil))
	if err != nil {
		if d.InDoubtSince.IsZero() {
			return nil
		}
		until = d.InDoubtSince.Add(queuedCreateWindow).UTC().Truncate(time.Second).Add(time.Second)
	}
	if !time.Now().Before(until) {
		return nil
	}
	if d.PriorValue(outQueuedUntil) == "" {
		if err := d.Checkpoint(state.Outputs{outQueuedUntil: state.Plain(until.Format(time.RFC3339))}); err != nil {
			return err
		}
	}
	return fmt.Errorf("cloud space %q: the create of an interrupted run may still be queued on the server (its async task id was never recorded) and no space of that name is listed yet; "+
		"the record is kept: run destroy again after %s, when that create has run or never will", s.Name, until.Format(time.RFC3339))
}
