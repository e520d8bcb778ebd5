package nx

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
)

var (
	_ providers.Remover = (*SystemKind)(nil)
	_ providers.Remover = (*ShareKind)(nil)
)

// Delete implements providers.Remover for nx_systems tasks: a system task
// disconnects its server from the cloud (when the plan still gives the server's
// admin password) and removes its cloud system; a share task removes its share.
func (*SystemKind) Delete(ctx context.Context, b *providers.Build, d *providers.Deletion) error {
	if isShareTask(d) {
		return deleteShare(ctx, b, d)
	}
	return deleteSystem(ctx, b, d)
}

// Delete implements providers.Remover for nx_shares tasks: the share is removed.
func (*ShareKind) Delete(ctx context.Context, b *providers.Build, d *providers.Deletion) error {
	return deleteShare(ctx, b, d)
}

// isShareTask tells a share task of an nx_systems item from its system task.
func isShareTask(d *providers.Deletion) bool {
	if d.Planned != nil {
		_, ok := d.Planned.Spec.(*ShareSpec)
		return ok
	}
	if d.Info != nil && len(d.Info.Spec) > 0 {
		var m map[string]json.RawMessage
		if json.Unmarshal(d.Info.Spec, &m) == nil {
			_, ok := m["email"]
			return ok
		}
	}
	_, ok := d.Prior["email"]
	return ok
}

// cloudFor returns the shared client of the nx-cloud endpoint name.
func cloudFor(b *providers.Build, name string) (*Cloud, error) {
	if name == "" {
		return nil, fmt.Errorf("no nx-cloud endpoint is recorded for this task")
	}
	return providers.EndpointClient(b, plan.Pos{}, name, EndpointKind, func(ep *plan.Endpoint) (*Cloud, error) {
		return NewCloud(ep, b.Plan.Redactor)
	})
}

// recordedSystem is what destroy knows of a system task: the current plan's spec
// (with secrets) when the plan still lists it, else the recorded one (without).
func recordedSystem(d *providers.Deletion) (*SystemSpec, bool, error) {
	if d.Planned != nil {
		if s, ok := d.Planned.Spec.(*SystemSpec); ok {
			return s, true, nil
		}
	}
	s := &SystemSpec{}
	if d.Info == nil || len(d.Info.Spec) == 0 {
		// Neither the plan nor the state has the spec: only a recorded id identifies
		// the system (its name may not be the item name).
		s.Cloud = d.Task.Endpoint
		return s, false, nil
	}
	if err := providers.DecodeSpecJSON(d.Info.Spec, s); err != nil {
		return nil, false, err
	}
	s.Admin.Password, s.LocalPassword = plan.Secret{}, plan.Secret{} // masks, not values
	if s.Cloud == "" {
		s.Cloud = d.Task.Endpoint
	}
	return s, false, nil
}

