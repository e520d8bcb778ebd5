package edge

import (
	"context"
	"fmt"
	"strconv"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// User statuses (GET /v1/admin/user).
const (
	StatusPending     = 0
	StatusApproved    = 1
	StatusNotApproved = 2
	StatusForbidden   = 3
)

func userStatusName(s int) string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusApproved:
		return "approved"
	case StatusNotApproved:
		return "not approved"
	case StatusForbidden:
		return "forbidden"
	}
	return "status " + strconv.Itoa(s)
}

// UserSpec is one edge_users item.
type UserSpec struct {
	Endpoint string      `yaml:"endpoint" json:"endpoint"`
	User     string      `yaml:"user" json:"user"`
	Password plan.Secret `yaml:"password" json:"password"`
	Phone    string      `yaml:"phone" json:"phone"`
	RealName string      `yaml:"real_name" json:"real_name"`
	Admin    bool        `yaml:"admin" json:"admin"`
	Approve  *bool       `yaml:"approve" json:"approve"`
	Parent   string      `yaml:"parent" json:"parent"`

	// parentBusinesses are the business items of the parent (a sub-user joins the
	// parent's business namespace, so it waits for it).
	parentBusinesses []string
}

func (s *UserSpec) endpointName() string { return s.Endpoint }

func (s *UserSpec) check(c *checker) {
	if s.User == "" {
		s.User = c.item.Name
	}
	defaultTrue(&s.Approve)
	if c.quiet {
		return
	}
	if p := passwordProblem(s.Password.Reveal()); p != "" {
		c.Add(providers.Path{"password"}, "%s", p)
	}
	c.required("phone", s.Phone)
	c.required("real_name", s.RealName)
	if s.Parent != "" {
		c.refersToUser("parent", s.Parent, s.Endpoint, true)
		s.parentBusinesses = planIndex(c.b).businessesOf(s.Parent)
	}
}

func (s *UserSpec) deps() []string {
	if s.Parent == "" {
		return nil
	}
	return append([]string{s.Parent}, s.parentBusinesses...)
}

func (s *UserSpec) newUser() NewUser {
	return NewUser{User: s.User, Password: s.Password, Phone: s.Phone, IsAdmin: s.Admin, RealName: s.RealName}
}

// apply: look the user up by name (as the system administrator, who sees every
// user); register it (or create it as a sub-user of its parent) when absent,
// adopting it when the create failed but the user exists after all (a lost answer);
// then approve it when asked and still pending.
func (s *UserSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	admin := e.sysadmin()
	u, cached, err := e.client.users.find(ctx, admin, s.User)
	if err != nil {
		return nil, err
	}
	if u != nil && cached && u.Status != StatusApproved {
		// Decide on a fresh status, never on a cached one.
		if u, _, err = e.client.users.fresh(ctx, admin, s.User); err != nil {
			return nil, err
		}
	}
	if u != nil {
		if aerr := x.Adopt(x.PriorValue("user_id") == "" && x.FirstLook()); aerr != nil {
			return nil, aerr
		}
		x.Log.Debug().Str("user", s.User).Int("id", u.ID).Int("status", u.Status).Msg("user exists, adopting it")
	} else {
		if u, err = s.create(ctx, e, x); err != nil {
			return nil, err
		}
	}
	if u.IsAdmin != nil && *u.IsAdmin != s.Admin {
		return nil, fmt.Errorf("user %s exists on the platform as a %s, the plan wants a %s: change one of them",
			s.User, adminWord(*u.IsAdmin), adminWord(s.Admin))
	}
	if err := x.Checkpoint(outputs("user_id", strconv.Itoa(u.ID))); err != nil {
		return nil, err
	}
	if *s.Approve && u.Status != StatusApproved {
		if u.Status != StatusPending {
			return nil, fmt.Errorf("user %s is %s on the platform (status %d): provision only approves pending users; approve it there or set approve: false",
				s.User, userStatusName(u.Status), u.Status)
		}
		if err := admin.SetUserStatus(ctx, u.ID, StatusApproved); err != nil {
			return nil, err
		}
		u.Status = StatusApproved
		e.client.users.setStatus(s.User, StatusApproved)
	}
	return outputs("user_id", strconv.Itoa(u.ID), "user", s.User, "status", strconv.Itoa(u.Status)), nil
}

