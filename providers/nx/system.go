package nx

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// SystemKind builds nx_systems tasks: one system task per item (ID = item name) and
// one share task per user ("<item>/share/<email>") that waits for it.
type SystemKind struct{}

// Section implements providers.Kind.
func (*SystemKind) Section() string { return SystemsSection }

// Doc implements providers.Kind.
func (*SystemKind) Doc() string { return systemsDoc }

// Build implements providers.Kind.
func (*SystemKind) Build(b *providers.Build, item *plan.Item) ([]*providers.Task, error) {
	s := &SystemSpec{}
	if err := providers.Decode(item, s); err != nil {
		return nil, err
	}
	s.setDefaults(item.Name)
	p := providers.NewProblems(item)
	cloud := cloudClient(b, p, s.Cloud)
	normURL := checkSystem(p, s)
	checkTLS(b, p, s)
	checkUsers(p, s.Users)
	claimSystem(b, p, s, item.Name, normURL)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return systemTasks(b, item, s, cloud), nil
}

// setDefaults fills the fields an item may leave out.
func (s *SystemSpec) setDefaults(itemName string) {
	if s.SystemName == "" {
		s.SystemName = itemName
	}
	if s.Customization == "" {
		s.Customization = "default"
	}
	if s.Mode == "" {
		s.Mode = "auto"
	}
	if s.Admin.Username == "" {
		s.Admin.Username = "admin"
	}
}

// checkSystem validates the system's own fields and returns the normal form of its
// server URL ("" when it is invalid or comes from a reference).
func checkSystem(p *providers.Problems, s *SystemSpec) (normURL string) {
	if strings.TrimSpace(s.SystemName) == "" || strings.IndexFunc(s.SystemName, unicode.IsControl) >= 0 {
		p.Add(providers.Path{"system_name"}, "%q: want a non-blank name without control characters", s.SystemName)
	}
	if !contains(Modes, s.Mode) {
		p.Add(providers.Path{"mode"}, "%q is not one of %s", s.Mode, strings.Join(Modes, ", "))
	}
	if s.Organization != "" && strings.TrimSpace(s.Organization) != s.Organization {
		p.Add(providers.Path{"organization"}, "%q has leading or trailing blanks", s.Organization)
	}
	switch {
	case s.URL == "":
		p.Add(providers.Path{"url"}, "required (the server's base URL, e.g. https://10.0.0.5:7001)")
	case !providers.HasRef(s.URL):
		u, err := serverURL(s.URL)
		if err != nil {
			p.AddErr(providers.Path{"url"}, err)
		}
		normURL = u
	}
	if s.Admin.Password.IsZero() {
		p.Add(providers.Path{"admin", "password"}, "required (the server's local admin password; admin on a factory-new server)")
	}
	if !s.LocalPassword.IsZero() && !providers.HasRef(s.LocalPassword.Reveal()) && len(s.LocalPassword.Reveal()) < MinPasswordLen {
		p.Add(providers.Path{"local_password"}, "too short: a server refuses local admin passwords under %d characters", MinPasswordLen)
	}
	for _, k := range sortedKeys(s.Settings) {
		if k == "" {
			p.Add(providers.Path{"settings"}, "a setting has an empty name")
		} else if !scalarSetting(s.Settings[k]) {
			p.Add(providers.Path{"settings", k}, "want a boolean, string or number, got %s", typeName(s.Settings[k]))
		}
	}
	return normURL
}

// checkUsers validates the users the system is shared with: each once.
func checkUsers(p *providers.Problems, users []UserSpec) {
	seen := map[string]int{}
	for i := range users {
		u := &users[i]
		checkUser(p, u, providers.Path{"users", i})
		key := strings.ToLower(u.Email)
		if j, dup := seen[key]; dup && u.Email != "" {
			p.Add(providers.Path{"users", i, "email"}, "%s is listed twice (also users[%d])", u.Email, j)
		} else {
			seen[key] = i
		}
	}
}

