package edge

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// EndpointKind is the endpoint kind this package talks to.
const EndpointKind = "edge"

// Section names.
const (
	UsersSection         = "edge_users"
	BusinessesSection    = "edge_businesses"
	ClusterLabelsSection = "edge_cluster_labels"
	NodeLabelsSection    = "edge_node_labels"
	RepoUsersSection     = "edge_repo_users"
	RepoProjectsSection  = "edge_repo_projects"
	RegistriesSection    = "edge_registries"
	AppsSection          = "edge_apps"
)

// Kinds returns every edge section.
func Kinds() []providers.Kind {
	return []providers.Kind{
		&Kind[UserSpec, *UserSpec]{section: UsersSection, doc: usersDoc},
		&Kind[BusinessSpec, *BusinessSpec]{section: BusinessesSection, doc: businessesDoc},
		&Kind[ClusterLabelSpec, *ClusterLabelSpec]{section: ClusterLabelsSection, doc: clusterLabelsDoc},
		&Kind[NodeLabelSpec, *NodeLabelSpec]{section: NodeLabelsSection, doc: nodeLabelsDoc},
		&Kind[RepoUserSpec, *RepoUserSpec]{section: RepoUsersSection, doc: repoUsersDoc},
		&Kind[ProjectSpec, *ProjectSpec]{section: RepoProjectsSection, doc: projectsDoc},
		&Kind[RegistrySpec, *RegistrySpec]{section: RegistriesSection, doc: registriesDoc},
		&Kind[AppSpec, *AppSpec]{section: AppsSection, doc: appsDoc},
	}
}

// Prober is what every edge action offers besides Apply: a read-only look at
// whether its object exists (for a dry run that reads the API; the same method set
// as the engine's optional prober).
type Prober interface {
	Probe(ctx context.Context, x *providers.Exec) (exists bool, detail string, err error)
}

var (
	_ providers.Kind   = (*Kind[UserSpec, *UserSpec])(nil)
	_ providers.Action = (*action[UserSpec, *UserSpec])(nil)
	_ Prober           = (*action[UserSpec, *UserSpec])(nil)
)

// spec is what every section's spec does: defaults and validation at build time,
// the dependencies it adds, and the remote work.
type spec interface {
	// endpointName is the spec's endpoint field.
	endpointName() string
	// check applies defaults and validates; errors carry positions.
	check(c *checker) []error
	// deps are the item names the task waits for beyond depends_on and references.
	deps() []string
	apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error)
	probe(ctx context.Context, e *env, x *providers.Exec) (bool, string, error)
}

// Kind is one edge section. It is stateless and safe for concurrent use.
type Kind[T any, P interface {
	*T
	spec
}] struct {
	section, doc string
}

// Section implements providers.Kind.
func (k *Kind[T, P]) Section() string { return k.section }

// Doc implements providers.Kind.
func (k *Kind[T, P]) Doc() string { return k.doc }

// Build implements providers.Kind: decode strictly, apply defaults, validate every
// field (all problems at once, with positions) and return the item's one task.
func (k *Kind[T, P]) Build(b *providers.Build, item *plan.Item) ([]*providers.Task, error) {
	sp := P(new(T))
	if err := providers.Decode(item, sp); err != nil {
		return nil, err
	}
	c := &checker{b: b, item: item, section: k.section}
	errs := sp.check(c)
	var e *env
	ep, err := b.Endpoint(c.pos("endpoint"), sp.endpointName(), EndpointKind)
	if err != nil {
		errs = append(errs, err)
	} else if e, err = newEnv(b, ep); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	deps := providers.ItemDeps(item, sp.deps()...)
	return []*providers.Task{{
		ID: item.Name, Kind: k.section, Pos: item.Pos, Deps: uniq(deps), Refs: item.Refs, Spec: sp, Endpoint: ep.Name,
		Hash:   providers.SpecHash(k.section, item.Name, sp),
		Action: &action[T, P]{spec: sp, env: e},
	}}, nil
}

// action runs one spec.
type action[T any, P interface {
	*T
	spec
}] struct {
	spec P
	env  *env
}

func (a *action[T, P]) Apply(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	x.Adopted = x.AdoptedBefore()
	return a.spec.apply(ctx, a.env, x)
}

