package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
)

// Token lifetimes of the platform (API-NOTES 5): a token is valid for an hour and
// can be refreshed (PUT /v1/authorization) for five hours after the login.
const (
	TokenLifetime = time.Hour
	RefreshWindow = 5 * time.Hour
)

// Client talks to one edge endpoint. It holds one rest.Client (one connection pool,
// one concurrency cap, one rate limit, one 429 pause) shared by every user that acts
// on the endpoint; each user brings its own Session (token source). Safe for
// concurrent use.
type Client struct {
	rc  *rest.Client
	red *plan.Redactor
	// users shares the system administrator's user listings among tasks.
	users userDirectory
	// noAppLookup is set once the platform answered the inferred application lookup
	// (GET /v1/app) with 404 or 405 even unfiltered: it is not served here.
	noAppLookup atomic.Bool
}

// NewClient builds the client of an endpoint. No request is sent.
func NewClient(ep *plan.Endpoint, red *plan.Redactor) (*Client, error) {
	rc, err := rest.New(rest.Config{
		Name: ep.Name, BaseURL: ep.URL, TLS: ep.TLS, Limits: ep.Limits, Timeout: ep.Timeout.D(),
		DecodeError: decodeErrorBody, Expired: expiredAnswer,
	})
	if err != nil {
		return nil, err
	}
	return &Client{rc: rc, red: red}, nil
}

// Session is the token source of one platform user: it logs in lazily
// (POST /v1/authorization), refreshes its token (PUT /v1/authorization) while the
// login is younger than the refresh window and logs in again otherwise, and renews
// after a 401. Safe for concurrent use; all requests of the user share its token.
type Session struct {
	User     string
	password plan.Secret
	auth     *rest.TokenAuth

	mu           sync.Mutex
	held         string    // the last token fetched (kept after a 401 to refresh it)
	refreshUntil time.Time // end of the refresh window of the current login
	logins       int
	refreshes    int
	// now is the clock (tests); nil means time.Now.
	now func() time.Time
}

// NewSession returns the token source of user on this client's endpoint. No request
// is sent until the first call.
func (c *Client) NewSession(user string, password plan.Secret) *Session {
	s := &Session{User: user, password: password}
	s.auth = &rest.TokenAuth{Redactor: c.red, Fetch: s.fetch,
		Apply: func(req *http.Request, token string) { req.Header.Set("Authorization", token) }}
	return s
}

// As returns a connection that acts as the session's user (nil: anonymous).
func (c *Client) As(s *Session) *Conn { return &Conn{c: c, s: s} }

// Stats returns the logins and refreshes this session made.
func (s *Session) Stats() (logins, refreshes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins, s.refreshes
}

func (s *Session) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// fetch is the TokenAuth's Fetch: refresh the token held when the login is still in
// its refresh window, log in otherwise (or when the refresh is refused).
func (s *Session) fetch(ctx context.Context, c *rest.Client) (rest.Token, error) {
	s.mu.Lock()
	held, until := s.held, s.refreshUntil
	s.mu.Unlock()
	now := s.clock()
	if held != "" && now.Before(until) {
		tok, err := s.call(ctx, c, &rest.Request{Method: http.MethodPut, Path: "/v1/authorization", NoAuth: true, Idempotent: true,
			Op: "refresh token of " + s.User, Header: http.Header{"Authorization": {held}}}, now)
		if err == nil {
			s.mu.Lock()
			s.held = tok.Value
			s.refreshes++
			s.mu.Unlock()
			return tok, nil
		}
		if ctx.Err() != nil || providers.IsRetryable(err) {
			return rest.Token{}, err
		}
		// Refused (401/422): the login is too old; log in again below.
	}
	tok, err := s.call(ctx, c, &rest.Request{Method: http.MethodPost, Path: "/v1/authorization", NoAuth: true, Idempotent: true,
		Op: "login as " + s.User, JSON: map[string]string{"user": s.User, "password": s.password.Reveal()}}, now)
	if err != nil {
		return rest.Token{}, err
	}
	s.mu.Lock()
	s.held = tok.Value
	s.refreshUntil = now.Add(RefreshWindow)
	s.logins++
	s.mu.Unlock()
	return tok, nil
}

