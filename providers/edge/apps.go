package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"provision/providers"
	"provision/state"
)

// AppSpec is one edge_apps item.
type AppSpec struct {
	Endpoint     string `yaml:"endpoint" json:"endpoint"`
	AppName      string `yaml:"app_name" json:"app_name"`
	Business     string `yaml:"business" json:"business"`
	Image        string `yaml:"image" json:"image"`
	Version      string `yaml:"version" json:"version"`
	DeployType   string `yaml:"deploy_type" json:"deploy_type"`
	Ports        []int  `yaml:"ports" json:"ports"`
	RepositoryID string `yaml:"repository_id" json:"repository_id"`
	// Registry names an edge_registries item: the form of the first version of this
	// section, kept so that plans written for it still load.
	Registry    string            `yaml:"registry" json:"registry"`
	Command     []string          `yaml:"command" json:"command"`
	Args        []string          `yaml:"args" json:"args"`
	Env         map[string]string `yaml:"env" json:"env"`
	Description string            `yaml:"description" json:"description"`

	// RegistryID is the repositoryId sent: the repository_id of the edge_registries
	// item that repository_id names, or repository_id itself (set by Build).
	RegistryID string `yaml:"-" json:"registry_id"`
	// registryItem is the edge_registries item repository_id names, if any.
	registryItem string
}

func (s *AppSpec) endpointName() string { return s.Endpoint }

func (s *AppSpec) deps() []string {
	var d []string
	if s.Business != "" {
		d = append(d, s.Business)
	}
	if s.registryItem != "" {
		d = append(d, s.registryItem)
	}
	return d
}

func (s *AppSpec) check(c *checker) {
	if s.AppName == "" {
		s.AppName = c.item.Name
	}
	s.RegistryID = s.RepositoryID
	if c.quiet {
		return
	}
	s.checkRefs(c)
	s.checkFields(c)
}

// checkRefs checks the items the app names (business, registry, repository_id)
// and takes the repositoryId from a registry item.
func (s *AppSpec) checkRefs(c *checker) {
	ix := planIndex(c.b)
	if s.Business != "" && !providers.HasRef(s.Business) {
		if bs, err := ix.business(s.Business); err != nil {
			c.Add(providers.Path{"business"}, "%v", err)
		} else if bs.Endpoint != s.Endpoint {
			c.Add(providers.Path{"business"}, "business item %q is on endpoint %q, this item on %q", s.Business, bs.Endpoint, s.Endpoint)
		}
	}
	if s.Registry != "" && !providers.HasRef(s.Registry) {
		switch _, err := ix.registry(s.Registry); {
		case err != nil:
			c.Add(providers.Path{"registry"}, "%v", err)
		case s.RepositoryID != "" && s.RepositoryID != s.Registry:
			c.Add(providers.Path{"registry"}, "%q and repository_id %q disagree: give one of them", s.Registry, s.RepositoryID)
		default:
			s.RepositoryID = s.Registry
		}
	}
	if s.RepositoryID != "" && !providers.HasRef(s.RepositoryID) {
		if rs, err := ix.registry(s.RepositoryID); err == nil {
			s.registryItem = s.RepositoryID
			s.RegistryID = rs.RepositoryID
			if rs.Endpoint != s.Endpoint {
				c.Add(providers.Path{"repository_id"}, "registry item %q is on endpoint %q, this item on %q", s.RepositoryID, rs.Endpoint, s.Endpoint)
			}
		}
	}
}

// checkFields checks the app's own fields.
func (s *AppSpec) checkFields(c *checker) {
	switch {
	case s.Image == "":
		c.Add(providers.Path{"image"}, "required (an image with its tag, e.g. registry.example.com/team/app:1.4)")
	case providers.HasRef(s.Image):
	case strings.ContainsAny(s.Image, " \t\n"):
		c.Add(providers.Path{"image"}, "%q contains white space", s.Image)
	case !hasTag(s.Image):
		c.Add(providers.Path{"image"}, "%q has no tag (want repository:tag or repository@digest)", s.Image)
	}
	switch {
	case s.Version == "":
		c.Add(providers.Path{"version"}, "required (x.y, e.g. 1.4)")
	case providers.HasRef(s.Version):
	case !versionRE.MatchString(s.Version):
		c.Add(providers.Path{"version"}, "%q must have the form x.y (digits), e.g. 1.4", s.Version)
	}
	switch s.DeployType {
	case "deployment", "daemonset":
	case "":
		c.Add(providers.Path{"deploy_type"}, "required (deployment or daemonset)")
	default:
		c.Add(providers.Path{"deploy_type"}, "%q must be deployment or daemonset", s.DeployType)
	}
	if len(s.Ports) == 0 {
		c.Add(providers.Path{"ports"}, "required (the exposed ports, 1-65535)")
	}
	seen := map[int]bool{}
	for i, p := range s.Ports {
		switch {
		case p < 1 || p > 65535:
			c.Add(providers.Path{"ports", i}, "%d is not a port (1-65535)", p)
		case seen[p]:
			c.Add(providers.Path{"ports", i}, "%d appears twice", p)
		}
		seen[p] = true
	}
	for i, v := range s.Command {
		if v == "" {
			c.Add(providers.Path{"command", i}, "empty")
		}
	}
	for _, k := range sortedKeys(s.Env) {
		if !envNameRE.MatchString(k) {
			c.Add(providers.Path{"env"}, "%q is not a variable name (letters, digits, '_', '.', '-', not starting with a digit)", k)
		}
	}
}

