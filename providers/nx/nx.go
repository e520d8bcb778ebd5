// Package nx provisions Nx Witness systems into Nx Cloud: the nx_systems section
// binds a cloud system and connects a server to it (setup for a new server, cloud
// bind for an existing one) and shares it with users; nx_shares shares systems with
// users on their own. Endpoints are of kind "nx-cloud".
//
// A cloud bind is not idempotent: every call creates a new cloud system. The id and
// auth key are checkpointed the moment the bind answers; an attempt whose outcome is
// unknown is reconciled by listing the account's unactivated systems of that name
// before any new bind, and a system whose auth key was lost is removed before a new
// bind, so no orphan is left in the cloud.
package nx

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// Sections and endpoint kind.
const (
	SystemsSection = "nx_systems"
	SharesSection  = "nx_shares"
	EndpointKind   = "nx-cloud"
)

// Kinds returns the kinds of this package.
func Kinds() []providers.Kind { return []providers.Kind{SystemKind{}, ShareKind{}} }

var (
	_ providers.Kind = SystemKind{}
	_ providers.Kind = ShareKind{}
)

// Roles are the documented cloud access roles.
var Roles = []string{"none", "disabled", "custom", "liveViewer", "viewer", "advancedViewer", "localAdmin", "cloudAdmin", "maintenance", "owner", "system"}

// UserSpec is one share of a system with a cloud account.
type UserSpec struct {
	Email             string `yaml:"email" json:"email"`
	Role              string `yaml:"role" json:"role"`
	UserRoleID        string `yaml:"user_role_id" json:"user_role_id"`
	CustomPermissions string `yaml:"custom_permissions" json:"custom_permissions"`
	Enabled           *bool  `yaml:"enabled" json:"enabled"`
	VMSUserID         string `yaml:"vms_user_id" json:"vms_user_id"`
}

// AdminSpec are a server's local admin credentials.
type AdminSpec struct {
	Username string      `yaml:"username" json:"username"`
	Password plan.Secret `yaml:"password" json:"password"`
}

// SystemSpec is one nx_systems item.
type SystemSpec struct {
	Cloud         string         `yaml:"cloud" json:"cloud"`
	SystemName    string         `yaml:"system_name" json:"system_name"`
	Customization string         `yaml:"customization" json:"customization"`
	Organization  string         `yaml:"organization" json:"organization"`
	URL           string         `yaml:"url" json:"url"`
	Admin         AdminSpec      `yaml:"admin" json:"admin"`
	Mode          string         `yaml:"mode" json:"mode"`
	LocalPassword plan.Secret    `yaml:"local_password" json:"local_password"`
	Settings      map[string]any `yaml:"settings" json:"settings"`
	TLS           plan.TLS       `yaml:"tls" json:"tls"`
	Users         []UserSpec     `yaml:"users" json:"-"`
}

// ShareItemSpec is one nx_shares item.
type ShareItemSpec struct {
	Cloud         string `yaml:"cloud" json:"cloud"`
	System        string `yaml:"system" json:"system"`
	CloudSystemID string `yaml:"cloud_system_id" json:"cloud_system_id"`
	UserSpec      `yaml:",inline"`
}

func hasRef(s string) bool { return strings.Contains(s, "${outputs.") }