// call sends a token request and decodes its answer. Without an expiry in the answer
// the token is taken to last the documented hour.
func (s *Session) call(ctx context.Context, c *rest.Client, r *rest.Request, now time.Time) (rest.Token, error) {
	resp, err := c.Do(ctx, r)
	if err != nil {
		return rest.Token{}, err
	}
	env := unwrap(resp.Body)
	if env.failed() {
		return rest.Token{}, envelopeError(r, resp, env)
	}
	t, err := decodeToken(env.Data, now)
	if err != nil {
		return rest.Token{}, &providers.Error{Op: r.Op, Status: resp.Status, Message: "unexpected answer", Err: err}
	}
	if t.Expiry.IsZero() {
		t.Expiry = now.Add(TokenLifetime)
	}
	return rest.Token{Value: t.Token, Expiry: t.Expiry}, nil
}

// envelopeError turns an HTTP 2xx answer whose envelope carries an error code into
// a classified error, the way rest classifies HTTP statuses.
func envelopeError(r *rest.Request, resp *rest.Response, env envelope) *providers.Error {
	code, msg := decodeErrorBody(env.Code, resp.Header, resp.Body)
	return rest.StatusError(r, env.Code, resp.Header, code, msg)
}

// Conn is a Client acting as one user (or anonymously). Its methods are the calls a
// provisioning run needs; failures are *providers.Error (or ctx.Err()).
type Conn struct {
	c *Client
	s *Session
}

// do sends r as the connection's user and returns the unwrapped payload.
func (k *Conn) do(ctx context.Context, r *rest.Request) ([]byte, int, error) {
	// The endpoint's client has no authenticator of its own: each call carries
	// its user's token source, or none.
	if k.s == nil {
		r.NoAuth = true
	} else {
		r.Auth = k.s.auth
	}
	resp, err := k.c.rc.Do(ctx, r)
	if err != nil {
		return nil, 0, err
	}
	env := unwrap(resp.Body)
	if env.failed() {
		return nil, env.Code, envelopeError(r, resp, env)
	}
	return env.Data, resp.Status, nil
}

// into decodes a payload into v (nothing for an empty payload).
func into(op string, status int, payload []byte, v any) error {
	if isNull(payload) {
		return nil
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return &providers.Error{Op: op, Status: status, Message: "unexpected answer: " + clipText(string(payload)), Err: err}
	}
	return nil
}

// pageSize is what list calls ask for; maxPages bounds a list that never ends.
const (
	pageSize = 100
	maxPages = 10_000
)

// listAll pages through a list call (page, pageSize) until it has seen every
// element: the total is reached, a page comes back empty, or a page repeats the
// previous one (a server that ignores paging).
func listAll[T any](ctx context.Context, k *Conn, op, path string, q url.Values) ([]T, error) {
	var all []T
	var prevFirst []byte
	seen := 0
	for page := 1; page <= maxPages; page++ {
		qq := url.Values{}
		for key, v := range q {
			qq[key] = v
		}
		qq.Set("page", strconv.Itoa(page))
		qq.Set("pageSize", strconv.Itoa(pageSize))
		payload, status, err := k.do(ctx, &rest.Request{Method: http.MethodGet, Path: path, Query: qq, Op: op})
		if err != nil {
			return nil, err
		}
		p, err := decodeList(payload)
		if err != nil {
			return nil, &providers.Error{Op: op, Status: status, Message: "unexpected answer: " + clipText(string(payload)), Err: err}
		}
		if len(p.Items) == 0 {
			return all, nil
		}
		if prevFirst != nil && bytes.Equal(prevFirst, p.Items[0]) {
			return all, nil
		}
		prevFirst = p.Items[0]
		for _, raw := range p.Items {
			var v T
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, &providers.Error{Op: op, Status: status, Message: "unexpected list element: " + clipText(string(raw)), Err: err}
			}
			all = append(all, v)
		}
		seen += len(p.Items)
		// Without a total, only an empty (or repeated) page ends the list: a short
		// page may just be a server that ignores pageSize.
		if p.Total >= 0 && seen >= p.Total {
			return all, nil
		}
	}
	return nil, &providers.Error{Op: op, Message: fmt.Sprintf("more than %d pages", maxPages)}
}

