package openvcloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// Section and endpoint kind of this package.
const (
	Section      = "openvcloud_cloudspaces"
	EndpointKind = "openvcloud"
)

// Defaults of a cloud space.
const (
	DefaultPrivateNetwork = "192.168.103.0/24"
	DefaultType           = "routeros"
)

// Kinds returns the kinds of this package.
func Kinds() []providers.Kind { return []providers.Kind{CloudSpaceKind{}} }

// CloudSpaceKind builds openvcloud_cloudspaces tasks.
type CloudSpaceKind struct{}

var _ providers.Kind = CloudSpaceKind{}

// Section implements providers.Kind.
func (CloudSpaceKind) Section() string { return Section }

// Doc implements providers.Kind.
func (CloudSpaceKind) Doc() string { return cloudSpacesDoc }

// Spec is one openvcloud_cloudspaces item. Build fills the defaults. The JSON form
// (the task hash) holds what defines the remote cloud space; async and
// wait_deployed only change how it is created and are left out.
type Spec struct {
	Endpoint               string   `yaml:"endpoint" json:"endpoint"`
	AccountID              int      `yaml:"account_id" json:"account_id"`
	Location               string   `yaml:"location" json:"location"`
	Name                   string   `yaml:"cloudspace_name" json:"cloudspace_name"`
	Access                 string   `yaml:"access" json:"access"`
	MaxMemoryCapacity      *float64 `yaml:"max_memory_capacity" json:"max_memory_capacity"`
	MaxVDiskCapacity       *int     `yaml:"max_vdisk_capacity" json:"max_vdisk_capacity"`
	MaxCPUCapacity         *int     `yaml:"max_cpu_capacity" json:"max_cpu_capacity"`
	MaxNetworkPeerTransfer *int     `yaml:"max_network_peer_transfer" json:"max_network_peer_transfer"`
	MaxNumPublicIP         *int     `yaml:"max_num_public_ip" json:"max_num_public_ip"`
	ExternalNetworkID      *int     `yaml:"external_network_id" json:"external_network_id"`
	AllowedVMSizes         []int    `yaml:"allowed_vm_sizes" json:"allowed_vm_sizes"`
	PrivateNetwork         string   `yaml:"private_network" json:"private_network"`
	Type                   string   `yaml:"type" json:"type"`
	Async                  *bool    `yaml:"async" json:"-"`
	WaitDeployed           bool     `yaml:"wait_deployed" json:"-"`
}

// checkPrivateNetwork: an IPv4 private (RFC 1918) network between /8 and /30, written
// as its network address.
func checkPrivateNetwork(v string) error {
	ip, n, err := net.ParseCIDR(v)
	if err != nil || ip.To4() == nil {
		return fmt.Errorf("%q is not an IPv4 CIDR like %s", v, DefaultPrivateNetwork)
	}
	if !ip.IsPrivate() {
		return fmt.Errorf("%q is not a private network (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)", v)
	}
	if ones, _ := n.Mask.Size(); ones < 8 || ones > 30 {
		return fmt.Errorf("%q: the prefix length must be between /8 and /30", v)
	}
	if !ip.Equal(n.IP) {
		return fmt.Errorf("%q has host bits set; write the network address %s", v, n.String())
	}
	return nil
}

// Build implements providers.Kind.
func (CloudSpaceKind) Build(b *providers.Build, item *plan.Item) ([]*providers.Task, error) {
	return providers.BuildOne(b, item, EndpointKind, func(s *Spec, p *providers.Problems) string {
		s.setDefaults(item.Name)
		s.check(p)
		return s.Endpoint
	}, NewClient, func(s *Spec, c *Client) providers.Action { return &cloudSpace{s: s, c: c} })
}

// unlimited is the API's value of a limit that is not set.
const unlimited = -1

// setDefaults fills the fields an item may leave out; limits left out are unlimited.
func (s *Spec) setDefaults(itemName string) {
	if s.Name == "" {
		s.Name = itemName
	}
	if s.PrivateNetwork == "" {
		s.PrivateNetwork = DefaultPrivateNetwork
	}
	if s.Type == "" {
		s.Type = DefaultType
	}
	if s.MaxMemoryCapacity == nil {
		m := float64(unlimited)
		s.MaxMemoryCapacity = &m
	}
	for _, l := range []**int{&s.MaxVDiskCapacity, &s.MaxCPUCapacity, &s.MaxNetworkPeerTransfer, &s.MaxNumPublicIP} {
		if *l == nil {
			n := unlimited
			*l = &n
		}
	}
	if s.Async == nil {
		t := true
		s.Async = &t
	}
}