// claimSystem claims the system's name, server and shares for the item. Names and
// servers must be unique: an interrupted bind is found again by its name, and two
// items binding one server would fight over it.
func claimSystem(b *providers.Build, p *providers.Problems, s *SystemSpec, itemName, normURL string) {
	if !providers.HasRef(s.SystemName) {
		if o := claim(b, p, providers.Path{"system_name"}, "name:"+s.Cloud+"\x00"+s.Organization+"\x00"+s.SystemName, itemName); o != "" {
			p.Add(providers.Path{"system_name"}, "%q is also the cloud system name of item %s: names must be unique per cloud account (an interrupted bind is found again by its name)", s.SystemName, o)
		}
	}
	if normURL != "" {
		if o := claim(b, p, providers.Path{"url"}, "url:"+normURL, itemName); o != "" {
			p.Add(providers.Path{"url"}, "%s is also the server of item %s: one server can join one cloud system", s.URL, o)
		}
	}
	for i := range s.Users {
		if e := strings.ToLower(s.Users[i].Email); e != "" && !providers.HasRef(e) {
			id := itemName + "/share/" + e
			if o := claim(b, p, providers.Path{"users", i, "email"}, "share:"+itemName+"\x00"+e, id); o != "" {
				p.Add(providers.Path{"users", i, "email"}, "the share of %s with %s is also given by %s", itemName, e, o)
			}
		}
	}
}

// systemTasks are the system task and one share task per user, which waits for it.
func systemTasks(b *providers.Build, item *plan.Item, s *SystemSpec, cloud *Cloud) []*providers.Task {
	deps := providers.ItemDeps(item)
	sys := &providers.Task{
		ID: item.Name, Kind: SystemsSection, Pos: item.Pos, Deps: deps, Refs: item.Refs, Spec: s, Endpoint: s.Cloud,
		Hash:   providers.SpecHash(SystemsSection, item.Name, s),
		Action: &systemAction{s: s, cloud: cloud, b: b, name: item.Name},
	}
	tasks := []*providers.Task{sys}
	for i := range s.Users {
		ss := &ShareSpec{Cloud: s.Cloud, System: item.Name, UserSpec: s.Users[i]}
		id := item.Name + "/share/" + strings.ToLower(ss.Email)
		refs := append(append([]plan.Ref(nil), item.Refs...), plan.Ref{Item: item.Name, Key: "cloud_system_id", Pos: item.Pos})
		tasks = append(tasks, &providers.Task{
			ID: id, Kind: SystemsSection, Pos: item.Pos, Deps: append(append([]string(nil), deps...), item.Name), Refs: refs, Spec: ss, Endpoint: s.Cloud,
			Hash:   providers.SpecHash(SystemsSection, id, ss),
			Action: &shareAction{s: ss, cloud: cloud},
		})
	}
	return tasks
}