func adminWord(admin bool) string {
	if admin {
		return "general administrator"
	}
	return "general user"
}

// create registers the user (or creates the sub-user) and returns its row.
func (s *UserSpec) create(ctx context.Context, e *env, x *providers.Exec) (*User, error) {
	admin := e.sysadmin()
	var id int
	var err error
	if s.Parent == "" {
		id, err = admin.Register(ctx, s.newUser())
	} else {
		parent, _, perr := e.asUser(s.Parent)
		if perr != nil {
			return nil, perr
		}
		id, err = parent.CreateSubUser(ctx, s.newUser())
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// The create may have taken effect (lost answer) or the name may be taken
		// ("user already exists"): a fresh lookup decides.
		u, _, lerr := e.client.users.fresh(ctx, admin, s.User)
		if lerr != nil || u == nil {
			return nil, err
		}
		// Refused as a duplicate on the first try: it was there before. A create that
		// may have taken effect found its own user.
		if aerr := x.Adopt(!providers.MaybeApplied(err) && x.FirstLook()); aerr != nil {
			return nil, aerr
		}
		x.Log.Debug().Str("user", s.User).Int("id", u.ID).Msg("create failed but the user exists: adopting it")
		return u, nil
	}
	if id > 0 {
		if err := x.Checkpoint(outputs("user_id", strconv.Itoa(id))); err != nil {
			return nil, err
		}
		if *s.Approve {
			// Known id and an approval to come (a no-op for an approved sub-user):
			// no need for another listing.
			u := User{ID: id, Name: s.User, Status: StatusPending, Phone: s.Phone, RealName: s.RealName}
			e.client.users.remember(u)
			return &u, nil
		}
	}
	u, _, err := e.client.users.fresh(ctx, admin, s.User)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, fmt.Errorf("user %s was created but the user list does not show it", s.User)
	}
	return u, nil
}

func (s *UserSpec) probe(ctx context.Context, e *env, _ *providers.Exec) (bool, string, error) {
	u, _, err := e.client.users.find(ctx, e.sysadmin(), s.User)
	if err != nil || u == nil {
		return false, "", err
	}
	return true, fmt.Sprintf("user %s: id %d, %s", u.Name, u.ID, userStatusName(u.Status)), nil
}

// Business statuses (GET /v1/business).
const (
	BusinessPending     = 0
	BusinessApproved    = 1
	BusinessDisapproved = 2
	BusinessDeleted     = 3
)

// BusinessSpec is one edge_businesses item; the business is named after the item.
type BusinessSpec struct {
	Endpoint  string `yaml:"endpoint" json:"endpoint"`
	Introduce string `yaml:"introduce" json:"introduce"`
	Objective string `yaml:"objective" json:"objective"`
	Scale     string `yaml:"scale" json:"scale"`
	Admin     string `yaml:"admin" json:"admin"`
	Approve   *bool  `yaml:"approve" json:"approve"`
	Comment   string `yaml:"comment" json:"comment"`

	// Name is the item name (set by Build).
	Name string `yaml:"-" json:"name"`
}

// DefaultAuditComment is the audit comment when the item gives none.
const DefaultAuditComment = "approved by provision"

func (s *BusinessSpec) endpointName() string { return s.Endpoint }

func (s *BusinessSpec) check(c *checker) {
	s.Name = c.item.Name
	defaultTrue(&s.Approve)
	if s.Comment == "" {
		s.Comment = DefaultAuditComment
	}
	if c.quiet {
		return
	}
	c.required("introduce", s.Introduce)
	c.required("objective", s.Objective)
	c.required("scale", s.Scale)
	c.required("admin", s.Admin)
	c.refersToUser("admin", s.Admin, s.Endpoint, true)
	if s.Admin != "" {
		if others := planIndex(c.b).businessesOf(s.Admin); len(others) > 1 {
			c.Add(providers.Path{"admin"}, "%q is the admin of several business items (%v): a general administrator creates one business", s.Admin, others)
		}
	}
}

func (s *BusinessSpec) deps() []string { return []string{s.Admin} }

