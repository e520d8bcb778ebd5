package nx

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// ShareKind builds nx_shares tasks: one share of a cloud system with a cloud account
// per item.
type ShareKind struct{}

// Section implements providers.Kind.
func (*ShareKind) Section() string { return SharesSection }

// Doc implements providers.Kind.
func (*ShareKind) Doc() string { return sharesDoc }

// Build implements providers.Kind.
func (*ShareKind) Build(b *providers.Build, item *plan.Item) ([]*providers.Task, error) {
	s := &ShareSpec{}
	if err := providers.Decode(item, s); err != nil {
		return nil, err
	}
	p := providers.NewProblems(item)
	cloud := cloudClient(b, p, s.Cloud)
	checkUser(p, &s.UserSpec, nil)
	refs := append([]plan.Ref(nil), item.Refs...)
	deps := providers.ItemDeps(item)
	target := ""
	switch {
	case s.System != "" && s.CloudSystemID != "":
		p.Add(providers.Path{"cloud_system_id"}, "give either system or cloud_system_id, not both")
	case s.System == "" && s.CloudSystemID == "":
		p.Add(providers.Path{"system"}, "required: the name of an nx_systems item (or give cloud_system_id)")
	case s.System != "":
		if !providers.HasRef(s.System) && !stateOf(b).systems[s.System] {
			p.Add(providers.Path{"system"}, "no nx_systems item is named %q", s.System)
		}
		deps = append(deps, s.System)
		refs = append(refs, plan.Ref{Item: s.System, Key: "cloud_system_id", Pos: item.Pos})
		target = "share:" + s.System
	default:
		if !providers.HasRef(s.CloudSystemID) && !uuidRE.MatchString(s.CloudSystemID) {
			p.Add(providers.Path{"cloud_system_id"}, "%q is not a cloud system id (a UUID)", s.CloudSystemID)
		}
		target = "share-id:" + strings.ToLower(strings.Trim(s.CloudSystemID, "{}"))
	}
	if e := strings.ToLower(s.Email); target != "" && e != "" && !providers.HasRef(e) && !providers.HasRef(target) {
		if o := claim(b, p, providers.Path{"email"}, target+"\x00"+e, item.Name); o != "" {
			p.Add(providers.Path{"email"}, "the same share (system and %s) is also given by %s", e, o)
		}
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return []*providers.Task{{
		ID: item.Name, Kind: SharesSection, Pos: item.Pos, Deps: deps, Refs: refs, Spec: s, Endpoint: s.Cloud,
		Hash:   providers.SpecHash(SharesSection, item.Name, s),
		Action: &shareAction{s: s, cloud: cloud},
	}}, nil
}

// shareAction shares one cloud system with one account.
type shareAction struct {
	s     *ShareSpec
	cloud *Cloud
}

// systemID is the cloud system to share: the literal id, or the system item's output.
func (a *shareAction) systemID(x *providers.Exec) (string, error) {
	if a.s.System == "" {
		return strings.Trim(a.s.CloudSystemID, "{}"), nil
	}
	if x.Lookup == nil {
		return "", fmt.Errorf("cloud_system_id of %s: output references are not available here", a.s.System)
	}
	id, err := x.Lookup(plan.Ref{Item: a.s.System, Key: "cloud_system_id"})
	if err != nil {
		return "", fmt.Errorf("cloud_system_id of %s: %w", a.s.System, err)
	}
	if id == "" {
		return "", fmt.Errorf("%s has no cloud_system_id output: it is not connected yet", a.s.System)
	}
	return id, nil
}

func find(list []Share, email string) *Share {
	for i := range list {
		if strings.EqualFold(list[i].AccountEmail, email) {
			return &list[i]
		}
	}
	return nil
}

// Apply shares the system. The share call is an upsert (safe to repeat), but the
// share list is looked at first so that a rerun sends no change when the share
// exists. The list is read at most once per run and system (shared by the system's
// share tasks, updated as they write), and not at all for a system bound in this run.
func (a *shareAction) Apply(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	x.Adopted = x.AdoptedBefore()
	id, err := a.systemID(x)
	if err != nil {
		return nil, err
	}
	want := a.s.share()
	out := state.Outputs{"email": state.Plain(want.AccountEmail), "access_role": state.Plain(want.AccessRole), "cloud_system_id": state.Plain(id)}
	list, err := a.cloud.CachedShares(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("list the shares of cloud system %s: %w", id, err)
	}
	cur := find(list, want.AccountEmail)
	if aerr := x.Adopt(cur != nil && cur.AccessRole != "owner" && x.FirstLook()); aerr != nil {
		return nil, aerr
	}
	switch {
	case cur != nil && cur.AccessRole == "owner":
		return nil, fmt.Errorf("%s owns cloud system %s: the owner's access cannot be shared or changed", want.AccountEmail, id)
	case want.AccessRole == "none" && cur == nil:
		x.Log.Debug().Msg("not shared: nothing to remove")
		return out, nil
	case cur != nil && cur.Satisfies(want):
		// There before this task ever wrote it: adopted above (destroy leaves it).
		x.Log.Debug().Msg("identical share exists")
		return out, nil
	}
	if err := a.cloud.PutShare(ctx, id, want); err != nil {
		if st := providers.StatusOf(err); st == 0 || st >= 500 {
			// The write may have taken effect: the next attempt reads the list again.
			a.cloud.forgetShares(id)
		}
		var pe *providers.Error
		if errors.As(err, &pe) && pe.Code == "alreadyExists" {
			// Not expected from an upsert; accept it when the share is as wanted.
			if now, lerr := a.cloud.Shares(ctx, id); lerr == nil {
				a.cloud.replaceShares(id, now)
				if c := find(now, want.AccountEmail); c != nil && c.Satisfies(want) {
					return out, nil
				}
			}
		}
		return nil, fmt.Errorf("share cloud system %s with %s as %s: %w", id, want.AccountEmail, want.AccessRole, err)
	}
	a.cloud.noteShare(id, want)
	x.Log.Debug().Str("cloud_system_id", id).Bool("update", cur != nil).Msg("shared")
	return out, nil
}

// Probe implements providers.Prober.
func (a *shareAction) Probe(ctx context.Context, x *providers.Exec) (bool, string, error) {
	id, err := a.systemID(x)
	if err != nil {
		return false, "", err
	}
	list, err := a.cloud.CachedShares(ctx, id)
	if err != nil {
		return false, "", err
	}
	want := a.s.share()
	switch cur := find(list, want.AccountEmail); {
	case cur == nil:
		return false, "not shared", nil
	case cur.Satisfies(want):
		return true, "shared as " + cur.AccessRole, nil
	default:
		return true, "shared as " + cur.AccessRole + ", the plan says " + want.AccessRole, nil
	}
}