// hasTag reports whether an image reference names a tag or a digest.
func hasTag(image string) bool {
	if strings.Contains(image, "@") {
		return true
	}
	last := image[strings.LastIndexByte(image, '/')+1:]
	i := strings.LastIndexByte(last, ':')
	return i > 0 && i < len(last)-1
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *AppSpec) newApp() NewApp {
	a := NewApp{AppName: s.AppName, DeployType: s.DeployType, Image: s.Image, Version: s.Version, RepositoryID: s.RegistryID,
		Port: s.Ports, Command: s.Command, Args: s.Args, Description: s.Description}
	for _, k := range sortedKeys(s.Env) {
		a.Env = append(a.Env, EnvVar{Name: k, Value: s.Env[k]})
	}
	return a
}

// conn is who creates the application: the administrator of its business (so that
// it lands in the business namespace), or the system administrator.
func (s *AppSpec) conn(e *env) (*Conn, error) {
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

// apply: look the application up by name (GET /v1/app?appName=, an inference: the
// seed's list call is cut off) as the user that creates it; create it when absent.
// POST /v1/app is not known to refuse duplicates, so after a failed create the
// lookup decides whether it took effect before anything is sent again.
//
// When the platform serves no such lookup (ErrNoAppLookup), the inference fails
// safe: an application that cannot exist yet (no earlier attempt of this task may
// have created it: not in doubt, no checkpointed id) is created without a lookup;
// one that may exist is read by its checkpointed id if GET /v1/app/{id} is served,
// and otherwise the task fails in doubt (never retried, never created blind).
func (s *AppSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	k, err := s.conn(e)
	if err != nil {
		return nil, err
	}
	a, err := k.FindApp(ctx, s.AppName)
	if errors.Is(err, ErrNoAppLookup) {
		return s.applyBlind(ctx, k, x)
	}
	if err != nil {
		return nil, err
	}
	if aerr := x.Adopt(a != nil && x.PriorValue("app_id") == "" && x.FirstLook()); aerr != nil {
		return nil, aerr
	}
	if prior := x.PriorValue("app_id"); a == nil && prior != "" {
		// An earlier attempt created it, yet the name lookup (an inference) misses
		// it: ask by id before creating anything again.
		if a, err = k.GetApp(ctx, prior); err != nil {
			return nil, fmt.Errorf("application %s: an earlier attempt created id %s, which cannot be read now: %w", s.AppName, prior, err)
		}
		if a != nil && a.Name != "" && a.Name != s.AppName {
			a = nil // the id now names another application: ours is gone
		}
	}
	if a == nil {
		id, err := k.CreateApp(ctx, s.newApp())
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			if !providers.MaybeApplied(err) && providers.StatusOf(err) != http.StatusConflict {
				return nil, err
			}
			a, lerr := k.FindApp(ctx, s.AppName)
			if lerr != nil || a == nil {
				if errors.Is(lerr, ErrNoAppLookup) {
					return nil, s.inDoubt(err)
				}
				return nil, err
			}
			if aerr := x.Adopt(!providers.MaybeApplied(err) && x.FirstLook()); aerr != nil {
				return nil, aerr
			}
			x.Log.Debug().Str("app", s.AppName).Int("id", a.ID).Msg("create failed but the application exists: adopting it")
			return s.adopt(a, x)
		}
		if id > 0 {
			if err := x.Checkpoint(outputs("app_id", strconv.Itoa(id))); err != nil {
				return nil, err
			}
			return outputs("app_id", strconv.Itoa(id), "app_name", s.AppName), nil
		}
		if a, err = k.FindApp(ctx, s.AppName); err != nil {
			return nil, err
		}
		if a == nil {
			return nil, fmt.Errorf("application %s was created but the application list does not show it", s.AppName)
		}
	}
	return s.adopt(a, x)
}