// User is a row of GET /v1/admin/user. Status: 0 pending, 1 approved, 2 not
// approved, 3 forbidden.
type User struct {
	ID       int
	Name     string
	Status   int
	RealName string
	Phone    string
	// IsAdmin is nil when the answer does not say.
	IsAdmin *bool
}

// UnmarshalJSON accepts the documented keys and a few spellings of them.
func (u *User) UnmarshalJSON(b []byte) error {
	var w struct {
		ID       rest.FlexInt `json:"id"`
		UserID   rest.FlexInt `json:"userId"`
		User     string       `json:"user"`
		UserName string       `json:"userName"`
		Username string       `json:"username"`
		Status   rest.FlexInt `json:"status"`
		RealName string       `json:"realName"`
		Phone    string       `json:"phone"`
		IsAdmin  *bool        `json:"isAdmin"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*u = User{ID: int(w.ID), Name: firstOf(w.User, w.UserName, w.Username), Status: int(w.Status), RealName: w.RealName, Phone: w.Phone, IsAdmin: w.IsAdmin}
	if u.ID == 0 {
		u.ID = int(w.UserID)
	}
	return nil
}

func firstOf(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// Users lists every user the connection's user may see (GET /v1/admin/user, all pages).
func (k *Conn) Users(ctx context.Context) ([]User, error) {
	return listAll[User](ctx, k, "list users", "/v1/admin/user", url.Values{"orderBy": {"id"}, "order": {"asc"}})
}

// FindUser returns the user named name, or nil.
func (k *Conn) FindUser(ctx context.Context, name string) (*User, error) {
	users, err := k.Users(ctx)
	if err != nil {
		return nil, err
	}
	for i := range users {
		if users[i].Name == name {
			return &users[i], nil
		}
	}
	return nil, nil
}

// NewUser is the body of POST /v1/user and POST /v1/admin/user.
type NewUser struct {
	User     string
	Password plan.Secret
	Phone    string
	IsAdmin  bool
	RealName string
}

func (n NewUser) body() map[string]any {
	return map[string]any{"user": n.User, "password": n.Password.Reveal(), "phone": n.Phone, "isAdmin": n.IsAdmin, "realName": n.RealName}
}

// idOf reads an id from a create answer ({id}, {userId}, {businessId}, {appId},
// {projectId} or a bare number); 0 when it has none.
func idOf(payload []byte) int {
	b := bytes.TrimSpace(payload)
	if isNull(b) {
		return 0
	}
	if b[0] != '{' {
		return flexInt(b)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return 0
	}
	for _, key := range []string{"id", "userId", "businessId", "appId", "projectId"} {
		if v := flexInt(m[key]); v > 0 {
			return v
		}
	}
	return 0
}

// Register creates a user without a token (POST /v1/user); the user is pending until
// the system administrator approves it. It returns the new id when the answer has one.
func (k *Conn) Register(ctx context.Context, n NewUser) (int, error) {
	payload, _, err := k.c.As(nil).do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/user", JSON: n.body(), Op: "register user " + n.User})
	if err != nil {
		return 0, err
	}
	return idOf(payload), nil
}

// CreateSubUser creates a user in the connection's user's business namespace
// (POST /v1/admin/user, general or system administrators only).
func (k *Conn) CreateSubUser(ctx context.Context, n NewUser) (int, error) {
	payload, _, err := k.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/admin/user", JSON: n.body(), Op: "create sub-user " + n.User})
	if err != nil {
		return 0, err
	}
	return idOf(payload), nil
}

// SetUserStatus audits a user (PUT /v1/admin/user/{id}, system administrator only).
func (k *Conn) SetUserStatus(ctx context.Context, id, status int) error {
	_, _, err := k.do(ctx, &rest.Request{Method: http.MethodPut, Path: "/v1/admin/user/" + strconv.Itoa(id), JSON: map[string]int{"status": status},
		Idempotent: true, Op: "audit user " + strconv.Itoa(id)})
	return err
}

// Business is a row of GET /v1/business. Status: 0 pending, 1 approved,
// 2 disapproved, 3 deleted.
type Business struct {
	ID      int
	Name    string
	UserID  int
	Status  int
	Comment string
}

func (b *Business) UnmarshalJSON(raw []byte) error {
	var w struct {
		ID         rest.FlexInt `json:"id"`
		BusinessID rest.FlexInt `json:"businessId"`
		Name       string       `json:"name"`
		UserID     rest.FlexInt `json:"userId"`
		Status     rest.FlexInt `json:"status"`
		Comment    string       `json:"comment"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return err
	}
	*b = Business{ID: int(w.ID), Name: w.Name, UserID: int(w.UserID), Status: int(w.Status), Comment: w.Comment}
	if b.ID == 0 {
		b.ID = int(w.BusinessID)
	}
	return nil
}

