// Package edge provisions the edge platform "Video Security Monitoring R3" open API:
// users (registered, then approved by the system administrator, or sub-users of a
// general administrator), business namespaces (created by their administrator,
// audited by the system administrator), cluster and node labels, repository users
// and projects, external registries and applications. Every resource is looked up
// by its natural key before it is created, so reruns and in-doubt attempts never
// duplicate anything. Endpoints are of kind "edge" and log in as the system
// administrator.
package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
	"provision/state"
)

// EndpointKind is the endpoint kind of this package.
const EndpointKind = "edge"

// resource is one section's spec: validation (with defaults) and the remote work.
type resource interface {
	endpoint() string
	validate(b *providers.Build, item *plan.Item) []error
	deps() []string
	apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error)
}

// env is what a task's apply gets: the system administrator's client and the build.
type env struct {
	admin *Client
	ep    *plan.Endpoint
	b     *providers.Build
}

// kind adapts a resource type to providers.Kind.
type kind[T any, P interface {
	*T
	resource
}] struct {
	section, doc string
}

func (k kind[T, P]) Section() string { return k.section }
func (k kind[T, P]) Doc() string     { return k.doc }

func (k kind[T, P]) Build(b *providers.Build, item *plan.Item) ([]*providers.Task, error) {
	spec := P(new(T))
	if err := providers.Decode(item, spec); err != nil {
		return nil, err
	}
	errs := spec.validate(b, item)
	ep, err := b.Endpoint(item.Pos, spec.endpoint(), EndpointKind)
	if err != nil {
		errs = append(errs, err)
	}
	var e *env
	if ep != nil {
		admin, err := clientFor(b, ep, ep.Auth.Username, ep.Auth.Password)
		if err != nil {
			errs = append(errs, plan.Where(ep.Pos, fmt.Errorf("endpoint %s: %w", ep.Name, err)))
		}
		e = &env{admin: admin, ep: ep, b: b}
	}
	if len(errs) > 0 {
		return nil, providers.ItemErrors(item, errs)
	}
	deps := providers.ItemDeps(item, spec.deps()...)
	return []*providers.Task{{
		ID: item.Name, Kind: k.section, Pos: item.Pos, Deps: deps, Refs: item.Refs, Spec: spec, Endpoint: ep.Name,
		Hash: providers.SpecHash(k.section, item.Name, spec),
		Action: providers.ActionFunc(func(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
			return spec.apply(ctx, e, x)
		}),
	}}, nil
}

// Kinds returns every edge section.
func Kinds() []providers.Kind {
	return []providers.Kind{
		kind[UserSpec, *UserSpec]{"edge_users", usersDoc},
		kind[BusinessSpec, *BusinessSpec]{"edge_businesses", businessesDoc},
		kind[ClusterLabelSpec, *ClusterLabelSpec]{"edge_cluster_labels", clusterLabelsDoc},
		kind[NodeLabelSpec, *NodeLabelSpec]{"edge_node_labels", nodeLabelsDoc},
		kind[RepoUserSpec, *RepoUserSpec]{"edge_repo_users", repoUsersDoc},
		kind[ProjectSpec, *ProjectSpec]{"edge_repo_projects", projectsDoc},
		kind[RegistrySpec, *RegistrySpec]{"edge_registries", registriesDoc},
		kind[AppSpec, *AppSpec]{"edge_apps", appsDoc},
	}
}

func clientFor(b *providers.Build, ep *plan.Endpoint, user string, password plan.Secret) (*Client, error) {
	if user == "" || password.IsZero() {
		return nil, errors.New("auth: username and password are required")
	}
	c, err := b.Clients.Get("edge:"+ep.Name+":"+user, func() (any, error) { return newClient(ep, user, password, b.Plan.Redactor) })
	if err != nil {
		return nil, err
	}
	return c.(*Client), nil
}

var (
	labelRE   = regexp.MustCompile(`^[A-Za-z0-9.-]{1,63}$`)
	versionRE = regexp.MustCompile(`^\d+\.\d+$`)
)

func hasRef(s string) bool { return strings.Contains(s, "${outputs.") }