func checkUser(u *UserSpec, where string) []error {
	var errs []error
	if u.Email == "" {
		errs = append(errs, fmt.Errorf("%s.email: required", where))
	} else if !hasRef(u.Email) {
		if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email {
			errs = append(errs, fmt.Errorf("%s.email: %q is not an email address", where, u.Email))
		}
	}
	if u.Role == "" {
		errs = append(errs, fmt.Errorf("%s.role: required (one of %s)", where, strings.Join(Roles, ", ")))
	} else if !hasRef(u.Role) && !contains(Roles, u.Role) {
		errs = append(errs, fmt.Errorf("%s.role: %q is not one of %s", where, u.Role, strings.Join(Roles, ", ")))
	}
	if u.Role == "custom" && u.CustomPermissions == "" {
		errs = append(errs, fmt.Errorf("%s.custom_permissions: required with role custom", where))
	}
	return errs
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

func cloudClient(b *providers.Build, item *plan.Item, name string) (*Cloud, error) {
	return providers.EndpointClient(b, item.Pos, name, EndpointKind, func(ep *plan.Endpoint) (*Cloud, error) { return NewCloud(ep, b.Plan.Redactor) })
}

// SystemKind builds nx_systems tasks.
type SystemKind struct{}

func (SystemKind) Section() string { return SystemsSection }
func (SystemKind) Doc() string     { return systemsDoc }

// Build implements providers.Kind.
func (SystemKind) Build(b *providers.Build, item *plan.Item) ([]*providers.Task, error) {
	var s SystemSpec
	if err := providers.Decode(item, &s); err != nil {
		return nil, err
	}
	var errs []error
	if s.SystemName == "" {
		s.SystemName = item.Name
	}
	if s.Customization == "" {
		s.Customization = "default"
	}
	if s.Mode == "" {
		s.Mode = "auto"
	}
	if !contains([]string{"new", "existing", "auto"}, s.Mode) {
		errs = append(errs, fmt.Errorf("mode: %q is not one of new, existing, auto", s.Mode))
	}
	if s.URL == "" {
		errs = append(errs, errors.New("url: required (the server's address, e.g. https://10.0.0.5:7001)"))
	}
	if s.Admin.Username == "" {
		s.Admin.Username = "admin"
	}
	if s.Admin.Password.IsZero() {
		errs = append(errs, errors.New("admin.password: required (the server's local admin password; admin for a factory-new server)"))
	}
	if s.TLS.Insecure && (s.TLS.CAFile != "" || s.TLS.Fingerprint != "") {
		errs = append(errs, errors.New("tls: conflicting TLS options: insecure cannot be combined with ca_file or fingerprint_sha256"))
	}
	if s.TLS.Fingerprint != "" {
		fp, err := plan.NormalizeFingerprint(s.TLS.Fingerprint)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls.fingerprint_sha256: %v", err))
		}
		s.TLS.Fingerprint = fp
	}
	if s.TLS.CAFile != "" {
		pem, err := plan.ReadCAFile(b.Plan.Dir, s.TLS.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls.ca_file: %v", err))
		}
		s.TLS.CAPEM = pem
	}
	seen := map[string]bool{}
	for i := range s.Users {
		u := &s.Users[i]
		errs = append(errs, checkUser(u, fmt.Sprintf("users[%d]", i))...)
		key := strings.ToLower(u.Email)
		if seen[key] {
			errs = append(errs, fmt.Errorf("users[%d].email: %s is listed twice", i, u.Email))
		}
		seen[key] = true
	}
	cloud, err := cloudClient(b, item, s.Cloud)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, providers.ItemErrors(item, errs)
	}
	deps := providers.ItemDeps(item)
	sp := &s
	sys := &providers.Task{
		ID: item.Name, Kind: SystemsSection, Pos: item.Pos, Deps: deps, Refs: item.Refs, Spec: sp, Endpoint: s.Cloud,
		Hash:   providers.SpecHash(SystemsSection, item.Name, sp),
		Action: &systemAction{s: sp, cloud: cloud, b: b, name: item.Name},
	}
	tasks := []*providers.Task{sys}
	for i := range s.Users {
		u := s.Users[i]
		id := item.Name + "/share/" + strings.ToLower(u.Email)
		ss := &ShareItemSpec{Cloud: s.Cloud, System: item.Name, UserSpec: u}
		tasks = append(tasks, &providers.Task{
			ID: id, Kind: SystemsSection, Pos: item.Pos, Deps: []string{item.Name}, Spec: ss, Endpoint: s.Cloud,
			Refs:   []plan.Ref{{Item: item.Name, Key: "cloud_system_id", Pos: item.Pos}},
			Hash:   providers.SpecHash(SystemsSection, id, ss),
			Action: &shareAction{s: ss, cloud: cloud},
		})
	}
	return tasks, nil
}

type systemAction struct {
	s     *SystemSpec
	cloud *Cloud
	b     *providers.Build
	name  string
}

func (a *systemAction) server() (*Server, error) {
	url, tls := a.s.URL, a.s.TLS
	if a.b.ServerURL != nil {
		url = a.b.ServerURL(url)
	}
	if a.b.TLSOverride != nil {
		tls = *a.b.TLSOverride
	}
	c, err := a.b.Clients.Get("nx-server:"+url, func() (any, error) {
		return NewServer(a.name, url, tls, a.s.Admin.Username, []plan.Secret{a.s.Admin.Password, a.s.LocalPassword}, a.b.Plan.Redactor)
	})
	if err != nil {
		return nil, err
	}
	return c.(*Server), nil
}