// FindBusiness returns the business named name that is not deleted, or nil
// (GET /v1/business?name=, every page; the name filter is checked exactly here).
func (k *Conn) FindBusiness(ctx context.Context, name string) (*Business, error) {
	list, err := listAll[Business](ctx, k, "list businesses", "/v1/business", url.Values{"name": {name}})
	if err != nil {
		return nil, err
	}
	var found *Business
	for i := range list {
		if list[i].Name != name || list[i].Status == 3 {
			continue
		}
		if found != nil && found.ID != list[i].ID {
			return nil, &providers.Error{Op: "list businesses", Message: fmt.Sprintf("two businesses are named %q (ids %d and %d): resolve this on the platform", name, found.ID, list[i].ID)}
		}
		found = &list[i]
	}
	return found, nil
}

// NewBusiness is the body of POST /v1/business.
type NewBusiness struct {
	Name, Introduce, Objective, Scale string
}

// CreateBusiness creates the connection's user's business namespace (general
// administrators without a business only). It returns the id when the answer has one.
func (k *Conn) CreateBusiness(ctx context.Context, n NewBusiness) (int, error) {
	payload, _, err := k.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/business", Op: "create business " + n.Name,
		JSON: map[string]string{"name": n.Name, "introduce": n.Introduce, "objective": n.Objective, "scale": n.Scale}})
	if err != nil {
		return 0, err
	}
	return idOf(payload), nil
}

// AuditBusiness sets a business's status (1 approved, 2 disapproved) with a comment
// (PUT /v1/business/id/{id}, system administrator only). Approval creates namespace
// ns<id> in every cluster.
func (k *Conn) AuditBusiness(ctx context.Context, id, status int, comment string) error {
	_, _, err := k.do(ctx, &rest.Request{Method: http.MethodPut, Path: "/v1/business/id/" + strconv.Itoa(id), Idempotent: true,
		Op: "audit business " + strconv.Itoa(id), JSON: map[string]any{"id": strconv.Itoa(id), "status": status, "comment": comment}})
	return err
}

// labelName reads a label element: a bare string or an object with clusterLabel,
// nodeLabel, label or name.
type labelName string