// checkPassword applies the platform's rule: 8-20 characters with at least one
// upper-case letter, one lower-case letter and one digit.
func checkPassword(field string, p plan.Secret) error {
	v := p.Reveal()
	if v == "" {
		return fmt.Errorf("%s: required", field)
	}
	if hasRef(v) {
		return nil
	}
	if len(v) < 8 || len(v) > 20 || !strings.ContainsAny(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") || !strings.ContainsAny(v, "abcdefghijklmnopqrstuvwxyz") || !strings.ContainsAny(v, "0123456789") {
		return fmt.Errorf("%s: must be 8-20 characters with at least one upper-case letter, one lower-case letter and one digit", field)
	}
	return nil
}

func checkLabel(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s: required", field)
	}
	if !hasRef(v) && !labelRE.MatchString(v) {
		return fmt.Errorf("%s: %q may only use letters, digits, '-' and '.'", field, v)
	}
	return nil
}

func required(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s: required", field)
	}
	return nil
}

// userCreds finds an edge_users item by name and returns its credentials.
func userCreds(b *providers.Build, name string) (string, plan.Secret, error) {
	for _, it := range b.Plan.Items {
		if it.Name == name && it.Section == "edge_users" {
			var u UserSpec
			if err := providers.Decode(it, &u); err != nil {
				return "", plan.Secret{}, err
			}
			if u.User == "" {
				u.User = it.Name
			}
			return u.User, u.Password, nil
		}
	}
	return "", plan.Secret{}, fmt.Errorf("no edge_users item named %q", name)
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
}

func (s *UserSpec) endpoint() string { return s.Endpoint }
func (s *UserSpec) deps() []string {
	if s.Parent != "" {
		return []string{s.Parent}
	}
	return nil
}

func (s *UserSpec) validate(b *providers.Build, item *plan.Item) []error {
	var errs []error
	if s.User == "" {
		s.User = item.Name
	}
	for _, e := range []error{checkPassword("password", s.Password), required("phone", s.Phone), required("real_name", s.RealName)} {
		if e != nil {
			errs = append(errs, e)
		}
	}
	if s.Approve == nil {
		t := true
		s.Approve = &t
	}
	if s.Parent != "" {
		if _, _, err := userCreds(b, s.Parent); err != nil {
			errs = append(errs, fmt.Errorf("parent: %w", err))
		}
	}
	return errs
}

type userRow struct {
	ID     int    `json:"id"`
	User   string `json:"user"`
	Status int    `json:"status"`
}

func findUser(ctx context.Context, c *Client, name string) (*userRow, error) {
	users, err := listAll[userRow](ctx, c, "/v1/admin/user", nil)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if u.User == name {
			return &u, nil
		}
	}
	return nil, nil
}

func (s *UserSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	lister := e.admin
	if s.Parent != "" {
		user, pw, err := userCreds(e.b, s.Parent)
		if err != nil {
			return nil, err
		}
		if lister, err = clientFor(e.b, e.ep, user, pw); err != nil {
			return nil, err
		}
	}
	u, err := findUser(ctx, lister, s.User)
	if err != nil {
		return nil, fmt.Errorf("look up user %s: %w", s.User, err)
	}
	if u == nil {
		body := map[string]any{"user": s.User, "password": s.Password.Reveal(), "phone": s.Phone, "isAdmin": s.Admin, "realName": s.RealName}
		var err error
		if s.Parent != "" {
			_, err = lister.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/admin/user", JSON: body, Op: "create sub-user"}, nil)
		} else {
			anon, aerr := anonymous(e.ep)
			if aerr != nil {
				return nil, aerr
			}
			_, err = anon.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/user", JSON: body, Op: "register user"}, nil)
		}
		if err != nil && !strings.Contains(strings.ToLower(err.Error()), "already exists") {
			return nil, fmt.Errorf("create user %s: %w", s.User, err)
		}
		if u, err = findUser(ctx, lister, s.User); err != nil {
			return nil, fmt.Errorf("user %s look up after creating it: %w", s.User, err)
		}
		if u == nil {
			return nil, fmt.Errorf("user %s not found after creating it", s.User)
		}
	}
	if *s.Approve && u.Status != 1 {
		if _, err := e.admin.do(ctx, &rest.Request{Method: http.MethodPut, Path: "/v1/admin/user/" + strconv.Itoa(u.ID), JSON: map[string]int{"status": 1}, Idempotent: true, Op: "approve user"}, nil); err != nil {
			return nil, fmt.Errorf("approve user %s: %w", s.User, err)
		}
		u.Status = 1
	}
	return state.Outputs{"user_id": state.Plain(strconv.Itoa(u.ID)), "status": state.Plain(strconv.Itoa(u.Status))}, nil
}