// deleteSystem disconnects the server and removes the cloud system the task bound.
func deleteSystem(ctx context.Context, b *providers.Build, d *providers.Deletion) error {
	s, withSecrets, err := recordedSystem(d)
	if err != nil {
		return err
	}
	cloud, err := cloudFor(b, s.Cloud)
	if err != nil {
		return err
	}
	id := strings.Trim(d.PriorValue("cloud_system_id"), "{}")
	if id == "" {
		if !d.InDoubt {
			d.Log.Info().Msg("no cloud system was recorded for this task: nothing to delete")
			return nil
		}
		if s.SystemName == "" {
			return fmt.Errorf("%s: an interrupted bind may have made a cloud system, but neither the plan nor the state tells its name: look for an unactivated system in Nx Cloud by hand (nothing deleted)", d.Task.ID)
		}
		// An interrupted bind may have created a system whose id was never recorded:
		// only an unactivated system of this name can be it (no server took it).
		list, err := cloud.Systems(ctx, s.Organization)
		if err != nil {
			return fmt.Errorf("look for a cloud system an interrupted bind may have created: %w", err)
		}
		var cands []System
		for _, c := range list {
			if c.Name == s.SystemName && c.Status == StatusNotActivated {
				cands = append(cands, c)
			}
		}
		switch len(cands) {
		case 0:
			d.Log.Info().Msg("no unactivated cloud system of this name: nothing to delete")
			return nil
		case 1:
			id = cands[0].ID
		default:
			return fmt.Errorf("found %d unactivated cloud systems named %q (%s): cannot tell which one this task created; remove the right one in Nx Cloud", len(cands), s.SystemName, strings.Join(sortedIDs(cands), ", "))
		}
	}
	if withSecrets {
		if err := unbindServer(ctx, b, d, s, cloud, id); err != nil {
			return err
		}
	} else {
		d.Log.Warn().Str("server", s.URL).Msg("the plan no longer lists this system, so its server's admin password is unknown: the server was not told to disconnect (Nx Cloud tells it when the cloud system goes)")
	}
	err = removeCloudSystem(ctx, cloud, id)
	cloud.forgetShares(id)
	if err != nil {
		return fmt.Errorf("remove cloud system %s: %w", id, err)
	}
	d.Log.Debug().Str("cloud_system_id", id).Msg("cloud system removed")
	return nil
}

// removeCloudSystem deletes a cloud system; 404 and 403 ("inaccessible or removed",
// nx_system_tests cloud_api/_cloud.py) mean it is gone already.
func removeCloudSystem(ctx context.Context, cloud *Cloud, id string) error {
	err := cloud.Delete(ctx, id)
	if st := providers.StatusOf(err); st == http.StatusForbidden || st == http.StatusNotFound {
		return nil
	}
	return err
}

// unbindServer tells the server to leave cloud system id (POST
// /rest/v3/system/cloud/unbind {password}), when it is bound to it. A server bound
// elsewhere, or not at all, is left alone.
func unbindServer(ctx context.Context, b *providers.Build, d *providers.Deletion, s *SystemSpec, cloud *Cloud, id string) error {
	a := &systemAction{s: s, cloud: cloud, b: b, name: d.Task.ID}
	srv, err := a.server()
	if err != nil {
		return err
	}
	info, err := srv.Info(ctx)
	if err != nil {
		return fmt.Errorf("read the state of server %s: %w", s.URL, err)
	}
	if !info.Bound() {
		d.Log.Debug().Msg("server is not bound to the cloud")
		return nil
	}
	if !strings.EqualFold(info.CloudID, id) {
		d.Log.Warn().Str("server_cloud_id", info.CloudID).Msg("server is bound to another cloud system: left alone")
		return nil
	}
	// The unbind body carries the local admin password: the one setup set
	// (local_password), else the admin password the plan logs in with.
	var tried []string
	var lastErr error
	for _, c := range []struct {
		label string
		pw    plan.Secret
	}{{"local_password", s.LocalPassword}, {"admin.password", s.Admin.Password}} {
		if c.pw.IsZero() || (c.label == "admin.password" && c.pw.Reveal() == s.LocalPassword.Reveal()) {
			continue
		}
		tried = append(tried, c.label)
		err := srv.CloudUnbind(ctx, c.pw)
		switch st := providers.StatusOf(err); {
		case err == nil:
			d.Log.Debug().Msg("server disconnected from the cloud")
			return nil
		case st == http.StatusForbidden || st == http.StatusUnauthorized:
			lastErr = err
			continue // wrong password: try the next one
		default:
			if now, ierr := srv.Info(ctx); ierr == nil && !now.Bound() {
				return nil // it took effect despite the error answer
			}
			return fmt.Errorf("disconnect server %s from cloud system %s: %w", s.URL, id, err)
		}
	}
	if lastErr == nil {
		return fmt.Errorf("disconnect server %s from cloud system %s: no admin password in the plan", s.URL, id)
	}
	return fmt.Errorf("disconnect server %s from cloud system %s: the server refused %s: %w", s.URL, id, strings.Join(tried, " and "), lastErr)
}