// check validates the fields (defaults filled).
func (s *Spec) check(p *providers.Problems) {
	if strings.TrimSpace(s.Name) != s.Name || len(s.Name) > 128 {
		p.Add(providers.Path{"cloudspace_name"}, "%q must be 1-128 characters without leading or trailing spaces", s.Name)
	}
	if s.AccountID <= 0 {
		p.Add(providers.Path{"account_id"}, "required (the account's numeric id)")
	}
	if s.Location == "" {
		p.Add(providers.Path{"location"}, "required (a location code, e.g. be-gen-1)")
	}
	if !providers.HasRef(s.PrivateNetwork) {
		p.AddErr(providers.Path{"private_network"}, checkPrivateNetwork(s.PrivateNetwork))
	}
	if s.Type != "routeros" && s.Type != "vgw" && !providers.HasRef(s.Type) {
		p.Add(providers.Path{"type"}, "%q must be routeros or vgw", s.Type)
	}
	s.checkLimits(p)
	if s.ExternalNetworkID != nil && *s.ExternalNetworkID <= 0 {
		p.Add(providers.Path{"external_network_id"}, "%d: want a positive id", *s.ExternalNetworkID)
	}
	seen := map[int]bool{}
	for _, v := range s.AllowedVMSizes {
		if v <= 0 {
			p.Add(providers.Path{"allowed_vm_sizes"}, "%d: size ids are positive", v)
		} else if seen[v] {
			p.Add(providers.Path{"allowed_vm_sizes"}, "size %d listed twice", v)
		}
		seen[v] = true
	}
}

// checkLimits validates the resource limits: unlimited or a size, and at least one
// public IP.
func (s *Spec) checkLimits(p *providers.Problems) {
	if m := *s.MaxMemoryCapacity; m != unlimited && (m < 0 || math.IsNaN(m) || math.IsInf(m, 0)) {
		p.Add(providers.Path{"max_memory_capacity"}, "%v GB: want -1 (unlimited) or a size >= 0", m)
	}
	for _, l := range []struct {
		field string
		v     int
	}{{"max_vdisk_capacity", *s.MaxVDiskCapacity}, {"max_cpu_capacity", *s.MaxCPUCapacity}, {"max_network_peer_transfer", *s.MaxNetworkPeerTransfer}} {
		if l.v != unlimited && l.v < 0 {
			p.Add(providers.Path{l.field}, "%d: want -1 (unlimited) or a limit >= 0", l.v)
		}
	}
	if v := *s.MaxNumPublicIP; v != unlimited && v < 1 {
		p.Add(providers.Path{"max_num_public_ip"}, "%d: want -1 (unlimited) or at least 1 (the space's virtual firewall needs a public IP)", v)
	}
}

// cloudSpace is the action of one item.
type cloudSpace struct {
	s *Spec
	c *Client
}

var _ providers.Action = (*cloudSpace)(nil)

// Outputs of a cloud space task.
const (
	OutCloudSpaceID = "cloudspace_id"
	OutStatus       = "status"
	OutTaskGUID     = "task_guid"
)

// createParams is the cloudspaces/create body; access is the item's, else the
// authenticated user (the API requires it and has no default).
func (a *cloudSpace) createParams(access string) map[string]any {
	s := a.s
	p := map[string]any{"accountId": s.AccountID, "location": s.Location, "name": s.Name, "privatenetwork": s.PrivateNetwork, "type": s.Type, "access": access}
	for k, v := range a.limits() {
		p[k] = v
	}
	if s.ExternalNetworkID != nil {
		p["externalnetworkId"] = *s.ExternalNetworkID
	}
	if len(s.AllowedVMSizes) > 0 {
		p["allowedVMSizes"] = s.AllowedVMSizes
	}
	return p
}

// limits returns the resource limit parameters (defaults filled by Build).
func (a *cloudSpace) limits() map[string]any {
	s := a.s
	deref := func(p *int) int {
		if p == nil {
			return -1
		}
		return *p
	}
	mem := -1.0
	if s.MaxMemoryCapacity != nil {
		mem = *s.MaxMemoryCapacity
	}
	return map[string]any{"maxMemoryCapacity": mem, "maxVDiskCapacity": deref(s.MaxVDiskCapacity), "maxCPUCapacity": deref(s.MaxCPUCapacity),
		"maxNetworkPeerTransfer": deref(s.MaxNetworkPeerTransfer), "maxNumPublicIP": deref(s.MaxNumPublicIP)}
}

