package nx

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"provision/providers"
	"provision/providers/rest"
)

var (
	_ providers.Refresher = (*systemAction)(nil)
	_ providers.Refresher = (*shareAction)(nil)
)

// Drift implements providers.Refresher for a system task, read-only: the cloud
// system (gone, name, customization, activated), the server (bound to it) and the
// settings the plan sets. The auth key is never read back (the cloud never shows it).
func (a *systemAction) Drift(ctx context.Context, x *providers.Exec) ([]providers.FieldDiff, error) {
	s := a.s
	id := x.PriorValue("cloud_system_id")
	if id == "" {
		return []providers.FieldDiff{providers.Missing("a cloud system (none recorded)")}, nil
	}
	sys, err := a.cloud.System(ctx, id)
	if providers.StatusOf(err) == http.StatusForbidden {
		sys, err = nil, nil // "inaccessible or removed" (nx_system_tests cloud_api/_cloud.py)
	}
	if err != nil {
		return nil, fmt.Errorf("read cloud system %s: %w", id, err)
	}
	if sys == nil {
		return []providers.FieldDiff{providers.Missing("cloud system " + id)}, nil
	}
	var out []providers.FieldDiff
	if sys.Name != "" && sys.Name != s.SystemName {
		out = append(out, providers.FieldDiff{Field: "system_name", Want: s.SystemName, Got: sys.Name})
	}
	if sys.Customization != "" && sys.Customization != s.Customization {
		out = append(out, providers.FieldDiff{Field: "customization", Want: s.Customization, Got: sys.Customization})
	}
	if sys.Status != "" && sys.Status != "activated" {
		out = append(out, providers.FieldDiff{Field: "status", Want: "activated", Got: sys.Status})
	}
	srv, err := a.server()
	if err != nil {
		return nil, err
	}
	info, err := srv.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the state of server %s: %w", s.URL, err)
	}
	if !strings.EqualFold(info.CloudID, id) {
		got := info.CloudID
		if !info.Bound() {
			got = "(not bound)"
		}
		out = append(out, providers.FieldDiff{Field: "url", Want: "server bound to cloud system " + id, Got: got})
	}
	if len(s.Settings) > 0 {
		have, err := srv.Settings(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the settings of server %s: %w", s.URL, err)
		}
		for _, k := range sortedKeys(s.Settings) {
			want := settingText(s.Settings[k])
			got, ok := have[k]
			switch {
			case !ok:
				out = append(out, providers.FieldDiff{Field: "settings." + k, Want: want, Got: "(missing)"})
			case settingText(got) != want:
				out = append(out, providers.FieldDiff{Field: "settings." + k, Want: want, Got: settingText(got)})
			}
		}
	}
	return out, nil
}

// settingText is a setting's value as text, so that true and "true" compare equal
// (servers answer some settings as strings).
func settingText(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// Settings reads the system settings (GET /rest/v3/system/settings).
func (s *Server) Settings(ctx context.Context) (map[string]any, error) {
	resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodGet, Path: "/rest/v3/system/settings"})
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := decodeReply(resp, "GET /rest/v3/system/settings", &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Drift implements providers.Refresher for a share, read-only: the share gone
// (Field "" Got "(missing)"), its role, enabled flag and custom permissions.
// userRoleId and vmsUserId are the VMS's own (the cloud and the server fill them)
// and are not compared; neither are roleIds of VMS 6.x.
func (a *shareAction) Drift(ctx context.Context, x *providers.Exec) ([]providers.FieldDiff, error) {
	id := x.PriorValue("cloud_system_id")
	if id == "" {
		var err error
		if id, err = a.systemID(x); err != nil {
			return nil, err
		}
	}
	want := a.s.share()
	list, err := a.cloud.Shares(ctx, id)
	if st := providers.StatusOf(err); st == http.StatusForbidden || st == http.StatusNotFound {
		return []providers.FieldDiff{providers.Missing("share of cloud system " + id + " with " + want.AccountEmail + " (the system is gone)")}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the shares of cloud system %s: %w", id, err)
	}
	cur := find(list, want.AccountEmail)
	if cur == nil {
		if want.AccessRole == "none" {
			return nil, nil
		}
		return []providers.FieldDiff{providers.Missing("share with " + want.AccountEmail + " as " + want.AccessRole)}, nil
	}
	var out []providers.FieldDiff
	if cur.AccessRole != want.AccessRole {
		out = append(out, providers.FieldDiff{Field: "role", Want: want.AccessRole, Got: cur.AccessRole})
	}
	if cur.IsEnabled != want.IsEnabled {
		out = append(out, providers.FieldDiff{Field: "enabled", Want: strconv.FormatBool(want.IsEnabled), Got: strconv.FormatBool(cur.IsEnabled)})
	}
	if want.AccessRole == "custom" && cur.CustomPermissions != want.CustomPermissions {
		out = append(out, providers.FieldDiff{Field: "custom_permissions", Want: want.CustomPermissions, Got: cur.CustomPermissions})
	}
	return out, nil
}