func (l *labelName) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*l = labelName(s)
		return nil
	}
	var w struct {
		ClusterLabel string `json:"clusterLabel"`
		NodeLabel    string `json:"nodeLabel"`
		Label        string `json:"label"`
		Name         string `json:"name"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*l = labelName(firstOf(w.ClusterLabel, w.NodeLabel, w.Label, w.Name))
	return nil
}

// ClusterLabels returns the labels of a cluster (GET /v1/cluster/label/{cluster}).
func (k *Conn) ClusterLabels(ctx context.Context, cluster string) ([]string, error) {
	l, err := listAll[labelName](ctx, k, "labels of cluster "+cluster, "/v1/cluster/label/"+url.PathEscape(cluster), nil)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = string(v)
	}
	return out, nil
}

// LabelClusters adds label to clusters (POST /v1/cluster/label). Labelling a
// cluster twice changes nothing, so the call may be repeated.
func (k *Conn) LabelClusters(ctx context.Context, label string, clusters []string) error {
	_, _, err := k.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/cluster/label", Idempotent: true, Op: "label clusters with " + label,
		JSON: map[string]any{"clusterName": clusters, "clusterLabel": label}})
	return err
}

// Node is a row of GET /v1/node.
type Node struct {
	Name    string `json:"nodeName"`
	Cluster string `json:"clusterName"`
	IsReady bool   `json:"isReady"`
}

// Nodes lists the nodes of a cluster that carry label ("" for all).
func (k *Conn) Nodes(ctx context.Context, cluster, label string) ([]Node, error) {
	q := url.Values{"clusterName": {cluster}}
	if label != "" {
		q.Set("nodeLabel", label)
	}
	return listAll[Node](ctx, k, "nodes of cluster "+cluster, "/v1/node", q)
}

// LabelNodes adds label to nodes of one cluster (POST /v1/node/label); repeatable.
func (k *Conn) LabelNodes(ctx context.Context, cluster, label string, nodes []string) error {
	_, _, err := k.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/node/label", Idempotent: true, Op: "label nodes with " + label,
		JSON: map[string]any{"nodeName": nodes, "nodeLabel": label, "clusterName": cluster}})
	return err
}

// CreateRepoUser creates a user of the image repository (POST /v1/repository/user).
// existed is true when the answer was 409 (the name is taken). A repeat is answered
// 409, so the call may be retried.
func (k *Conn) CreateRepoUser(ctx context.Context, user string, password plan.Secret) (existed bool, err error) {
	_, _, err = k.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/repository/user", Idempotent: true, Op: "create repository user " + user,
		JSON: map[string]string{"user": user, "password": password.Reveal()}})
	if providers.StatusOf(err) == http.StatusConflict {
		return true, nil
	}
	return false, err
}

// Project is a row of GET /v1/repository/project.
type Project struct {
	ID     int
	Name   string
	Public bool
}

func (p *Project) UnmarshalJSON(b []byte) error {
	var w struct {
		ProjectID   rest.FlexInt `json:"projectId"`
		ID          rest.FlexInt `json:"id"`
		ProjectName string       `json:"projectName"`
		Name        string       `json:"name"`
		Public      flexBool     `json:"public"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = Project{ID: int(w.ProjectID), Name: firstOf(w.ProjectName, w.Name), Public: bool(w.Public)}
	if p.ID == 0 {
		p.ID = int(w.ID)
	}
	return nil
}

// flexBool reads true/false, "true"/"false" (Harbor metadata) or 1/0.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch string(bytes.Trim(bytes.TrimSpace(b), `"`)) {
	case "true", "1":
		*f = true
	default:
		*f = false
	}
	return nil
}

// FindProject returns the repository project named name, or nil.
func (k *Conn) FindProject(ctx context.Context, name string) (*Project, error) {
	list, err := listAll[Project](ctx, k, "list repository projects", "/v1/repository/project", url.Values{"projectName": {name}})
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].Name == name {
			return &list[i], nil
		}
	}
	return nil, nil
}

// CreateProject creates a repository project (POST /v1/repository/project, 201).
// existed is true when the answer was 409. Repeatable.
func (k *Conn) CreateProject(ctx context.Context, name string, public bool) (existed bool, err error) {
	_, _, err = k.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/repository/project", Idempotent: true, Op: "create repository project " + name,
		JSON: map[string]any{"projectName": name, "public": public}})
	if providers.StatusOf(err) == http.StatusConflict {
		return true, nil
	}
	return false, err
}