// applyBlind is apply on a platform without the application lookup.
func (s *AppSpec) applyBlind(ctx context.Context, k *Conn, x *providers.Exec) (state.Outputs, error) {
	if prior := x.PriorValue("app_id"); prior != "" {
		a, err := k.GetApp(ctx, prior)
		switch {
		case errors.Is(err, ErrNoAppLookup):
			return nil, s.inDoubt(err)
		case err != nil:
			return nil, err
		case a != nil && (a.Name == "" || a.Name == s.AppName):
			return s.adopt(a, x)
		}
		// The id is unknown (or names another application): ours is gone.
		x.Log.Debug().Str("app", s.AppName).Str("app_id", prior).Msg("checkpointed application is gone: creating it again")
	} else if x.InDoubt {
		return nil, s.inDoubt(ErrNoAppLookup)
	}
	x.Log.Warn().Str("app", s.AppName).Msg("the platform serves no application lookup (GET /v1/app): creating without one; no earlier attempt can have created it")
	id, err := k.CreateApp(ctx, s.newApp())
	if err != nil {
		// A create that may have taken effect leaves the next attempt in doubt: with
		// no lookup, that one fails rather than creating a second application.
		return nil, err
	}
	if id <= 0 {
		return nil, s.inDoubt(fmt.Errorf("application %s was created but the answer holds no id and the platform offers no lookup", s.AppName))
	}
	if err := x.Checkpoint(outputs("app_id", strconv.Itoa(id))); err != nil {
		return nil, err
	}
	return outputs("app_id", strconv.Itoa(id), "app_name", s.AppName), nil
}

// inDoubt is the permanent failure of a task that cannot tell whether its
// application exists. It stays "may have taken effect", so a rerun is in doubt too
// and never creates blind.
func (s *AppSpec) inDoubt(cause error) error {
	return &providers.Error{Op: "application " + s.AppName, MaybeApplied: true,
		Message: "an earlier attempt may have created it and the platform offers no lookup to confirm it: check on the platform by hand; the task stays in doubt (it never creates a second application blind) until a lookup can confirm it",
		Err:     fmt.Errorf("%w: %w", providers.ErrInDoubt, cause)}
}

// adopt accepts an existing application that matches the spec and refuses one that
// differs (the seed documents no update call).
func (s *AppSpec) adopt(a *App, x *providers.Exec) (state.Outputs, error) {
	var diffs []string
	if a.Image != "" && a.Image != s.Image {
		diffs = append(diffs, fmt.Sprintf("image %q (plan: %q)", a.Image, s.Image))
	}
	if a.Version != "" && a.Version != s.Version {
		diffs = append(diffs, fmt.Sprintf("version %q (plan: %q)", a.Version, s.Version))
	}
	if a.DeployType != "" && a.DeployType != s.DeployType {
		diffs = append(diffs, fmt.Sprintf("deployType %q (plan: %q)", a.DeployType, s.DeployType))
	}
	if len(diffs) > 0 {
		return nil, fmt.Errorf("application %s exists (id %d) with %s; the API documents no update: delete it on the platform or change the plan",
			s.AppName, a.ID, strings.Join(diffs, ", "))
	}
	x.Log.Debug().Str("app", s.AppName).Int("id", a.ID).Msg("application exists, adopting it")
	o := outputs("app_id", strconv.Itoa(a.ID), "app_name", s.AppName)
	if a.Namespace != "" {
		o["namespace"] = state.Plain(a.Namespace)
	}
	return o, nil
}

func (s *AppSpec) probe(ctx context.Context, e *env, _ *providers.Exec) (bool, string, error) {
	k, err := s.conn(e)
	if err != nil {
		return false, "", err
	}
	a, err := k.FindApp(ctx, s.AppName)
	switch st := providers.StatusOf(err); {
	case errors.Is(err, ErrNoAppLookup):
		return false, "unknown: the platform serves no application lookup", nil
	case s.Business != "" && (st == http.StatusUnauthorized || st == http.StatusForbidden || st == http.StatusUnprocessableEntity):
		// The business's administrator cannot log in yet: nothing of it exists.
		return false, "the business administrator cannot log in yet: " + err.Error(), nil
	case err != nil || a == nil:
		return false, "", err
	}
	return true, fmt.Sprintf("application %s: id %d, image %s", a.Name, a.ID, a.Image), nil
}