// BusinessSpec is one edge_businesses item.
type BusinessSpec struct {
	Endpoint  string `yaml:"endpoint" json:"endpoint"`
	Name      string `yaml:"name" json:"name"`
	Introduce string `yaml:"introduce" json:"introduce"`
	Objective string `yaml:"objective" json:"objective"`
	Scale     string `yaml:"scale" json:"scale"`
	Admin     string `yaml:"admin" json:"admin"`
	Approve   *bool  `yaml:"approve" json:"approve"`
	Comment   string `yaml:"comment" json:"comment"`
}

func (s *BusinessSpec) endpoint() string { return s.Endpoint }
func (s *BusinessSpec) deps() []string   { return []string{s.Admin} }

func (s *BusinessSpec) validate(b *providers.Build, item *plan.Item) []error {
	var errs []error
	if s.Name == "" {
		s.Name = item.Name
	}
	for _, e := range []error{required("introduce", s.Introduce), required("objective", s.Objective), required("scale", s.Scale), required("admin", s.Admin)} {
		if e != nil {
			errs = append(errs, e)
		}
	}
	if s.Admin != "" {
		if _, _, err := userCreds(b, s.Admin); err != nil {
			errs = append(errs, fmt.Errorf("admin: %w", err))
		}
	}
	if s.Approve == nil {
		t := true
		s.Approve = &t
	}
	if s.Comment == "" {
		s.Comment = "approved by provision"
	}
	return errs
}

type businessRow struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	Status int    `json:"status"`
}

func findBusiness(ctx context.Context, c *Client, name string) (*businessRow, error) {
	list, err := listAll[businessRow](ctx, c, "/v1/business", url.Values{"name": {name}})
	if err != nil {
		return nil, err
	}
	for _, b := range list {
		if b.Name == name && b.Status != 3 {
			return &b, nil
		}
	}
	return nil, nil
}

func (s *BusinessSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	user, pw, err := userCreds(e.b, s.Admin)
	if err != nil {
		return nil, err
	}
	owner, err := clientFor(e.b, e.ep, user, pw)
	if err != nil {
		return nil, err
	}
	bz, err := findBusiness(ctx, owner, s.Name)
	if err != nil {
		return nil, fmt.Errorf("look up business %s: %w", s.Name, err)
	}
	if bz == nil {
		body := map[string]string{"name": s.Name, "introduce": s.Introduce, "objective": s.Objective, "scale": s.Scale}
		if _, err := owner.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/business", JSON: body, Op: "create business"}, nil); err != nil {
			return nil, fmt.Errorf("create business %s as %s: %w", s.Name, user, err)
		}
		if bz, err = findBusiness(ctx, owner, s.Name); err != nil {
			return nil, fmt.Errorf("business %s look up after creating it: %w", s.Name, err)
		}
		if bz == nil {
			return nil, fmt.Errorf("business %s not found after creating it", s.Name)
		}
	}
	if *s.Approve && bz.Status != 1 {
		if _, err := e.admin.do(ctx, &rest.Request{Method: http.MethodPut, Path: "/v1/business/id/" + strconv.Itoa(bz.ID), JSON: map[string]any{"id": strconv.Itoa(bz.ID), "status": 1, "comment": s.Comment}, Idempotent: true, Op: "audit business"}, nil); err != nil {
			return nil, fmt.Errorf("approve business %s: %w", s.Name, err)
		}
	}
	id := strconv.Itoa(bz.ID)
	return state.Outputs{"business_id": state.Plain(id), "namespace": state.Plain("ns" + id)}, nil
}