// lookup finds the live space with the item's name in its account; DELETED and
// DESTROYED spaces are never adopted. A space of that name in another location is a
// permanent error (never adopted).
func (a *cloudSpace) lookup(ctx context.Context, x *providers.Exec) (*Space, error) {
	list, err := a.c.Spaces(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("look up cloud space %q: %w", a.s.Name, err)
	}
	var found *Space
	for i := range list {
		sp := &list[i]
		if sp.Name != a.s.Name || sp.AccountID != a.s.AccountID || Gone(sp.Status) {
			continue
		}
		if found == nil || sp.ID < found.ID {
			found = sp
		}
	}
	if found == nil {
		return nil, nil
	}
	if found.Location != a.s.Location {
		return nil, &providers.Error{Op: "adopt cloud space", Message: fmt.Sprintf("cloud space %q (id %d) already exists in account %d in location %s, not %s: refusing to adopt it; rename the item or fix its location",
			a.s.Name, found.ID, a.s.AccountID, found.Location, a.s.Location)}
	}
	x.Log.Debug().Int("cloudspace_id", found.ID).Str("status", found.Status).Msg("found existing cloud space")
	return found, nil
}

// Probe tells, read-only, whether the object already exists remotely (for a dry
// run that reads the API).
func (a *cloudSpace) Probe(ctx context.Context, x *providers.Exec) (bool, string, error) {
	sp, err := a.lookup(ctx, x)
	if err != nil || sp == nil {
		return false, "", err
	}
	return true, fmt.Sprintf("cloud space id %d, %s", sp.ID, sp.Status), nil
}

// Apply implements providers.Action:
//  1. a checkpointed cloudspace_id: read the space (gone: start over with a lookup);
//  2. a checkpointed task_guid: poll the async create ("already exists": adopt;
//     unknown or expired: look up, create again if absent);
//  3. attempt > 1 or in doubt: look the space up by account and name and adopt it;
//  4. create (checkpointing the task GUID or the id at once), then read the space,
//     update its name and limits if they differ, and wait for DEPLOYED if asked.
func (a *cloudSpace) Apply(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	x.Adopted = x.AdoptedBefore()
	mustLook := x.Attempt > 1 || x.InDoubt
	if v := x.PriorValue(OutCloudSpaceID); v != "" {
		id, err := strconv.Atoi(v)
		if err == nil {
			sp, err := a.c.Get(ctx, id)
			switch {
			case err == nil && !Gone(sp.Status):
				return a.finish(ctx, x, sp)
			case err != nil && providers.StatusOf(err) != http.StatusNotFound:
				return nil, fmt.Errorf("read cloud space %d: %w", id, err)
			}
		}
		x.Log.Debug().Str("cloudspace_id", v).Msg("checkpointed cloud space is gone: looking up by name")
		if err := x.Checkpoint(state.Outputs{OutCloudSpaceID: state.Plain(""), OutTaskGUID: state.Plain("")}); err != nil {
			return nil, err
		}
		mustLook = true
	}
	if guid := x.PriorValue(OutTaskGUID); guid != "" {
		out, err := a.await(ctx, x, guid)
		if !errors.Is(err, ErrTaskGone) {
			return out, err
		}
		x.Log.Debug().Str("task_guid", guid).Msg("async task unknown or expired: looking up by name")
		mustLook = true
	}
	if mustLook {
		sp, err := a.lookup(ctx, x)
		if err != nil {
			return nil, err
		}
		if sp != nil {
			return a.adopted(ctx, x, sp)
		}
	}
	return a.create(ctx, x)
}