func (a *action[T, P]) Probe(ctx context.Context, x *providers.Exec) (bool, string, error) {
	return a.spec.probe(ctx, a.env, x)
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, v := range s {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// env is what a task's Apply works with: the endpoint's shared client and the
// system administrator's session, plus the build (for other users' credentials).
type env struct {
	b      *providers.Build
	ep     *plan.Endpoint
	client *Client
	admin  *Session
}

func newEnv(b *providers.Build, ep *plan.Endpoint) (*env, error) {
	if t := ep.Auth.Type; t != "" && t != "login" {
		return nil, plan.Where(ep.Pos, fmt.Errorf("endpoint %s: auth.type %q: edge endpoints log in with username and password (type login, the default)", ep.Name, t))
	}
	if ep.Auth.Username == "" || ep.Auth.Password.IsZero() {
		return nil, plan.Where(ep.Pos, fmt.Errorf("endpoint %s: auth: username and password of the system administrator are required", ep.Name))
	}
	v, err := b.Clients.Get("edge:"+ep.Name, func() (any, error) { return NewClient(ep, b.Plan.Redactor) })
	if err != nil {
		return nil, plan.Where(ep.Pos, fmt.Errorf("endpoint %s: %w", ep.Name, err))
	}
	e := &env{b: b, ep: ep, client: v.(*Client)}
	e.admin = e.session(ep.Auth.Username, ep.Auth.Password)
	return e, nil
}

// session returns the shared token source of a user on this endpoint.
func (e *env) session(user string, password plan.Secret) *Session {
	v, _ := e.b.Clients.Get("edge:"+e.ep.Name+"/user:"+user, func() (any, error) { return e.client.NewSession(user, password), nil })
	return v.(*Session)
}

// sysadmin acts as the endpoint's system administrator.
func (e *env) sysadmin() *Conn { return e.client.As(e.admin) }

// asUser acts as the user of an edge_users item (credentials from its spec).
func (e *env) asUser(itemName string) (*Conn, string, error) {
	u, err := planIndex(e.b).user(itemName)
	if err != nil {
		return nil, "", err
	}
	return e.client.As(e.session(u.User, u.Password)), u.User, nil
}

// index gives Build and Apply the edge items of the plan by name, decoded once.
type index struct {
	mu    sync.Mutex
	b     *providers.Build
	items map[string]*plan.Item
	specs map[string]any

	// businessOf: general administrator item -> business items it creates,
	// computed once.
	businessOnce sync.Once
	businessOf   map[string][]string
}

func planIndex(b *providers.Build) *index {
	v, _ := b.Clients.Get("edge:plan-index", func() (any, error) {
		ix := &index{b: b, items: map[string]*plan.Item{}, specs: map[string]any{}}
		if b.Plan != nil {
			for _, it := range b.Plan.Items {
				switch it.Section {
				case UsersSection, BusinessesSection, RegistriesSection:
					ix.items[it.Name] = it
				}
			}
		}
		return ix, nil
	})
	return v.(*index)
}

// decoded returns the decoded spec of an item of section with defaults applied.
func decoded[T any, P interface {
	*T
	spec
}](ix *index, section, name string) (P, error) {
	ix.mu.Lock()
	it, ok := ix.items[name]
	v, cached := ix.specs[name]
	ix.mu.Unlock()
	if !ok || it.Section != section {
		return nil, fmt.Errorf("no %s item named %q", section, name)
	}
	if cached {
		return v.(P), nil
	}
	sp := P(new(T))
	if err := providers.Decode(it, sp); err != nil {
		return nil, fmt.Errorf("item %s is invalid (see its own errors)", name)
	}
	// Quiet: defaults only, no look at other items (no recursion, no lock held).
	sp.check(&checker{b: ix.b, item: it, section: section, quiet: true})
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if v, ok := ix.specs[name]; ok {
		return v.(P), nil
	}
	ix.specs[name] = sp
	return sp, nil
}

func (ix *index) user(name string) (*UserSpec, error) {
	return decoded[UserSpec, *UserSpec](ix, UsersSection, name)
}

func (ix *index) business(name string) (*BusinessSpec, error) {
	return decoded[BusinessSpec, *BusinessSpec](ix, BusinessesSection, name)
}

func (ix *index) registry(name string) (*RegistrySpec, error) {
	return decoded[RegistrySpec, *RegistrySpec](ix, RegistriesSection, name)
}

// businessesOf lists the edge_businesses items whose admin is the user item name.
func (ix *index) businessesOf(userItem string) []string {
	ix.businessOnce.Do(func() {
		ix.mu.Lock()
		var names []string
		for _, it := range ix.items {
			if it.Section == BusinessesSection {
				names = append(names, it.Name)
			}
		}
		ix.mu.Unlock()
		sort.Strings(names)
		m := map[string][]string{}
		for _, name := range names {
			if bs, err := ix.business(name); err == nil && bs.Admin != "" {
				m[bs.Admin] = append(m[bs.Admin], name)
			}
		}
		ix.businessOf = m
	})
	return ix.businessOf[userItem]
}

// checker helps a spec validate one item: positions of fields and error format.
type checker struct {
	b       *providers.Build
	item    *plan.Item
	section string
	// quiet: decoding another item for its values (its own Build reports its errors).
	quiet bool
}

// node returns the value node of a top-level field, or nil.
func (c *checker) node(field string) *yaml.Node {
	return providers.FieldNode(c.item.Fields(), field)
}

// pos is the position of a field's value, or of the item when the field is absent.
func (c *checker) pos(field string) plan.Pos {
	if n := c.node(field); n != nil && n.Line > 0 {
		return plan.NodePos(c.item.Pos.File, n)
	}
	return c.item.Pos
}

// elemPos is the position of element i of a list field.
func (c *checker) elemPos(field string, i int) plan.Pos {
	if n := c.node(field); n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) && n.Content[i].Line > 0 {
		return plan.NodePos(c.item.Pos.File, n.Content[i])
	}
	return c.pos(field)
}

// errf is a positioned error "ITEM: FIELD: message".
func (c *checker) errf(field string, format string, a ...any) error {
	return plan.Where(c.pos(field), fmt.Errorf("%s: %s: %s", c.item.Name, field, fmt.Sprintf(format, a...)))
}

// elemErrf is errf for element i of a list field ("ports[1]").
func (c *checker) elemErrf(field string, i int, format string, a ...any) error {
	return plan.Where(c.elemPos(field, i), fmt.Errorf("%s: %s[%d]: %s", c.item.Name, field, i, fmt.Sprintf(format, a...)))
}

// required reports a missing string field.
func (c *checker) required(errs *[]error, field, v string) {
	if strings.TrimSpace(v) == "" {
		*errs = append(*errs, c.errf(field, "required"))
	}
}

// refersToUser checks that field names an edge_users item on the same endpoint,
// which must be a general administrator that is not a sub-user when wantAdmin.
func (c *checker) refersToUser(errs *[]error, field, name, endpoint string, wantAdmin bool) {
	if name == "" || providers.HasRef(name) || c.quiet {
		return
	}
	if name == c.item.Name {
		*errs = append(*errs, c.errf(field, "an item cannot refer to itself"))
		return
	}
	u, err := planIndex(c.b).user(name)
	if err != nil {
		*errs = append(*errs, c.errf(field, "%v", err))
		return
	}
	if u.Endpoint != endpoint {
		*errs = append(*errs, c.errf(field, "user item %q is on endpoint %q, this item on %q", name, u.Endpoint, endpoint))
	}
	if wantAdmin && (!u.Admin || u.Parent != "") {
		*errs = append(*errs, c.errf(field, "user item %q must be a general administrator (admin: true, no parent)", name))
	}
}

var (
	labelRE   = regexp.MustCompile(`^[A-Za-z0-9.-]+$`)
	versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)
	// Harbor's project name rule (inference: the platform keeps Harbor behind /v1/repository).
	projectRE = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
)