// checkTLS validates the item's TLS options and reads its CA bundle (the plan package
// does that for endpoints only).
func checkTLS(b *providers.Build, p *providers.Problems, s *SystemSpec) {
	t := &s.TLS
	if t.Insecure && (t.CAFile != "" || t.Fingerprint != "") {
		p.Add(providers.Path{"tls", "insecure"}, "conflicting TLS options: insecure cannot be combined with ca_file or fingerprint_sha256")
	}
	if t.Fingerprint != "" {
		fp, err := plan.NormalizeFingerprint(t.Fingerprint)
		if err != nil {
			p.Add(providers.Path{"tls", "fingerprint_sha256"}, "%v", err)
		} else {
			t.Fingerprint = fp
		}
	}
	if t.CAFile != "" {
		dir := ""
		if b.Plan != nil {
			dir = b.Plan.Dir
		}
		pem, err := plan.ReadCAFile(dir, t.CAFile)
		if err != nil {
			p.Add(providers.Path{"tls", "ca_file"}, "%v", err)
		}
		t.CAPEM = pem
	}
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// systemAction connects one server to Nx Cloud.
type systemAction struct {
	s     *SystemSpec
	cloud *Cloud
	b     *providers.Build
	name  string
}

// server returns the shared client of the item's server (one per URL).
func (a *systemAction) server() (*Server, error) {
	u, tls := a.s.URL, a.s.TLS
	if a.b.ServerURL != nil {
		u = a.b.ServerURL(u)
	}
	if a.b.TLSOverride != nil {
		tls = *a.b.TLSOverride
	}
	creds := []Credential{{Label: "admin.password", Password: a.s.Admin.Password}}
	if !a.s.LocalPassword.IsZero() && a.s.LocalPassword.Reveal() != a.s.Admin.Password.Reveal() {
		creds = append(creds, Credential{Label: "local_password", Password: a.s.LocalPassword})
	}
	if a.s.Mode != "existing" && a.s.Admin.Username == "admin" && a.s.Admin.Password.Reveal() != "admin" {
		// A factory-new server accepts admin/admin until it is set up.
		creds = append(creds, Credential{Label: "the factory default", Password: plan.NewSecret("admin")})
	}
	var red *plan.Redactor
	if a.b.Plan != nil {
		red = a.b.Plan.Redactor
	}
	st := stateOf(a.b)
	c, err := st.servers.Get(u, func() (*Server, error) {
		rt, err := st.transports.Get(tls, 0)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: %w", a.name, err)
		}
		return NewServer(a.name, u, rt, a.s.Admin.Username, creds, red)
	})
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", a.s.URL, err)
	}
	return c, nil
}

// Apply binds a cloud system (or reuses the one an earlier attempt bound) and
// connects the server to it. The server's own state is read first: it is the truth
// about the binding, and a server bound elsewhere is refused before anything is
// created in the cloud.
func (a *systemAction) Apply(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	x.Adopted = x.AdoptedBefore()
	s := a.s
	srv, err := a.server()
	if err != nil {
		return nil, err
	}
	info, err := srv.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the state of server %s: %w", s.URL, err)
	}
	if info.Bound() {
		return a.alreadyBound(ctx, x, srv, info)
	}
	// Refuse a mode that does not fit the server before anything is bound in the cloud.
	switch {
	case s.Mode == "new" && info.SetUp():
		return nil, fmt.Errorf("server %s is already set up: mode new needs a factory-new server (use mode existing or auto)", s.URL)
	case s.Mode == "existing" && !info.SetUp():
		return nil, fmt.Errorf("server %s is not set up: mode existing needs a set-up server (use mode new or auto)", s.URL)
	}
	id, key, owner, err := a.cloudSystem(ctx, x)
	if err != nil {
		return nil, err
	}
	mode, localID, err := a.connect(ctx, x, srv, info, id, key, owner)
	if err != nil {
		return nil, err
	}
	// The server accepted the credentials, so it is bound to id: no second read of
	// its state, unless the setup answer did not name the new localId.
	info.CloudID = id
	if localID != "" {
		info.LocalID = localID
	} else if mode == "new" {
		if info, err = srv.Info(ctx); err != nil {
			return nil, fmt.Errorf("read the state of server %s after setting it up: %w", s.URL, err)
		}
		if !strings.EqualFold(info.CloudID, id) {
			return nil, &providers.Error{Op: "connect server", Retryable: true,
				Message: fmt.Sprintf("server %s reports cloud system %q after its setup, want %s", s.URL, info.CloudID, id)}
		}
	}
	return a.outputs(x, info, mode), nil
}

