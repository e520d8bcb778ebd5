package edge

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// RepoUserSpec is one edge_repo_users item: a user of the image repository (Harbor).
type RepoUserSpec struct {
	Endpoint string      `yaml:"endpoint" json:"endpoint"`
	User     string      `yaml:"user" json:"user"`
	Password plan.Secret `yaml:"password" json:"password"`
}

func (s *RepoUserSpec) endpointName() string { return s.Endpoint }
func (s *RepoUserSpec) deps() []string       { return nil }

func (s *RepoUserSpec) check(c *checker) {
	if s.User == "" {
		s.User = c.item.Name
	}
	if c.quiet {
		return
	}
	if p := passwordProblem(s.Password.Reveal()); p != "" {
		c.Add(providers.Path{"password"}, "%s", p)
	}
}

// apply: create the user; 409 (the name is taken) adopts it. The API has no call
// that reads repository users back, so an adopted user's password is not checked.
func (s *RepoUserSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	existed, err := e.sysadmin().CreateRepoUser(ctx, s.User, s.Password)
	if err != nil {
		return nil, err
	}
	if existed {
		if aerr := x.Adopt(x.FirstLook()); aerr != nil {
			return nil, aerr
		}
		x.Log.Debug().Str("repository user", s.User).Msg("repository user exists (409), adopting it")
	}
	return outputs("user", s.User, "existed", strconv.FormatBool(existed)), nil
}

func (s *RepoUserSpec) probe(context.Context, *env, *providers.Exec) (bool, string, error) {
	return false, "repository users cannot be read back (the API has no such call); a create answered 409 adopts an existing one", nil
}

// ProjectSpec is one edge_repo_projects item.
type ProjectSpec struct {
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	Project  string `yaml:"project" json:"project"`
	Public   bool   `yaml:"public" json:"public"`
}

func (s *ProjectSpec) endpointName() string { return s.Endpoint }
func (s *ProjectSpec) deps() []string       { return nil }

func (s *ProjectSpec) check(c *checker) {
	if s.Project == "" {
		s.Project = c.item.Name
	}
	if c.quiet {
		return
	}
	if !providers.HasRef(s.Project) && (!projectRE.MatchString(s.Project) || len(s.Project) > 255) {
		c.Add(providers.Path{"project"}, "%q: want lower-case letters and digits, separated by single '.', '_' or '-' (at most 255 characters; the repository's rule)", s.Project)
	}
}

// apply: look the project up by name; create it when absent (409 adopts); refuse an
// existing project whose visibility differs (the API documents no update).
func (s *ProjectSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	k := e.sysadmin()
	p, err := k.FindProject(ctx, s.Project)
	if err != nil {
		return nil, err
	}
	if aerr := x.Adopt(p != nil && x.FirstLook()); aerr != nil {
		return nil, aerr
	}
	if p == nil {
		existed, err := k.CreateProject(ctx, s.Project, s.Public)
		if err != nil {
			return nil, err
		}
		if aerr := x.Adopt(existed && x.FirstLook()); aerr != nil {
			return nil, aerr
		}
		x.Log.Debug().Str("project", s.Project).Bool("existed", existed).Msg("project created")
		if p, err = k.FindProject(ctx, s.Project); err != nil {
			return nil, err
		}
		if p == nil {
			return nil, fmt.Errorf("repository project %s exists but the system administrator's project list does not show it (a private project of another user?)", s.Project)
		}
	}
	if p.Public != s.Public {
		return nil, fmt.Errorf("repository project %s exists with public: %t, the plan wants public: %t (the API has no update call): change one of them",
			s.Project, p.Public, s.Public)
	}
	return outputs("project_id", strconv.Itoa(p.ID), "project", s.Project), nil
}

func (s *ProjectSpec) probe(ctx context.Context, e *env, _ *providers.Exec) (bool, string, error) {
	p, err := e.sysadmin().FindProject(ctx, s.Project)
	if err != nil || p == nil {
		return false, "", err
	}
	return true, fmt.Sprintf("project %s: id %d, public %t", p.Name, p.ID, p.Public), nil
}

// RegistrySpec is one edge_registries item: an external registry whose secret
// pulls images. Whether a registry record is global or belongs to its creator's
// business namespace is not in the seed (inference either way): Business, when set,
// makes that business's administrator create and read it, like the business's
// applications; otherwise the system administrator does.
type RegistrySpec struct {
	Endpoint     string      `yaml:"endpoint" json:"endpoint"`
	RepositoryID string      `yaml:"repository_id" json:"repository_id"`
	Business     string      `yaml:"business" json:"business,omitempty"`
	Address      string      `yaml:"address" json:"address"`
	User         string      `yaml:"user" json:"user"`
	Password     plan.Secret `yaml:"password" json:"password"`
}