// hasRef reports whether v still holds an output reference (resolved at run time,
// validated by the API then).

// passwordProblem applies the platform's rule: 8-20 characters with at least one
// upper-case letter, one lower-case letter and one digit. It never quotes the value.
func passwordProblem(p string) string {
	if p == "" {
		return "required"
	}
	if providers.HasRef(p) {
		return ""
	}
	n := len([]rune(p))
	var up, low, digit bool
	for _, r := range p {
		switch {
		case r >= 'A' && r <= 'Z':
			up = true
		case r >= 'a' && r <= 'z':
			low = true
		case r >= '0' && r <= '9':
			digit = true
		}
	}
	if n < 8 || n > 20 || !up || !low || !digit {
		return fmt.Sprintf("must be 8-20 characters with at least one upper-case letter, one lower-case letter and one digit (this one has %d characters)", n)
	}
	return ""
}

// checkLabel validates a cluster or node label name.
func (c *checker) checkLabel(errs *[]error, field, v string) {
	switch {
	case v == "":
		*errs = append(*errs, c.errf(field, "required"))
	case providers.HasRef(v):
	case !labelRE.MatchString(v):
		*errs = append(*errs, c.errf(field, "%q may only use letters, digits, '-' and '.'", v))
	case len(v) > 63:
		*errs = append(*errs, c.errf(field, "%q is longer than 63 characters (a Kubernetes label)", v))
	}
}

// checkNames validates a required list of distinct names.
func (c *checker) checkNames(errs *[]error, field string, names []string, what string) {
	if len(names) == 0 {
		*errs = append(*errs, c.errf(field, "required (the %s to label)", what))
		return
	}
	seen := map[string]bool{}
	for i, n := range names {
		switch {
		case strings.TrimSpace(n) == "":
			*errs = append(*errs, c.elemErrf(field, i, "empty name"))
		case seen[n]:
			*errs = append(*errs, c.elemErrf(field, i, "%q appears twice", n))
		}
		seen[n] = true
	}
}

// defaultTrue returns *p, or true when unset (and sets it, so the hash shows it).
func defaultTrue(p **bool) bool {
	if *p == nil {
		t := true
		*p = &t
	}
	return **p
}

// outputs builds plain outputs from key/value pairs.
func outputs(kv ...string) state.Outputs {
	o := state.Outputs{}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i]] = state.Plain(kv[i+1])
	}
	return o
}