// Registry is an external registry record (its password is never read back).
type Registry struct {
	ID      string `json:"repositoryId"`
	Address string `json:"address"`
	User    string `json:"user"`
}

// GetRegistry returns an external registry, or nil when the answer is 404.
func (k *Conn) GetRegistry(ctx context.Context, id string) (*Registry, error) {
	payload, status, err := k.do(ctx, &rest.Request{Method: http.MethodGet, Path: "/v1/repository/third/" + url.PathEscape(id), Op: "get external registry " + id})
	if providers.StatusOf(err) == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Registry
	if err := into("get external registry "+id, status, payload, &r); err != nil {
		return nil, err
	}
	if r.ID == "" && r.Address == "" {
		// An empty record is no record (some servers answer 200 with null data).
		return nil, nil
	}
	if r.ID == "" {
		r.ID = id
	}
	return &r, nil
}

// CreateRegistry creates an external registry record (POST /v1/repository/third).
// existed is true when the answer was 409 (inference: the seed documents no
// duplicate answer for this call).
func (k *Conn) CreateRegistry(ctx context.Context, r Registry, password plan.Secret) (existed bool, err error) {
	_, _, err = k.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/repository/third", Op: "create external registry " + r.ID,
		JSON: map[string]string{"repositoryId": r.ID, "address": r.Address, "user": r.User, "password": password.Reveal()}})
	if providers.StatusOf(err) == http.StatusConflict {
		return true, nil
	}
	return false, err
}

// App is a row of GET /v1/app (inference: the seed's application list is cut off).
type App struct {
	ID           int
	Name         string
	Image        string
	Version      string
	DeployType   string
	RepositoryID string
	Ports        []int
	Namespace    string
}