func (s *RegistrySpec) endpointName() string { return s.Endpoint }

func (s *RegistrySpec) deps() []string {
	if s.Business != "" {
		return []string{s.Business}
	}
	return nil
}

// conn is who creates and reads the registry: its business's administrator, or the
// system administrator.
func (s *RegistrySpec) conn(e *env) (*Conn, error) {
	if s.Business == "" {
		return e.sysadmin(), nil
	}
	bs, err := planIndex(e.b).business(s.Business)
	if err != nil {
		return nil, err
	}
	k, _, err := e.asUser(bs.Admin)
	return k, err
}

func (s *RegistrySpec) check(c *checker) {
	if s.RepositoryID == "" {
		s.RepositoryID = c.item.Name
	}
	if c.quiet {
		return
	}
	if s.Business != "" && !providers.HasRef(s.Business) {
		if bs, err := planIndex(c.b).business(s.Business); err != nil {
			c.Add(providers.Path{"business"}, "%v", err)
		} else if bs.Endpoint != s.Endpoint {
			c.Add(providers.Path{"business"}, "business item %q is on endpoint %q, this item on %q", s.Business, bs.Endpoint, s.Endpoint)
		}
	}
	c.required("address", s.Address)
	if strings.ContainsAny(s.Address, " \t\n") {
		c.Add(providers.Path{"address"}, "%q contains white space", s.Address)
	}
	c.required("user", s.User)
	if s.Password.IsZero() {
		c.Add(providers.Path{"password"}, "required")
	}
}

// apply: read the registry by id (404: create it; a 409 answer adopts it) and
// refuse an existing record whose address or user differ.
func (s *RegistrySpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	k, err := s.conn(e)
	if err != nil {
		return nil, err
	}
	r, err := k.GetRegistry(ctx, s.RepositoryID)
	if err != nil {
		return nil, err
	}
	if aerr := x.Adopt(r != nil && x.FirstLook()); aerr != nil {
		return nil, aerr
	}
	if r == nil {
		existed, err := k.CreateRegistry(ctx, Registry{ID: s.RepositoryID, Address: s.Address, User: s.User}, s.Password)
		if aerr := x.Adopt(err == nil && existed && x.FirstLook()); aerr != nil {
			return nil, aerr
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// A lost answer: the record may exist now.
			if r2, lerr := k.GetRegistry(ctx, s.RepositoryID); lerr == nil && r2 != nil {
				return s.adopt(r2, x)
			}
			return nil, err
		}
		if !existed {
			return outputs("repository_id", s.RepositoryID), nil
		}
		if r, err = k.GetRegistry(ctx, s.RepositoryID); err != nil {
			return nil, err
		}
		if r == nil {
			return nil, fmt.Errorf("external registry %s: create answered 409 but the registry cannot be read", s.RepositoryID)
		}
	}
	return s.adopt(r, x)
}

func (s *RegistrySpec) adopt(r *Registry, x *providers.Exec) (state.Outputs, error) {
	if (r.Address != "" && r.Address != s.Address) || (r.User != "" && r.User != s.User) {
		return nil, fmt.Errorf("external registry %s exists with address %q and user %q, the plan wants %q and %q (the API has no update call): change one of them",
			s.RepositoryID, r.Address, r.User, s.Address, s.User)
	}
	x.Log.Debug().Str("registry", s.RepositoryID).Msg("external registry exists, adopting it (its password cannot be read back)")
	return outputs("repository_id", s.RepositoryID), nil
}

func (s *RegistrySpec) probe(ctx context.Context, e *env, _ *providers.Exec) (bool, string, error) {
	k, err := s.conn(e)
	if err != nil {
		return false, "", err
	}
	r, err := k.GetRegistry(ctx, s.RepositoryID)
	if st := providers.StatusOf(err); s.Business != "" && (st == http.StatusUnauthorized || st == http.StatusForbidden || st == http.StatusUnprocessableEntity) {
		// The business's administrator cannot log in yet: nothing of it exists.
		return false, "the business administrator cannot log in yet: " + err.Error(), nil
	}
	if err != nil || r == nil {
		return false, "", err
	}
	return true, fmt.Sprintf("registry %s: %s as %s", r.ID, r.Address, r.User), nil
}