// ClusterLabelSpec is one edge_cluster_labels item.
type ClusterLabelSpec struct {
	Endpoint string   `yaml:"endpoint" json:"endpoint"`
	Label    string   `yaml:"label" json:"label"`
	Clusters []string `yaml:"clusters" json:"clusters"`
}

func (s *ClusterLabelSpec) endpoint() string { return s.Endpoint }
func (s *ClusterLabelSpec) deps() []string   { return nil }
func (s *ClusterLabelSpec) validate(_ *providers.Build, _ *plan.Item) []error {
	var errs []error
	if err := checkLabel("label", s.Label); err != nil {
		errs = append(errs, err)
	}
	if len(s.Clusters) == 0 {
		errs = append(errs, errors.New("clusters: required (names of the clusters to label)"))
	}
	return errs
}

func (s *ClusterLabelSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	var missing []string
	for _, c := range s.Clusters {
		labels, err := listAll[struct {
			ClusterLabel string `json:"clusterLabel"`
		}](ctx, e.admin, "/v1/cluster/label/"+url.PathEscape(c), nil)
		if err != nil {
			return nil, fmt.Errorf("labels of cluster %s: %w", c, err)
		}
		found := false
		for _, l := range labels {
			found = found || l.ClusterLabel == s.Label
		}
		if !found {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		if _, err := e.admin.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/cluster/label", Idempotent: true, Op: "label clusters",
			JSON: map[string]any{"clusterName": missing, "clusterLabel": s.Label}}, nil); err != nil {
			return nil, fmt.Errorf("label clusters %s with %s: %w", strings.Join(missing, ", "), s.Label, err)
		}
	}
	return state.Outputs{"label": state.Plain(s.Label)}, nil
}

// NodeLabelSpec is one edge_node_labels item.
type NodeLabelSpec struct {
	Endpoint string   `yaml:"endpoint" json:"endpoint"`
	Label    string   `yaml:"label" json:"label"`
	Cluster  string   `yaml:"cluster" json:"cluster"`
	Nodes    []string `yaml:"nodes" json:"nodes"`
}

func (s *NodeLabelSpec) endpoint() string { return s.Endpoint }
func (s *NodeLabelSpec) deps() []string   { return nil }
func (s *NodeLabelSpec) validate(_ *providers.Build, _ *plan.Item) []error {
	var errs []error
	if err := checkLabel("label", s.Label); err != nil {
		errs = append(errs, err)
	}
	if err := required("cluster", s.Cluster); err != nil {
		errs = append(errs, err)
	}
	if len(s.Nodes) == 0 {
		errs = append(errs, errors.New("nodes: required (names of the nodes to label)"))
	}
	return errs
}

func (s *NodeLabelSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	labelled, err := listAll[struct {
		NodeName string `json:"nodeName"`
	}](ctx, e.admin, "/v1/node", url.Values{"clusterName": {s.Cluster}, "nodeLabel": {s.Label}})
	if err != nil {
		return nil, fmt.Errorf("nodes labelled %s: %w", s.Label, err)
	}
	have := map[string]bool{}
	for _, n := range labelled {
		have[n.NodeName] = true
	}
	var missing []string
	for _, n := range s.Nodes {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		if _, err := e.admin.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/node/label", Idempotent: true, Op: "label nodes",
			JSON: map[string]any{"nodeName": missing, "nodeLabel": s.Label, "clusterName": s.Cluster}}, nil); err != nil {
			return nil, fmt.Errorf("label nodes %s: %w", strings.Join(missing, ", "), err)
		}
	}
	return state.Outputs{"label": state.Plain(s.Label)}, nil
}

// RepoUserSpec is one edge_repo_users item.
type RepoUserSpec struct {
	Endpoint string      `yaml:"endpoint" json:"endpoint"`
	User     string      `yaml:"user" json:"user"`
	Password plan.Secret `yaml:"password" json:"password"`
}

func (s *RepoUserSpec) endpoint() string { return s.Endpoint }
func (s *RepoUserSpec) deps() []string   { return nil }
func (s *RepoUserSpec) validate(_ *providers.Build, item *plan.Item) []error {
	if s.User == "" {
		s.User = item.Name
	}
	if err := checkPassword("password", s.Password); err != nil {
		return []error{err}
	}
	return nil
}