// alreadyBound handles a server that is bound to a cloud system: ours (done, with
// settings and name checked on a changed spec), or another one (refused).
func (a *systemAction) alreadyBound(ctx context.Context, x *providers.Exec, srv *Server, info Info) (state.Outputs, error) {
	s := a.s
	id := x.PriorValue("cloud_system_id")
	mode := x.PriorValue("mode_used")
	if mode == "" {
		mode = "already-bound"
	}
	if id == "" || !strings.EqualFold(info.CloudID, id) {
		// Not the system this task recorded: adopt it only if it is this account's
		// system of this name (the state was lost, or an attempt's outputs were).
		sys, err := a.cloud.System(ctx, info.CloudID)
		if st := providers.StatusOf(err); st == 403 {
			sys, err = nil, nil // another account's system
		}
		if err != nil {
			return nil, fmt.Errorf("look up cloud system %s that server %s is bound to: %w", info.CloudID, s.URL, err)
		}
		if sys == nil || sys.Name != s.SystemName {
			want := "a new cloud system named " + quote(s.SystemName)
			if id != "" {
				want = id + " (created by this task, kept for the next run)"
			}
			return nil, fmt.Errorf("server %s already bound to cloud system %s, not %s: refusing to rebind (disconnect it from Nx Cloud first if this plan should own it)", s.URL, info.CloudID, want)
		}
		if id != "" {
			// This task's own earlier system is unused: remove it if no server took it.
			old, err := a.cloud.System(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("look up cloud system %s bound by an earlier attempt: %w", id, err)
			}
			if old != nil && old.Status == StatusNotActivated {
				if err := a.discard(ctx, x, id, "the server is bound to another cloud system of this account and name"); err != nil {
					return nil, err
				}
			}
		}
		x.Log.Info().Str("cloud_system_id", sys.ID).Msg("server is already bound to a cloud system of this account and name: adopting it")
		// Found before this task ever tried a bind: an adoption (destroy leaves it).
		if aerr := x.Adopt(id == "" && x.FirstLook()); aerr != nil {
			return nil, aerr
		}
		owner := sys.Owner
		if owner == "" {
			owner = a.cloud.Email
		}
		// The adopted system's auth key is unknown (the cloud never shows it again).
		if err := x.Checkpoint(state.Outputs{"cloud_system_id": state.Plain(sys.ID), "auth_key": state.Plain(""), "owner": state.Plain(owner)}); err != nil {
			return nil, err
		}
	}
	if x.Changed {
		sys, err := a.cloud.System(ctx, info.CloudID)
		if err != nil {
			return nil, fmt.Errorf("read cloud system %s: %w", info.CloudID, err)
		}
		if sys != nil && sys.Name != "" && sys.Name != s.SystemName {
			return nil, fmt.Errorf("cannot rename a bound cloud system; cloud system %s is named %q, the plan now says %q: rename it in Nx Cloud or set system_name back, then rerun", sys.ID, sys.Name, s.SystemName)
		}
		if sys != nil && sys.Customization != "" && sys.Customization != s.Customization {
			return nil, fmt.Errorf("cannot change the customization of a bound cloud system; cloud system %s is %q, the plan now says %q", sys.ID, sys.Customization, s.Customization)
		}
		if len(s.Settings) > 0 {
			if err := srv.PatchSettings(ctx, s.Settings); err != nil {
				return nil, fmt.Errorf("update settings of server %s: %w", s.URL, err)
			}
			x.Log.Debug().Msg("settings updated")
		}
	}
	x.Log.Debug().Str("cloud_system_id", info.CloudID).Msg("server already bound to this task's cloud system")
	return a.outputs(x, info, mode), nil
}