// apply: look the business up by name (as the system administrator); when absent,
// log in as its general administrator and create it, adopting it when the create
// failed but it exists after all; then audit it as approved when asked.
func (s *BusinessSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	admin := e.sysadmin()
	owner, ownerUser, err := e.asUser(s.Admin)
	if err != nil {
		return nil, err
	}
	bz, err := admin.FindBusiness(ctx, s.Name)
	if err != nil {
		return nil, err
	}
	if bz != nil {
		if err := s.checkOwner(ctx, e, bz, ownerUser); err != nil {
			return nil, err
		}
		if aerr := x.Adopt(x.PriorValue("business_id") == "" && x.FirstLook()); aerr != nil {
			return nil, aerr
		}
		x.Log.Debug().Str("business", s.Name).Int("id", bz.ID).Int("status", bz.Status).Msg("business exists, adopting it")
	} else if bz, err = s.create(ctx, e, owner, ownerUser, x); err != nil {
		return nil, err
	}
	id := strconv.Itoa(bz.ID)
	if err := x.Checkpoint(outputs("business_id", id)); err != nil {
		return nil, err
	}
	if *s.Approve && bz.Status != BusinessApproved {
		if bz.Status != BusinessPending {
			return nil, fmt.Errorf("business %s was disapproved on the platform (status %d, comment %q): provision only approves pending businesses",
				s.Name, bz.Status, bz.Comment)
		}
		if err := admin.AuditBusiness(ctx, bz.ID, BusinessApproved, s.Comment); err != nil {
			return nil, err
		}
		bz.Status = BusinessApproved
	}
	return outputs("business_id", id, "namespace", "ns"+id, "status", strconv.Itoa(bz.Status)), nil
}

// checkOwner refuses a business of the same name that another user created.
func (s *BusinessSpec) checkOwner(ctx context.Context, e *env, bz *Business, ownerUser string) error {
	if bz.UserID == 0 {
		return nil
	}
	u, _, err := e.client.users.find(ctx, e.sysadmin(), ownerUser)
	if err != nil {
		return err
	}
	if u != nil && u.ID != bz.UserID {
		return fmt.Errorf("business %s already exists on the platform (id %d) and belongs to user id %d, not to %s (id %d): rename the item or its admin",
			s.Name, bz.ID, bz.UserID, ownerUser, u.ID)
	}
	return nil
}

func (s *BusinessSpec) create(ctx context.Context, e *env, owner *Conn, ownerUser string, x *providers.Exec) (*Business, error) {
	admin := e.sysadmin()
	id, err := owner.CreateBusiness(ctx, NewBusiness{Name: s.Name, Introduce: s.Introduce, Objective: s.Objective, Scale: s.Scale})
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		bz, lerr := admin.FindBusiness(ctx, s.Name)
		if lerr != nil || bz == nil {
			return nil, err
		}
		if cerr := s.checkOwner(ctx, e, bz, ownerUser); cerr != nil {
			return nil, cerr
		}
		if aerr := x.Adopt(!providers.MaybeApplied(err) && x.FirstLook()); aerr != nil {
			return nil, aerr
		}
		x.Log.Debug().Str("business", s.Name).Int("id", bz.ID).Msg("create failed but the business exists: adopting it")
		return bz, nil
	}
	if id > 0 {
		if err := x.Checkpoint(outputs("business_id", strconv.Itoa(id))); err != nil {
			return nil, err
		}
	}
	bz, err := admin.FindBusiness(ctx, s.Name)
	if err != nil {
		return nil, err
	}
	if bz == nil {
		if id == 0 {
			return nil, fmt.Errorf("business %s was created but the business list does not show it", s.Name)
		}
		bz = &Business{ID: id, Name: s.Name, Status: BusinessPending}
	}
	return bz, nil
}

func (s *BusinessSpec) probe(ctx context.Context, e *env, _ *providers.Exec) (bool, string, error) {
	bz, err := e.sysadmin().FindBusiness(ctx, s.Name)
	if err != nil || bz == nil {
		return false, "", err
	}
	return true, fmt.Sprintf("business %s: id %d, namespace ns%d, status %d", bz.Name, bz.ID, bz.ID, bz.Status), nil
}