// Apply implements providers.Action.
func (a *systemAction) Apply(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	s := a.s
	srv, err := a.server()
	if err != nil {
		return nil, err
	}
	// A server already bound to the cloud system this task created is done.
	id, key := x.PriorValue("cloud_system_id"), x.PriorValue("auth_key")
	info, err := srv.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read server state: %w", err)
	}
	if info.CloudID != "" {
		if id != "" && info.CloudID == id {
			return a.done(ctx, x, srv, id, "already-bound")
		}
		if id == "" && (x.InDoubt || x.Attempt > 1) {
			// The bind may have answered but not been checkpointed; adopt only if
			// the cloud system is ours and of this name.
			if sys, err := a.find(ctx, info.CloudID); err != nil {
				return nil, err
			} else if sys != nil {
				return a.done(ctx, x, srv, sys.ID, "already-bound")
			}
		}
		return nil, fmt.Errorf("server %s is already bound to cloud system %s, not to this plan's %q: refusing to rebind (unbind it by hand if that is intended)", s.URL, info.CloudID, s.SystemName)
	}
	// Get a cloud system with a usable auth key, never leaving an orphan behind.
	if id != "" && key == "" {
		x.Log.Info().Str("cloud_system_id", id).Msg("auth key of the cloud system was not kept (no state key): removing it and binding again")
		if err := a.cloud.Delete(ctx, id); err != nil {
			return nil, fmt.Errorf("remove cloud system %s whose auth key was lost: %w", id, err)
		}
		if err := x.Checkpoint(state.Outputs{"cloud_system_id": state.Plain("")}); err != nil {
			return nil, err
		}
		id = ""
	}
	if id == "" && (x.InDoubt || x.Attempt > 1) {
		cands, err := a.candidates(ctx)
		if err != nil {
			return nil, fmt.Errorf("reconcile in-doubt bind: %w", err)
		}
		switch len(cands) {
		case 0:
		case 1:
			// The earlier bind took effect but its answer (and auth key) was lost:
			// the key cannot be read back, so remove that system before binding again.
			x.Log.Info().Str("cloud_system_id", cands[0].ID).Msg("found the cloud system of an earlier attempt without its auth key: removing it before binding again")
			if err := a.cloud.Delete(ctx, cands[0].ID); err != nil {
				return nil, fmt.Errorf("remove unactivated cloud system %s of an earlier attempt: %w", cands[0].ID, err)
			}
		default:
			ids := make([]string, len(cands))
			for i, c := range cands {
				ids[i] = c.ID
			}
			return nil, fmt.Errorf("found %d unactivated cloud systems named %q (%s): remove the extras by hand, then rerun", len(cands), s.SystemName, strings.Join(ids, ", "))
		}
	}
	owner := x.PriorValue("owner")
	if id == "" {
		sys, err := a.cloud.Bind(ctx, s.SystemName, s.Customization, s.Organization)
		if err != nil {
			return nil, fmt.Errorf("bind cloud system %q: %w", s.SystemName, err)
		}
		id, key, owner = sys.ID, sys.AuthKey, sys.Owner
		if owner == "" {
			owner = a.cloud.Email
		}
		if err := x.Checkpoint(state.Outputs{"cloud_system_id": state.Plain(id), "auth_key": state.SecretOutput(key), "owner": state.Plain(owner)}); err != nil {
			return nil, err
		}
	}
	if owner == "" {
		owner = a.cloud.Email
	}
	mode := s.Mode
	if mode == "auto" {
		mode = map[bool]string{true: "existing", false: "new"}[info.SetUp()]
	}
	creds := map[string]string{"systemId": id, "authKey": key, "owner": owner}
	switch mode {
	case "new":
		body := map[string]any{"name": s.SystemName, "settings": s.Settings, "cloud": creds}
		if !s.LocalPassword.IsZero() {
			body["local"] = map[string]string{"password": s.LocalPassword.Reveal()}
		}
		if body["settings"] == nil {
			body["settings"] = map[string]any{}
		}
		if err := srv.Setup(ctx, body); err != nil {
			if st := providers.StatusOf(err); st == 403 || st == 422 {
				// Already set up (by an earlier attempt whose answer was lost?): read again.
				if info, ierr := srv.Info(ctx); ierr == nil && info.CloudID == id {
					return a.done(ctx, x, srv, id, mode)
				}
			}
			return nil, fmt.Errorf("set up server %s: %w", s.URL, err)
		}
	default:
		if s.Organization != "" {
			creds["organizationId"] = s.Organization
		}
		if err := srv.CloudBind(ctx, creds); err != nil {
			if info, ierr := srv.Info(ctx); ierr == nil && info.CloudID == id {
				return a.done(ctx, x, srv, id, mode)
			}
			return nil, fmt.Errorf("connect server %s to cloud system %s: %w", s.URL, id, err)
		}
		if len(s.Settings) > 0 {
			if err := srv.PatchSettings(ctx, s.Settings); err != nil {
				return nil, fmt.Errorf("apply settings on %s: %w", s.URL, err)
			}
		}
	}
	return a.done(ctx, x, nil, id, mode)
}