func (a *cloudSpace) create(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	op := fmt.Sprintf("create cloud space %q", a.s.Name)
	access := a.s.Access
	if access == "" {
		var err error
		if access, err = a.c.DefaultAccess(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	p := a.createParams(access)
	if *a.s.Async {
		p["_async"] = true
		var guid string
		err := a.c.call(ctx, "cloudspaces/create", p, false, &guid)
		if providers.StatusOf(err) == http.StatusConflict {
			return a.adopt(ctx, x)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if guid == "" {
			return nil, &providers.Error{Op: op, Message: "the API answered no task GUID", MaybeApplied: true}
		}
		if err := x.Checkpoint(state.Outputs{OutTaskGUID: state.Plain(guid)}); err != nil {
			return nil, err
		}
		x.Log.Debug().Str("task_guid", guid).Msg("cloud space create started")
		out, err := a.await(ctx, x, guid)
		if errors.Is(err, ErrTaskGone) {
			// The task is unknown although it was just started (or its result expired
			// unread): the lookup decides whether the space exists.
			x.Log.Debug().Str("task_guid", guid).Msg("create task unknown: looking the space up by name")
			sp, lerr := a.lookup(ctx, x)
			if lerr != nil {
				return nil, lerr
			}
			if sp != nil {
				return a.adopted(ctx, x, sp)
			}
			// Not there (yet): the next attempt looks it up again before it creates.
			return nil, &providers.Error{Op: op, Message: "the create task is unknown to the API and the space is not listed yet", Retryable: true, MaybeApplied: true, Err: err}
		}
		return out, err
	}
	var raw json.RawMessage
	err := a.c.call(ctx, "cloudspaces/create", p, false, &raw)
	if providers.StatusOf(err) == http.StatusConflict {
		return a.adopt(ctx, x)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	id, err := decodeID(raw)
	if err != nil {
		// The space was created but its id is unreadable: a lookup finds it.
		return nil, &providers.Error{Op: op, Message: err.Error(), MaybeApplied: true, Retryable: true}
	}
	return a.created(ctx, x, id)
}

// await polls the create task whose GUID is checkpointed.
func (a *cloudSpace) await(ctx context.Context, x *providers.Exec, guid string) (state.Outputs, error) {
	res, err := a.c.Await(ctx, guid)
	var te *TaskError
	switch {
	case errors.As(err, &te) && strings.Contains(te.Message, "already exists"):
		x.Log.Debug().Str("task_guid", guid).Msg("async create says the space exists: adopting it")
		return a.adopt(ctx, x)
	case errors.As(err, &te):
		// The create failed for good: forget the task so that a rerun (after the plan
		// is fixed) creates again instead of reading the same failure.
		if cerr := x.Checkpoint(state.Outputs{OutTaskGUID: state.Plain("")}); cerr != nil {
			return nil, cerr
		}
		return nil, &providers.Error{Op: fmt.Sprintf("create cloud space %q (async task %s)", a.s.Name, guid), Err: err}
	case err != nil:
		return nil, err
	}
	id, err := decodeID(res)
	if err != nil {
		return nil, &providers.Error{Op: fmt.Sprintf("create cloud space %q (async task %s)", a.s.Name, guid), Message: "task result: " + err.Error()}
	}
	return a.created(ctx, x, id)
}

// created checkpoints a new space's id and finishes.
func (a *cloudSpace) created(ctx context.Context, x *providers.Exec, id int) (state.Outputs, error) {
	if err := x.Checkpoint(state.Outputs{OutCloudSpaceID: state.Plain(strconv.Itoa(id))}); err != nil {
		return nil, err
	}
	x.Log.Debug().Int("cloudspace_id", id).Msg("cloud space created")
	sp, err := a.c.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read cloud space %d: %w", id, err)
	}
	return a.finish(ctx, x, sp)
}

// adopt finds the space an "already exists" answer speaks of. A DELETED space still
// holds its name (only DESTROYED ones free it) and is never adopted: the task fails
// and says how to free the name.
func (a *cloudSpace) adopt(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	sp, err := a.lookup(ctx, x)
	if err != nil {
		return nil, err
	}
	if sp != nil {
		if aerr := x.Adopt(x.FirstLook()); aerr != nil { // "already exists" on the first try: it was there before
			return nil, aerr
		}
		return a.adopted(ctx, x, sp)
	}
	op := fmt.Sprintf("create cloud space %q", a.s.Name)
	all, err := a.c.Spaces(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("%s: look up deleted spaces: %w", op, err)
	}
	for _, d := range all {
		if d.Name == a.s.Name && d.AccountID == a.s.AccountID && Gone(d.Status) {
			return nil, &providers.Error{Op: op, Message: fmt.Sprintf(
				"a %s cloud space of that name (id %d) still holds the name in account %d: restore it (cloudspaces/restore) or delete it permanently, then rerun",
				d.Status, d.ID, a.s.AccountID)}
		}
	}
	return nil, &providers.Error{Op: op,
		Message: fmt.Sprintf("the API says a space of that name exists in account %d, but it is not visible to this user", a.s.AccountID)}
}

// adopted checkpoints an existing space's id, reads it and finishes.
func (a *cloudSpace) adopted(ctx context.Context, x *providers.Exec, found *Space) (state.Outputs, error) {
	if err := x.Checkpoint(state.Outputs{OutCloudSpaceID: state.Plain(strconv.Itoa(found.ID))}); err != nil {
		return nil, err
	}
	x.Log.Debug().Int("cloudspace_id", found.ID).Msg("adopted existing cloud space")
	sp, err := a.c.Get(ctx, found.ID)
	if err != nil {
		return nil, fmt.Errorf("read cloud space %d: %w", found.ID, err)
	}
	return a.finish(ctx, x, sp)
}

// finish checks the space against the spec, updates its name and limits where they
// differ (cloudspaces/update), waits for DEPLOYED when asked and returns the outputs.
func (a *cloudSpace) finish(ctx context.Context, x *providers.Exec, sp *Space) (state.Outputs, error) {
	if sp.AccountID != 0 && sp.AccountID != a.s.AccountID || sp.Location != "" && sp.Location != a.s.Location {
		return nil, &providers.Error{Op: "cloud space " + strconv.Itoa(sp.ID), Message: fmt.Sprintf(
			"the space is in account %d, location %s; the plan asks for account %d, location %s, which cannot be changed on an existing space (delete it, or use a new name)",
			sp.AccountID, sp.Location, a.s.AccountID, a.s.Location)}
	}
	if a.needsUpdate(sp) || (x.Changed && len(a.s.AllowedVMSizes) > 0) {
		p := a.limits()
		p["cloudspaceId"] = sp.ID
		p["name"] = a.s.Name
		if len(a.s.AllowedVMSizes) > 0 {
			p["allowedVMSizes"] = a.s.AllowedVMSizes
		}
		if err := a.c.call(ctx, "cloudspaces/update", p, true, nil); err != nil {
			return nil, fmt.Errorf("update cloud space %d: %w", sp.ID, err)
		}
		x.Log.Debug().Int("cloudspace_id", sp.ID).Msg("cloud space name and limits updated")
	}
	status := sp.Status
	if a.s.WaitDeployed {
		deadline := time.Now().Add(a.c.PollFor)
		wait := min(250*time.Millisecond, a.c.PollEvery)
		for status != "DEPLOYED" {
			if Gone(status) || status == "ERROR" || status == "DISABLED" {
				return nil, &providers.Error{Op: "wait for cloud space " + strconv.Itoa(sp.ID), Message: "status is " + status + ", it will not deploy"}
			}
			if !time.Now().Before(deadline) {
				return nil, &providers.Error{Op: "wait for cloud space " + strconv.Itoa(sp.ID), Message: fmt.Sprintf("still %s after %s; a rerun keeps waiting", status, a.c.PollFor), Retryable: true}
			}
			if err := sleep(ctx, wait); err != nil {
				return nil, err
			}
			wait = min(2*wait, a.c.PollEvery)
			cur, err := a.c.Get(ctx, sp.ID)
			if err != nil {
				return nil, fmt.Errorf("read cloud space %d: %w", sp.ID, err)
			}
			status = cur.Status
		}
	}
	return state.Outputs{
		OutCloudSpaceID: state.Plain(strconv.Itoa(sp.ID)),
		OutStatus:       state.Plain(status),
		OutTaskGUID:     state.Plain(x.PriorValue(OutTaskGUID)),
	}, nil
}

// needsUpdate compares the space's name and the limits it reports with the spec.
func (a *cloudSpace) needsUpdate(sp *Space) bool {
	if sp.Name != "" && sp.Name != a.s.Name {
		return true
	}
	want := a.limits()
	for key, param := range map[string]string{"CU_M": "maxMemoryCapacity", "CU_D": "maxVDiskCapacity", "CU_C": "maxCPUCapacity", "CU_NP": "maxNetworkPeerTransfer", "CU_I": "maxNumPublicIP"} {
		have, ok := sp.ResourceLimits[key]
		if !ok || have == nil {
			continue
		}
		var w float64
		switch v := want[param].(type) {
		case int:
			w = float64(v)
		case float64:
			w = v
		}
		if math.Abs(*have-w) > 1e-9 {
			return true
		}
	}
	return false
}