func (a *App) UnmarshalJSON(b []byte) error {
	var w struct {
		ID           rest.FlexInt   `json:"id"`
		AppID        rest.FlexInt   `json:"appId"`
		AppName      string         `json:"appName"`
		Name         string         `json:"name"`
		Image        string         `json:"image"`
		Version      string         `json:"version"`
		DeployType   string         `json:"deployType"`
		RepositoryID string         `json:"repositoryId"`
		Port         []rest.FlexInt `json:"port"`
		Namespace    string         `json:"namespace"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*a = App{ID: int(w.ID), Name: firstOf(w.AppName, w.Name), Image: w.Image, Version: w.Version, DeployType: w.DeployType, RepositoryID: w.RepositoryID, Namespace: w.Namespace}
	if a.ID == 0 {
		a.ID = int(w.AppID)
	}
	for _, p := range w.Port {
		a.Ports = append(a.Ports, int(p))
	}
	return nil
}

// ErrNoAppLookup means the platform does not serve the application lookup this
// client infers (GET /v1/app answers 404 or 405 even without a filter): whether an
// application exists cannot be read.
var ErrNoAppLookup = errors.New("the platform serves no application lookup (GET /v1/app answers 404 or 405; the call is an inference: the seed's application list is cut off)")

// lookupMissing: the answer of a route that is not served (404 Not Found, 405 Method
// Not Allowed).
func lookupMissing(err error) bool {
	st := providers.StatusOf(err)
	return st == http.StatusNotFound || st == http.StatusMethodNotAllowed
}

// FindApp returns the application named name that the connection's user sees, or
// nil (GET /v1/app?appName=, every page). A 404 to the filtered list is checked
// with one unfiltered page: if that is served, 404 meant "no match"; if it answers
// 404 or 405 too (or the filtered list answered 405), the error is ErrNoAppLookup,
// remembered for the client's later lookups.
func (k *Conn) FindApp(ctx context.Context, name string) (*App, error) {
	if k.c.noAppLookup.Load() {
		return nil, ErrNoAppLookup
	}
	list, err := listAll[App](ctx, k, "list applications", "/v1/app", url.Values{"appName": {name}})
	if lookupMissing(err) {
		if providers.StatusOf(err) == http.StatusNotFound {
			_, _, perr := k.do(ctx, &rest.Request{Method: http.MethodGet, Path: "/v1/app", Query: url.Values{"page": {"1"}, "pageSize": {"1"}}, Op: "list applications"})
			if perr == nil {
				return nil, nil
			}
			if !lookupMissing(perr) {
				return nil, perr
			}
		}
		k.c.noAppLookup.Store(true)
		return nil, ErrNoAppLookup
	}
	if err != nil {
		return nil, err
	}
	var found *App
	for i := range list {
		if list[i].Name != name {
			continue
		}
		if found != nil {
			return nil, &providers.Error{Op: "list applications", Message: fmt.Sprintf("two applications are named %q (ids %d and %d): resolve this on the platform", name, found.ID, list[i].ID)}
		}
		found = &list[i]
	}
	return found, nil
}

// GetApp returns the application with id (GET /v1/app/{id}, an inference like the
// list call), or nil when the answer is 404 while the list call is served. When the
// platform serves no application lookup, a 404 or 405 is ErrNoAppLookup: it cannot
// tell a missing application from a missing route.
func (k *Conn) GetApp(ctx context.Context, id string) (*App, error) {
	op := "get application " + id
	payload, status, err := k.do(ctx, &rest.Request{Method: http.MethodGet, Path: "/v1/app/" + url.PathEscape(id), Op: op})
	if lookupMissing(err) && (k.c.noAppLookup.Load() || providers.StatusOf(err) == http.StatusMethodNotAllowed) {
		return nil, ErrNoAppLookup
	}
	if providers.StatusOf(err) == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var a App
	if err := into(op, status, payload, &a); err != nil {
		return nil, err
	}
	if a.ID == 0 && a.Name == "" {
		return nil, nil
	}
	return &a, nil
}

// EnvVar is one environment variable of an application.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// NewApp is the body of POST /v1/app. The seed lists appName, deployType, image,
// version, repositoryId, port and command before it is cut off; args, env and
// description follow the Kubernetes container fields (inference).
type NewApp struct {
	AppName      string   `json:"appName"`
	DeployType   string   `json:"deployType"`
	Image        string   `json:"image"`
	Version      string   `json:"version"`
	RepositoryID string   `json:"repositoryId,omitempty"`
	Port         []int    `json:"port"`
	Command      []string `json:"command,omitempty"`
	Args         []string `json:"args,omitempty"`
	Env          []EnvVar `json:"env,omitempty"`
	Description  string   `json:"description,omitempty"`
}

// CreateApp creates an application as the connection's user (POST /v1/app). Not
// idempotent: the platform is not known to refuse a second application of the same
// name, so a caller must look it up before a repeat. Returns the id when the answer
// has one.
func (k *Conn) CreateApp(ctx context.Context, a NewApp) (int, error) {
	payload, _, err := k.do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/app", JSON: a, Op: "create application " + a.AppName})
	if err != nil {
		return 0, err
	}
	return idOf(payload), nil
}

// Whoami is GET /v1/authorization: the user's name and role (0 waiting for approval,
// 1 approved without a business, 2 general user, 3 business administrator,
// 4 system administrator).
type Whoami struct {
	DisplayName string       `json:"displayName"`
	Role        rest.FlexInt `json:"role"`
}

// Whoami returns the connection's user's authorization information.
func (k *Conn) Whoami(ctx context.Context) (Whoami, error) {
	payload, status, err := k.do(ctx, &rest.Request{Method: http.MethodGet, Path: "/v1/authorization", Op: "authorization information"})
	if err != nil {
		return Whoami{}, err
	}
	var w Whoami
	err = into("authorization information", status, payload, &w)
	return w, err
}