// cloudSystem returns a cloud system with a usable auth key for this task: the one an
// earlier attempt bound (when it is still unused), else a new one. It never leaves an
// orphan: a system whose key is lost is removed before another is bound.
func (a *systemAction) cloudSystem(ctx context.Context, x *providers.Exec) (id, key, owner string, err error) {
	s := a.s
	id, key, owner = x.PriorValue("cloud_system_id"), x.PriorValue("auth_key"), x.PriorValue("owner")
	if id != "" {
		sys, err := a.cloud.System(ctx, id)
		if err != nil {
			return "", "", "", fmt.Errorf("look up cloud system %s bound by an earlier attempt: %w", id, err)
		}
		switch {
		case sys == nil:
			x.Log.Info().Str("cloud_system_id", id).Msg("the cloud system bound by an earlier attempt is gone: binding a new one")
			if err := a.forget(x); err != nil {
				return "", "", "", err
			}
			id, key = "", ""
		case sys.Status != StatusNotActivated:
			return "", "", "", fmt.Errorf("cloud system %s bound by an earlier attempt is %s, but server %s is not bound to it: another server took it; disconnect that server or remove the system in Nx Cloud, then rerun", id, sys.Status, s.URL)
		case key == "":
			if err := a.discard(ctx, x, id, "its auth key was not kept (no state key) and the cloud never shows it again"); err != nil {
				return "", "", "", err
			}
			id = ""
		default:
			x.Log.Debug().Str("cloud_system_id", id).Msg("reusing the cloud system bound by an earlier attempt")
			return id, key, owner, nil
		}
	}
	if x.InDoubt {
		// An earlier bind may have taken effect without its answer being recorded.
		// (A retry after a definite refusal, say a 429 or a login failure, is not in
		// doubt: the runner marks an attempt in doubt whenever its error may have
		// been applied, and a bind's answer is checkpointed the moment it arrives, so
		// no lookup is needed and none is sent.)
		list, err := a.cloud.Systems(ctx, s.Organization)
		if err != nil {
			return "", "", "", fmt.Errorf("look for cloud systems an interrupted bind may have created: %w", err)
		}
		var cands []System
		for _, c := range list {
			if c.Name == s.SystemName && c.Status == StatusNotActivated {
				cands = append(cands, c)
			}
		}
		switch len(cands) {
		case 0:
		case 1:
			// Adopted, but its auth key is unknown: removing it and binding again is
			// the only way to get a key.
			if err := a.discard(ctx, x, cands[0].ID, "found the cloud system of an interrupted bind; its auth key is unknown (the cloud never shows it again)"); err != nil {
				return "", "", "", err
			}
		default:
			return "", "", "", fmt.Errorf("found %d unactivated cloud systems named %q (%s): cannot tell which one an interrupted bind created; remove the extra ones in Nx Cloud, then rerun", len(cands), s.SystemName, strings.Join(sortedIDs(cands), ", "))
		}
	}
	sys, err := a.cloud.Bind(ctx, s.SystemName, s.Customization, s.Organization)
	if err != nil {
		return "", "", "", fmt.Errorf("bind cloud system %q: %w", s.SystemName, err)
	}
	owner = sys.Owner
	if owner == "" {
		owner = a.cloud.Email
	}
	if err := x.Checkpoint(state.Outputs{"cloud_system_id": state.Plain(sys.ID), "auth_key": state.SecretOutput(sys.AuthKey), "owner": state.Plain(owner)}); err != nil {
		return "", "", "", err
	}
	// A system bound just now is shared with its owner only: its share tasks need
	// not read the list.
	a.cloud.noteNewSystem(sys.ID, owner)
	x.Log.Debug().Str("cloud_system_id", sys.ID).Msg("cloud system bound")
	return sys.ID, sys.AuthKey, owner, nil
}

// discard removes a cloud system this task created and can no longer use, and forgets it.
func (a *systemAction) discard(ctx context.Context, x *providers.Exec, id, why string) error {
	x.Log.Info().Str("cloud_system_id", id).Str("reason", why).Msg("removing an unusable cloud system before binding again")
	if err := a.cloud.Delete(ctx, id); err != nil {
		return fmt.Errorf("remove cloud system %s (%s): %w", id, why, err)
	}
	return a.forget(x)
}

func (a *systemAction) forget(x *providers.Exec) error {
	return x.Checkpoint(state.Outputs{"cloud_system_id": state.Plain(""), "auth_key": state.Plain(""), "owner": state.Plain("")})
}