func (s *RepoUserSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	_, err := e.admin.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/repository/user", Op: "create repository user",
		JSON: map[string]string{"user": s.User, "password": s.Password.Reveal()}}, nil)
	if err != nil && providers.StatusOf(err) != http.StatusConflict {
		return nil, fmt.Errorf("create repository user %s: %w", s.User, err)
	}
	return state.Outputs{"user": state.Plain(s.User)}, nil
}

// ProjectSpec is one edge_repo_projects item.
type ProjectSpec struct {
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	Project  string `yaml:"project" json:"project"`
	Public   bool   `yaml:"public" json:"public"`
}

func (s *ProjectSpec) endpoint() string { return s.Endpoint }
func (s *ProjectSpec) deps() []string   { return nil }
func (s *ProjectSpec) validate(_ *providers.Build, item *plan.Item) []error {
	if s.Project == "" {
		s.Project = item.Name
	}
	return nil
}

func (s *ProjectSpec) find(ctx context.Context, c *Client) (string, error) {
	list, err := listAll[struct {
		ID   int    `json:"projectId"`
		Name string `json:"projectName"`
	}](ctx, c, "/v1/repository/project", url.Values{"projectName": {s.Project}})
	if err != nil {
		return "", err
	}
	for _, p := range list {
		if p.Name == s.Project {
			return strconv.Itoa(p.ID), nil
		}
	}
	return "", nil
}

func (s *ProjectSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	id, err := s.find(ctx, e.admin)
	if err != nil {
		return nil, fmt.Errorf("look up project %s: %w", s.Project, err)
	}
	if id == "" {
		_, err := e.admin.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/repository/project", OK: []int{200, 201}, Op: "create project",
			JSON: map[string]any{"projectName": s.Project, "public": s.Public}}, nil)
		if err != nil && providers.StatusOf(err) != http.StatusConflict {
			return nil, fmt.Errorf("create project %s: %w", s.Project, err)
		}
		if id, err = s.find(ctx, e.admin); err != nil {
			return nil, fmt.Errorf("project %s look up after creating it: %w", s.Project, err)
		}
		if id == "" {
			return nil, fmt.Errorf("project %s not found after creating it", s.Project)
		}
	}
	return state.Outputs{"project_id": state.Plain(id)}, nil
}

// RegistrySpec is one edge_registries item.
type RegistrySpec struct {
	Endpoint     string      `yaml:"endpoint" json:"endpoint"`
	RepositoryID string      `yaml:"repository_id" json:"repository_id"`
	Address      string      `yaml:"address" json:"address"`
	User         string      `yaml:"user" json:"user"`
	Password     plan.Secret `yaml:"password" json:"password"`
}

func (s *RegistrySpec) endpoint() string { return s.Endpoint }
func (s *RegistrySpec) deps() []string   { return nil }
func (s *RegistrySpec) validate(_ *providers.Build, item *plan.Item) []error {
	if s.RepositoryID == "" {
		s.RepositoryID = item.Name
	}
	var errs []error
	for _, e := range []error{required("address", s.Address), required("user", s.User), required("password", s.Password.Reveal())} {
		if e != nil {
			errs = append(errs, e)
		}
	}
	return errs
}

func (s *RegistrySpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	_, err := e.admin.do(ctx, &rest.Request{Method: http.MethodGet, Path: "/v1/repository/third/" + url.PathEscape(s.RepositoryID), Op: "GET /v1/repository/third/{id}"}, nil)
	switch {
	case err == nil:
		return state.Outputs{"repository_id": state.Plain(s.RepositoryID)}, nil
	case providers.StatusOf(err) != http.StatusNotFound:
		return nil, fmt.Errorf("look up registry %s: %w", s.RepositoryID, err)
	}
	_, err = e.admin.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/repository/third", Op: "create external registry",
		JSON: map[string]string{"repositoryId": s.RepositoryID, "address": s.Address, "user": s.User, "password": s.Password.Reveal()}}, nil)
	if err != nil && providers.StatusOf(err) != http.StatusConflict {
		return nil, fmt.Errorf("create registry %s: %w", s.RepositoryID, err)
	}
	return state.Outputs{"repository_id": state.Plain(s.RepositoryID)}, nil
}