// done finishes a bound system: settings re-applied on an update, outputs returned.
func (a *systemAction) done(ctx context.Context, x *providers.Exec, srv *Server, id, mode string) (state.Outputs, error) {
	if srv != nil && x.Changed && len(a.s.Settings) > 0 {
		if err := srv.PatchSettings(ctx, a.s.Settings); err != nil {
			return nil, fmt.Errorf("update settings on %s: %w", a.s.URL, err)
		}
	}
	out := state.Outputs{"cloud_system_id": state.Plain(id), "mode_used": state.Plain(mode)}
	if k := x.PriorValue("auth_key"); k != "" {
		out["auth_key"] = state.SecretOutput(k)
	}
	if o := x.PriorValue("owner"); o != "" {
		out["owner"] = state.Plain(o)
	} else {
		out["owner"] = state.Plain(a.cloud.Email)
	}
	return out, nil
}

// candidates lists unactivated cloud systems with this item's name.
func (a *systemAction) candidates(ctx context.Context) ([]System, error) {
	list, err := a.cloud.Systems(ctx, a.s.Organization)
	if err != nil {
		return nil, err
	}
	var out []System
	for _, s := range list {
		if s.Name == a.s.SystemName && s.Status == "notActivated" {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// find returns the account's cloud system with this id and name, or nil.
func (a *systemAction) find(ctx context.Context, id string) (*System, error) {
	list, err := a.cloud.Systems(ctx, a.s.Organization)
	if err != nil {
		return nil, err
	}
	for _, s := range list {
		if s.ID == id && s.Name == a.s.SystemName {
			return &s, nil
		}
	}
	return nil, nil
}

// ShareKind builds nx_shares tasks.
type ShareKind struct{}

func (ShareKind) Section() string { return SharesSection }
func (ShareKind) Doc() string     { return sharesDoc }

// Build implements providers.Kind.
func (ShareKind) Build(b *providers.Build, item *plan.Item) ([]*providers.Task, error) {
	var s ShareItemSpec
	if err := providers.Decode(item, &s); err != nil {
		return nil, err
	}
	errs := checkUser(&s.UserSpec, "share")
	refs := append([]plan.Ref(nil), item.Refs...)
	switch {
	case s.System != "" && s.CloudSystemID != "":
		errs = append(errs, errors.New("system and cloud_system_id: give one of them, not both"))
	case s.System == "" && s.CloudSystemID == "":
		errs = append(errs, errors.New("system: required (an nx_systems item name) unless cloud_system_id is given"))
	case s.System != "":
		refs = append(refs, plan.Ref{Item: s.System, Key: "cloud_system_id", Pos: item.Pos})
	}
	cloud, err := cloudClient(b, item, s.Cloud)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, providers.ItemErrors(item, errs)
	}
	deps := providers.ItemDeps(item, s.System)
	sp := &s
	return []*providers.Task{{
		ID: item.Name, Kind: SharesSection, Pos: item.Pos, Deps: deps, Refs: refs, Spec: sp, Endpoint: s.Cloud,
		Hash:   providers.SpecHash(SharesSection, item.Name, sp),
		Action: &shareAction{s: sp, cloud: cloud},
	}}, nil
}

type shareAction struct {
	s     *ShareItemSpec
	cloud *Cloud
}

// Apply shares the system (an upsert: safe to repeat), skipping the call when an
// identical share exists already.
func (a *shareAction) Apply(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	s := a.s
	id := s.CloudSystemID
	if id == "" {
		v, err := x.Lookup(plan.Ref{Item: s.System, Key: "cloud_system_id"})
		if err != nil {
			return nil, err
		}
		id = v
	}
	enabled := s.Enabled == nil || *s.Enabled
	want := ShareSpec{AccountEmail: strings.ToLower(s.Email), AccessRole: s.Role, UserRoleID: s.UserRoleID, CustomPermissions: s.CustomPermissions, IsEnabled: enabled, VMSUserID: s.VMSUserID}
	existing, err := a.cloud.Shares(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("list shares of %s: %w", id, err)
	}
	for _, e := range existing {
		if strings.EqualFold(e.AccountEmail, want.AccountEmail) && e.AccessRole == want.AccessRole && e.IsEnabled == want.IsEnabled &&
			e.UserRoleID == want.UserRoleID && e.CustomPermissions == want.CustomPermissions && e.VMSUserID == want.VMSUserID {
			x.Log.Debug().Msg("share exists already")
			return state.Outputs{"email": state.Plain(want.AccountEmail), "access_role": state.Plain(want.AccessRole)}, nil
		}
	}
	if err := a.cloud.Share(ctx, id, want); err != nil {
		return nil, fmt.Errorf("share cloud system %s with %s: %w", id, want.AccountEmail, err)
	}
	return state.Outputs{"email": state.Plain(want.AccountEmail), "access_role": state.Plain(want.AccessRole)}, nil
}

const systemsDoc = `nx_systems: connect an Nx Witness server to Nx Cloud and share it with users.
  cloud           nx-cloud endpoint name (required); its auth is the cloud account
                  (username, password) that owns the systems
  url             the server's URL, e.g. https://10.0.0.5:7001 (required)
  admin           {username (default admin), password (required, secret)}: local admin
  mode            new (POST /rest/v3/system/setup), existing (POST /rest/v3/system/cloud/bind)
                  or auto (default: GET /rest/v3/system/info decides)
  system_name     cloud system name (default: the item name)
  customization   default "default"
  organization    organization id: bind through /partners/api/v3/cloud_systems/
  local_password  new local admin password sent with setup (secret)
  settings        system settings sent with setup (or PATCHed for existing servers),
                  e.g. {autoDiscoveryEnabled: true, statisticsAllowed: false}
  tls             {ca_file, fingerprint_sha256, insecure, server_name} for the server's
                  (usually self-signed) certificate; insecure only when set here
  users           list of shares, each {email, role, user_role_id, custom_permissions,
                  enabled (default true), vms_user_id}; each becomes a task
                  "<name>/share/<email>"; role is one of none, disabled, custom,
                  liveViewer, viewer, advancedViewer, localAdmin, cloudAdmin,
                  maintenance, owner, system
  outputs: cloud_system_id, auth_key (secret: kept encrypted with PROVISION_STATE_KEY,
  otherwise not stored), owner, mode_used
A server already bound to this item's cloud system counts as done; bound to another
one, the task fails and nothing is rebound.`

const sharesDoc = `nx_shares: share a cloud system with a cloud account (an upsert: rerunning is harmless).
  cloud             nx-cloud endpoint name (required)
  system            name of an nx_systems item (its cloud_system_id output is used and
                    the share waits for it), or
  cloud_system_id   a literal cloud system id
  email, role, user_role_id, custom_permissions, enabled, vms_user_id: as in nx_systems users
  outputs: email, access_role
Example, an auditor on every store of a CSV:
    - name: audit-${row.store}
      foreach: {csv: stores.csv}
      system: store-${row.store}
      email: audit@example.com
      role: viewer`

var (
	_ providers.Prober = (*systemAction)(nil)
	_ providers.Prober = (*shareAction)(nil)
)

// Probe reads the server's state (read-only) for `provision plan --probe`.
func (a *systemAction) Probe(ctx context.Context, x *providers.Exec) (bool, string, error) {
	srv, err := a.server()
	if err != nil {
		return false, "", err
	}
	info, err := srv.Info(ctx)
	if err != nil {
		return false, "", err
	}
	switch {
	case info.CloudID != "" && info.CloudID == x.PriorValue("cloud_system_id"):
		return true, "server bound to this item's cloud system " + info.CloudID, nil
	case info.CloudID != "":
		return true, "server bound to cloud system " + info.CloudID, nil
	case info.SetUp():
		return false, "server set up, not bound to the cloud", nil
	}
	return false, "server factory-new", nil
}

// Probe lists the system's shares (read-only) for `provision plan --probe`.
func (a *shareAction) Probe(ctx context.Context, x *providers.Exec) (bool, string, error) {
	id := a.s.CloudSystemID
	if id == "" {
		if x.Lookup == nil {
			return false, "", fmt.Errorf("cloud system of %s not known yet", a.s.System)
		}
		v, err := x.Lookup(plan.Ref{Item: a.s.System, Key: "cloud_system_id"})
		if err != nil {
			return false, "", err
		}
		id = v
	}
	list, err := a.cloud.Shares(ctx, id)
	if err != nil {
		return false, "", err
	}
	for _, e := range list {
		if strings.EqualFold(e.AccountEmail, a.s.Email) {
			return true, "shared as " + e.AccessRole, nil
		}
	}
	return false, "not shared", nil
}