// connect joins the server to cloud system id: setup for a factory-new server, cloud
// bind for a set-up one. It returns the mode used and, after a setup, the new localId
// when the answer names it. In organization mode the credentials carry
// organizationId where the server's version reads it (6.1 and later).
func (a *systemAction) connect(ctx context.Context, x *providers.Exec, srv *Server, info Info, id, key, owner string) (string, string, error) {
	s := a.s
	mode := s.Mode
	if mode == "auto" {
		mode = "new"
		if info.SetUp() {
			mode = "existing"
		}
	}
	if owner == "" {
		owner = a.cloud.Email
	}
	creds := map[string]string{"systemId": id, "authKey": key, "owner": owner}
	if s.Organization != "" {
		if info.TakesOrganizationID() {
			creds["organizationId"] = s.Organization
		} else {
			x.Log.Debug().Str("version", info.Version).Msg("the server's version predates organizationId in its cloud credentials (6.1): not sent")
		}
	}
	if mode == "new" {
		settings := s.Settings
		if settings == nil {
			settings = map[string]any{}
		}
		body := map[string]any{"name": s.SystemName, "settings": settings, "cloud": creds}
		if !s.LocalPassword.IsZero() {
			body["local"] = map[string]string{"password": s.LocalPassword.Reveal()}
		}
		localID, err := srv.Setup(ctx, body)
		if err == nil {
			x.Log.Debug().Msg("server set up and connected")
			return mode, localID, nil
		}
		if st := providers.StatusOf(err); st != 403 && st != 422 {
			return "", "", fmt.Errorf("set up server %s: %w", s.URL, err)
		}
		// Refused: set up already (by an earlier attempt whose answer was lost, or by
		// someone else)? Read the state again and decide.
		now, ierr := srv.Info(ctx)
		switch {
		case ierr != nil || !now.SetUp():
			return "", "", fmt.Errorf("set up server %s: %w", s.URL, err)
		case strings.EqualFold(now.CloudID, id):
			return mode, strings.Trim(now.LocalID, "{}"), nil
		case now.Bound():
			return "", "", fmt.Errorf("server %s already bound to cloud system %s, not %s: refusing to rebind", s.URL, now.CloudID, id)
		case s.Mode != "auto":
			return "", "", fmt.Errorf("set up server %s: it was set up by someone else meanwhile (mode new): %w", s.URL, err)
		}
		x.Log.Info().Msg("server was set up meanwhile: connecting it with a cloud bind instead")
		mode = "existing"
	}
	if err := srv.CloudBind(ctx, creds); err != nil {
		// The bind may have taken effect before the error: the server knows.
		if now, ierr := srv.Info(ctx); ierr == nil && strings.EqualFold(now.CloudID, id) {
			x.Log.Debug().Msg("server bound despite the error answer")
		} else if ierr == nil && now.Bound() {
			return "", "", fmt.Errorf("server %s already bound to cloud system %s, not %s: refusing to rebind", s.URL, now.CloudID, id)
		} else {
			return "", "", fmt.Errorf("connect server %s to cloud system %s: %w", s.URL, id, err)
		}
	}
	if len(s.Settings) > 0 {
		if err := srv.PatchSettings(ctx, s.Settings); err != nil {
			return "", "", fmt.Errorf("apply settings on server %s: %w", s.URL, err)
		}
	}
	x.Log.Debug().Msg("server connected with a cloud bind")
	return mode, "", nil
}

// outputs are the task's outputs: cloud_system_id, auth_key (secret, when known),
// owner, server_local_id, mode_used.
func (a *systemAction) outputs(x *providers.Exec, info Info, mode string) state.Outputs {
	out := state.Outputs{
		"cloud_system_id": state.Plain(info.CloudID),
		"server_local_id": state.Plain(strings.Trim(info.LocalID, "{}")),
		"mode_used":       state.Plain(mode),
		"owner":           state.Plain(a.cloud.Email),
	}
	if o := x.PriorValue("owner"); o != "" {
		out["owner"] = state.Plain(o)
	}
	if k := x.PriorValue("auth_key"); k != "" {
		out["auth_key"] = state.SecretOutput(k)
	}
	return out
}

// Probe implements providers.Prober: the server is read (never changed).
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
	case info.Bound():
		return true, "server bound to cloud system " + info.CloudID, nil
	case info.SetUp():
		return false, "server set up, not bound to the cloud", nil
	}
	return false, "server factory-new", nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