// AppSpec is one edge_apps item.
type AppSpec struct {
	Endpoint     string `yaml:"endpoint" json:"endpoint"`
	Name         string `yaml:"name" json:"name"`
	Business     string `yaml:"business" json:"business"`
	Owner        string `yaml:"owner" json:"owner"`
	Image        string `yaml:"image" json:"image"`
	Version      string `yaml:"version" json:"version"`
	DeployType   string `yaml:"deploy_type" json:"deploy_type"`
	Ports        []int  `yaml:"ports" json:"ports"`
	RepositoryID string `yaml:"repository_id" json:"repository_id"`
	Registry     string `yaml:"registry" json:"registry"`
}

func (s *AppSpec) endpoint() string { return s.Endpoint }
func (s *AppSpec) deps() []string {
	var d []string
	for _, x := range []string{s.Business, s.Owner, s.Registry} {
		if x != "" {
			d = append(d, x)
		}
	}
	return d
}

func (s *AppSpec) validate(b *providers.Build, item *plan.Item) []error {
	var errs []error
	if s.Name == "" {
		s.Name = item.Name
	}
	if err := required("image", s.Image); err != nil {
		errs = append(errs, err)
	}
	if !hasRef(s.Version) && !versionRE.MatchString(s.Version) {
		errs = append(errs, fmt.Errorf("version: %q must have the form x.y (digits), e.g. 1.4", s.Version))
	}
	if s.DeployType != "deployment" && s.DeployType != "daemonset" {
		errs = append(errs, fmt.Errorf("deploy_type: %q must be deployment or daemonset", s.DeployType))
	}
	if len(s.Ports) == 0 {
		errs = append(errs, errors.New("ports: required (the exposed ports)"))
	}
	for i, p := range s.Ports {
		if p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("ports[%d]: %d is not a port (1-65535)", i, p))
		}
	}
	if s.Owner != "" {
		if _, _, err := userCreds(b, s.Owner); err != nil {
			errs = append(errs, fmt.Errorf("owner: %w", err))
		}
	}
	if s.Registry != "" && s.RepositoryID == "" {
		s.RepositoryID = s.Registry
	}
	return errs
}

func (s *AppSpec) apply(ctx context.Context, e *env, x *providers.Exec) (state.Outputs, error) {
	c := e.admin
	if s.Owner != "" {
		user, pw, err := userCreds(e.b, s.Owner)
		if err != nil {
			return nil, err
		}
		if c, err = clientFor(e.b, e.ep, user, pw); err != nil {
			return nil, err
		}
	}
	find := func() (string, error) {
		list, err := listAll[struct {
			ID   int    `json:"id"`
			Name string `json:"appName"`
		}](ctx, c, "/v1/app", url.Values{"appName": {s.Name}})
		if err != nil {
			return "", err
		}
		for _, a := range list {
			if a.Name == s.Name {
				return strconv.Itoa(a.ID), nil
			}
		}
		return "", nil
	}
	id, err := find()
	if err != nil {
		return nil, fmt.Errorf("look up app %s: %w", s.Name, err)
	}
	if id == "" {
		body := map[string]any{"appName": s.Name, "deployType": s.DeployType, "image": s.Image, "version": s.Version, "port": s.Ports}
		if s.RepositoryID != "" {
			body["repositoryId"] = s.RepositoryID
		}
		_, err := c.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/app", JSON: body, Op: "create app"}, nil)
		if err != nil && providers.StatusOf(err) != http.StatusConflict {
			return nil, fmt.Errorf("create app %s: %w", s.Name, err)
		}
		if id, err = find(); err != nil {
			return nil, fmt.Errorf("app %s look up after creating it: %w", s.Name, err)
		}
		if id == "" {
			return nil, fmt.Errorf("app %s not found after creating it", s.Name)
		}
	}
	return state.Outputs{"app_id": state.Plain(id)}, nil
}
