package edge

import (
	"context"
	"errors"
	"strconv"

	"provision/providers"
)

var _ providers.Refresher = (*action[UserSpec, *UserSpec])(nil)

// drifter is what a spec does when its object can be read back: compare it with the
// spec, read-only.
type drifter interface {
	drift(ctx context.Context, e *env, x *providers.Exec) ([]providers.FieldDiff, error)
}

// ErrNoReadBack is returned by Drift for objects the API cannot read back
// (repository users): their drift is unknown, not "in sync".
var ErrNoReadBack = errors.New("the platform's API has no call that reads this object back: drift cannot be checked")

// Drift implements providers.Refresher.
func (a *action[T, P]) Drift(ctx context.Context, x *providers.Exec) ([]providers.FieldDiff, error) {
	dr, ok := any(a.spec).(drifter)
	if !ok {
		return nil, ErrNoReadBack
	}
	return dr.drift(ctx, a.env, x)
}

func diff(out []providers.FieldDiff, field, want, got string) []providers.FieldDiff {
	if want != got {
		out = append(out, providers.FieldDiff{Field: field, Want: want, Got: got})
	}
	return out
}

// drift: the user gone, not approved although approve is set, its administrator
// flag, phone or real name changed. The password is never read back.
func (s *UserSpec) drift(ctx context.Context, e *env, x *providers.Exec) ([]providers.FieldDiff, error) {
	u, _, err := e.client.users.fresh(ctx, e.sysadmin(), s.User)
	if err != nil {
		return nil, err
	}
	id := x.PriorValue("user_id")
	if u == nil || (id != "" && strconv.Itoa(u.ID) != id) {
		return []providers.FieldDiff{providers.Missing("user " + s.User + " (id " + id + ")")}, nil
	}
	var out []providers.FieldDiff
	if *s.Approve && u.Status != StatusApproved {
		out = diff(out, "status", userStatusName(StatusApproved), userStatusName(u.Status))
	}
	if u.IsAdmin != nil {
		out = diff(out, "admin", strconv.FormatBool(s.Admin), strconv.FormatBool(*u.IsAdmin))
	}
	if u.Phone != "" {
		out = diff(out, "phone", s.Phone, u.Phone)
	}
	if u.RealName != "" {
		out = diff(out, "real_name", s.RealName, u.RealName)
	}
	return out, nil
}

// drift: the business gone (or deleted, status 3) or no longer approved.
func (s *BusinessSpec) drift(ctx context.Context, e *env, x *providers.Exec) ([]providers.FieldDiff, error) {
	bz, err := e.sysadmin().FindBusiness(ctx, s.Name)
	if err != nil {
		return nil, err
	}
	id := x.PriorValue("business_id")
	if bz == nil || (id != "" && strconv.Itoa(bz.ID) != id) {
		return []providers.FieldDiff{providers.Missing("business " + s.Name + " (id " + id + ")")}, nil
	}
	var out []providers.FieldDiff
	if *s.Approve && bz.Status != BusinessApproved {
		out = diff(out, "status", "approved", "status "+strconv.Itoa(bz.Status))
	}
	return out, nil
}

// drift: each listed cluster that no longer carries the label.
func (s *ClusterLabelSpec) drift(ctx context.Context, e *env, _ *providers.Exec) ([]providers.FieldDiff, error) {
	missing, err := s.missing(ctx, e.sysadmin())
	if err != nil {
		return nil, err
	}
	var out []providers.FieldDiff
	for _, cl := range missing {
		out = append(out, providers.FieldDiff{Field: "clusters." + cl, Want: "label " + s.Label, Got: "(missing)"})
	}
	return out, nil
}

// drift: each listed node that no longer carries the label.
func (s *NodeLabelSpec) drift(ctx context.Context, e *env, _ *providers.Exec) ([]providers.FieldDiff, error) {
	missing, err := s.missing(ctx, e.sysadmin())
	if err != nil {
		return nil, err
	}
	var out []providers.FieldDiff
	for _, n := range missing {
		out = append(out, providers.FieldDiff{Field: "nodes." + n, Want: "label " + s.Label, Got: "(missing)"})
	}
	return out, nil
}

// drift: the project gone, or its visibility changed.
func (s *ProjectSpec) drift(ctx context.Context, e *env, x *providers.Exec) ([]providers.FieldDiff, error) {
	p, err := e.sysadmin().FindProject(ctx, s.Project)
	if err != nil {
		return nil, err
	}
	id := x.PriorValue("project_id")
	if p == nil || (id != "" && strconv.Itoa(p.ID) != id) {
		return []providers.FieldDiff{providers.Missing("repository project " + s.Project)}, nil
	}
	return diff(nil, "public", strconv.FormatBool(s.Public), strconv.FormatBool(p.Public)), nil
}

// drift: the registry record gone, or its address or user changed. Its password is
// never read back.
func (s *RegistrySpec) drift(ctx context.Context, e *env, _ *providers.Exec) ([]providers.FieldDiff, error) {
	r, err := e.sysadmin().GetRegistry(ctx, s.RepositoryID)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return []providers.FieldDiff{providers.Missing("external registry " + s.RepositoryID)}, nil
	}
	var out []providers.FieldDiff
	if r.Address != "" {
		out = diff(out, "address", s.Address, r.Address)
	}
	if r.User != "" {
		out = diff(out, "user", s.User, r.User)
	}
	return out, nil
}

// drift: the application gone (by its recorded id, else by name: both lookups are
// inferences, see FindApp), or its image, version or deploy type changed.
func (s *AppSpec) drift(ctx context.Context, e *env, x *providers.Exec) ([]providers.FieldDiff, error) {
	k, err := s.conn(e)
	if err != nil {
		return nil, err
	}
	var a *App
	if id := x.PriorValue("app_id"); id != "" {
		a, err = k.GetApp(ctx, id)
	} else {
		a, err = k.FindApp(ctx, s.AppName)
	}
	if err != nil {
		return nil, err
	}
	if a == nil || (a.Name != "" && a.Name != s.AppName) {
		return []providers.FieldDiff{providers.Missing("application " + s.AppName)}, nil
	}
	var out []providers.FieldDiff
	if a.Image != "" {
		out = diff(out, "image", s.Image, a.Image)
	}
	if a.Version != "" {
		out = diff(out, "version", s.Version, a.Version)
	}
	if a.DeployType != "" {
		out = diff(out, "deploy_type", s.DeployType, a.DeployType)
	}
	return out, nil
}