// CloudUnbind disconnects the server from its cloud system (POST
// /rest/v3/system/cloud/unbind {password}, the local admin password). Repeating it
// on an unbound server is refused (the caller reads the state first).
func (s *Server) CloudUnbind(ctx context.Context, password plan.Secret) error {
	resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/rest/v3/system/cloud/unbind", Op: "POST /rest/v3/system/cloud/unbind",
		JSON: map[string]string{"password": password.Reveal()}})
	if err != nil {
		return err
	}
	return decodeReply(resp, "POST /rest/v3/system/cloud/unbind", nil)
}

// recordedShare is the share a task made: email and cloud system id.
func recordedShare(d *providers.Deletion) (s *ShareSpec, systemID string, err error) {
	s = &ShareSpec{}
	switch {
	case d.Planned != nil:
		if p, ok := d.Planned.Spec.(*ShareSpec); ok {
			c := *p
			s = &c
		}
	case d.Info != nil:
		if err := providers.DecodeSpecJSON(d.Info.Spec, s); err != nil {
			return nil, "", err
		}
	}
	if e := d.PriorValue("email"); e != "" {
		s.Email = e
	}
	if s.Cloud == "" {
		s.Cloud = d.Task.Endpoint
	}
	systemID = d.PriorValue("cloud_system_id")
	if systemID == "" && s.System == "" && !providers.HasRef(s.CloudSystemID) {
		systemID = strings.Trim(s.CloudSystemID, "{}")
	}
	if systemID == "" && s.System != "" && d.Lookup != nil {
		systemID, _ = d.Lookup(plan.Ref{Item: s.System, Key: "cloud_system_id"})
	}
	return s, systemID, nil
}

// deleteShare removes one share with the upsert the seed documents (accessRole
// "none": nx-cloud-add-users; API-NOTES section 1). The owner's access is never
// touched; a system that is gone has no shares left.
func deleteShare(ctx context.Context, b *providers.Build, d *providers.Deletion) error {
	s, id, err := recordedShare(d)
	if err != nil {
		return err
	}
	email := strings.ToLower(s.Email)
	if email == "" || providers.HasRef(email) {
		return fmt.Errorf("no record of the share's email: cannot tell which share %s made", d.Task.ID)
	}
	if id == "" {
		d.Log.Info().Msg("no cloud system is recorded for this share (its system is gone or never connected): nothing to delete")
		return nil
	}
	cloud, err := cloudFor(b, s.Cloud)
	if err != nil {
		return err
	}
	list, err := cloud.Shares(ctx, id)
	if st := providers.StatusOf(err); st == http.StatusForbidden || st == http.StatusNotFound {
		d.Log.Debug().Str("cloud_system_id", id).Msg("cloud system is gone, and its shares with it")
		return nil
	}
	if err != nil {
		return fmt.Errorf("list the shares of cloud system %s: %w", id, err)
	}
	cur := find(list, email)
	switch {
	case cur == nil:
		d.Log.Debug().Msg("not shared: nothing to delete")
		return nil
	case cur.AccessRole == "owner":
		return fmt.Errorf("%s owns cloud system %s: the owner's access cannot be removed", email, id)
	}
	none := Share{AccountEmail: email, AccessRole: "none", IsEnabled: true}
	err = cloud.PutShare(ctx, id, none)
	if st := providers.StatusOf(err); st == http.StatusForbidden || st == http.StatusNotFound {
		cloud.forgetShares(id)
		return nil // the system went meanwhile
	}
	if err != nil {
		cloud.forgetShares(id) // the write may have taken effect
		return fmt.Errorf("remove the share of cloud system %s with %s: %w", id, email, err)
	}
	cloud.noteShare(id, none)
	d.Log.Debug().Str("cloud_system_id", id).Msg("share removed")
	return nil
}
