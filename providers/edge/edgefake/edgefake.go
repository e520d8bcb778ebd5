// Package edgefake is an in-memory fake of the edge platform "Video Security
// Monitoring R3" open API (served under /v1), for tests and the sandbox.
//
// It follows the seed (edge-vsm-r3-api.txt) and API-NOTES section 5:
//   - POST /v1/authorization logs in; tokens are JWT-like opaque strings valid for
//     Options.TokenLifetime (default 1 h) and refreshable with PUT /v1/authorization
//     (current token in the Authorization header, raw or "Bearer ") until five
//     lifetimes after the login; a missing, unknown or expired token gets 401.
//   - Users: the system administrator "admin" (Options.AdminPassword) is seeded;
//     POST /v1/user registers a pending user (status 0) without a token; a second
//     user of the same name gets 422 {code:422, msg:"user already exists"}; only the
//     system administrator audits (PUT /v1/admin/user/{id}, statuses 0-3); general
//     administrators with an approved business and the system administrator create
//     sub-users (POST /v1/admin/user, approved at once, in the creator's business).
//   - Businesses: only an approved general administrator without a business creates
//     one (pending); only the system administrator audits it; approval creates
//     namespace ns<id> in every cluster. Business names are not unique (the seed does
//     not say they are): Check reports duplicates.
//   - Clusters and nodes come from Options.Clusters; cluster and node labels are sets.
//   - Repository (Harbor): users and projects answer 409 on duplicates, projects are
//     created with 201, project name filters match substrings (like Harbor); external
//     registries are unique by repositoryId (409, inference).
//   - Applications: POST /v1/app validates the seed's fields; names are not unique
//     (nothing in the seed says so), so a client must look up before a repeat;
//     GET /v1/app?appName= (substring match) is the inferred lookup.
//   - Validation failures answer 422 (400 for the repository's Harbor calls), role
//     failures 403, unknown objects 404, non-JSON bodies 415.
//
// Options.Faults.RateLimit is a server-side token bucket: over it a call gets 429
// with Retry-After and {code: 429, msg} (inference: the seed documents no limit).
//
// Successful answers are plain JSON, or {code, msg, data} when Options.Envelope is
// set; errors are always {code, msg}. Options.ErrorsAsOK answers errors with HTTP 200
// and the status in the envelope's code, as some Beego builds do (inference).
//
// A Server is safe for concurrent use. Every request goes through Faults.
package edgefake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"provision/providers/fault"
)

// Options configure a fake.
type Options struct {
	// AdminPassword is the password of the built-in system administrator "admin".
	AdminPassword string
	// Clusters maps cluster names to their node names; nil means DemoClusters().
	Clusters map[string][]string
	// TokenLifetime is how long a token is valid (default 1 h); a login can be
	// refreshed for five lifetimes.
	TokenLifetime time.Duration
	// Envelope wraps every successful answer in {code, msg, data}.
	Envelope bool
	// ErrorsAsOK answers errors with HTTP 200 (the status stays in the body's code).
	ErrorsAsOK bool
	// AppLookup is the status of GET /v1/app and GET /v1/app/{id}: 0 serves them;
	// 404 or 405 plays a platform without these inferred calls.
	AppLookup int
	// AppNoMatch404 answers 404 to a filtered application list that matches nothing
	// (as some list calls do; inference).
	AppNoMatch404 bool
	// Faults switched on from the start.
	Faults fault.Config
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// AdminName is the built-in system administrator.
const AdminName = "admin"

// DemoClusters are the clusters and nodes examples/plans/edge.yaml labels; the
// sandbox seeds them.
func DemoClusters() map[string][]string {
	return map[string][]string{
		"cluster-a": {"edge-a1", "edge-a2", "edge-a3"},
		"cluster-b": {"edge-b1", "edge-b2"},
	}
}

// User statuses.
const (
	Pending     = 0
	Approved    = 1
	NotApproved = 2
	Forbidden   = 3
)

// User is a platform user (the password is never exported).
type User struct {
	ID       int    `json:"id"`
	Name     string `json:"user"`
	Phone    string `json:"phone"`
	RealName string `json:"realName"`
	IsAdmin  bool   `json:"isAdmin"`
	Status   int    `json:"status"`
	// Business is the id of the business namespace the user belongs to (0: none).
	Business int `json:"businessId,omitempty"`
	// Parent is the id of the administrator that created this sub-user (0: none).
	Parent     int   `json:"parentId,omitempty"`
	CreateTime int64 `json:"createTime"`
	UpdateTime int64 `json:"updateTime"`
	password   string
}

// Business is a business namespace. Status: 0 pending, 1 approved, 2 disapproved,
// 3 deleted.
type Business struct {
	ID         int    `json:"id"`
	Name       string `json:"name"`
	UserID     int    `json:"userId"`
	Introduce  string `json:"introduce"`
	Objective  string `json:"objective"`
	Scale      string `json:"scale"`
	Status     int    `json:"status"`
	Comment    string `json:"comment"`
	CreateTime int64  `json:"createTime"`
}

// Cluster is an edge cluster with its labels, namespaces and nodes.
type Cluster struct {
	Name       string
	Labels     []string
	Namespaces []string
	Nodes      []Node
}

// Node is a node of a cluster with its labels.
type Node struct {
	Name   string
	Labels []string
}

// Project is a repository project.
type Project struct {
	ID         int    `json:"projectId"`
	Name       string `json:"projectName"`
	Public     bool   `json:"public"`
	Owner      int    `json:"ownerId"`
	ImageCount int    `json:"imageCount"`
	CreateTime string `json:"createTime"`
}

// Registry is an external registry record (the password is never exported).
type Registry struct {
	ID      string `json:"repositoryId"`
	Address string `json:"address"`
	User    string `json:"user"`
	// Owner is the id of the user that created it (for tests; not in any answer).
	Owner    int `json:"-"`
	password string
}

// EnvVar is an application environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// App is an application.
type App struct {
	ID           int      `json:"id"`
	Name         string   `json:"appName"`
	Namespace    string   `json:"namespace"`
	Owner        int      `json:"userId"`
	DeployType   string   `json:"deployType"`
	Image        string   `json:"image"`
	Version      string   `json:"version"`
	RepositoryID string   `json:"repositoryId"`
	Port         []int    `json:"port"`
	Command      []string `json:"command,omitempty"`
	Args         []string `json:"args,omitempty"`
	Env          []EnvVar `json:"env,omitempty"`
	Description  string   `json:"description,omitempty"`
	CreateTime   int64    `json:"createTime"`
}

// Counters count what the fake was asked to do (creates and state changes).
type Counters struct {
	UsersRegistered    int // POST /v1/user that created a user
	SubUsersCreated    int // POST /v1/admin/user that created a user
	UserAudits         int // PUT /v1/admin/user/{id} that changed a status
	BusinessesCreated  int
	BusinessAudits     int // PUT /v1/business/id/{id} that changed a status
	NamespacesCreated  int // per cluster
	ClusterLabelsAdded int // per cluster and label
	NodeLabelsAdded    int // per node and label
	RepoUsersCreated   int
	ProjectsCreated    int
	RegistriesCreated  int
	AppsCreated        int
	Logins             int
	Refreshes          int
}

// Server is the fake. ServeHTTP goes through Faults.
type Server struct {
	Faults *fault.Injector
	opts   Options
	h      http.Handler

	mu         sync.Mutex
	nextID     int
	users      []*User
	businesses []*Business
	clusters   map[string]*cluster
	repoUsers  map[string]string // name -> password
	projects   []*Project
	registries []*Registry
	apps       []*App
	tokens     map[string]*session
	counters   Counters
}

type cluster struct {
	labels     map[string]bool
	namespaces []string
	nodes      []string
	nodeLabels map[string]map[string]bool
}

type session struct {
	user         int
	expiry       time.Time
	refreshUntil time.Time
}

// New returns a fake with the system administrator and the clusters seeded.
func New(o Options) *Server {
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = time.Hour
	}
	if o.Clusters == nil {
		o.Clusters = DemoClusters()
	}
	if o.ErrorsAsOK {
		o.Envelope = true
	}
	s := &Server{Faults: fault.New(o.Faults), opts: o, nextID: 1, clusters: map[string]*cluster{},
		repoUsers: map[string]string{}, tokens: map[string]*session{}}
	s.Faults.SetThrottle(s.throttled)
	for name, nodes := range o.Clusters {
		s.clusters[name] = &cluster{labels: map[string]bool{}, nodes: append([]string(nil), nodes...), nodeLabels: map[string]map[string]bool{}}
	}
	now := s.now().Unix()
	s.users = append(s.users, &User{ID: s.id(), Name: AdminName, password: o.AdminPassword, IsAdmin: true, Status: Approved,
		RealName: "System administrator", Phone: "-", CreateTime: now, UpdateTime: now})
	m := http.NewServeMux()
	// Seed "Login"; token lifetime and refresh window: ote-stack open-api.yml.tpl via API-NOTES 5/6.
	m.HandleFunc("POST /v1/authorization", s.login)
	// Seed "Update Token" (current token in the Authorization header).
	m.HandleFunc("PUT /v1/authorization", s.refresh)
	// Seed "Get Authorization Information".
	m.HandleFunc("GET /v1/authorization", s.authed(s.whoami))
	// Seed "Logout".
	m.HandleFunc("DELETE /v1/authorization", s.authed(s.logout))
	// Seed "Create User" (no token; pending until approved); the 422 for a taken name: inference.
	m.HandleFunc("POST /v1/user", s.register)
	// Seed "Update Password".
	m.HandleFunc("PUT /v1/user", s.authed(s.changePassword))
	// Seed "Get User List" (paged: page, pageSize, orderBy, order).
	m.HandleFunc("GET /v1/admin/user", s.authed(s.listUsers))
	// Seed "Create Sub-User"; approved at once in the creator's business: inference.
	m.HandleFunc("POST /v1/admin/user", s.authed(s.createSubUser))
	// Seed "Audit User" (system administrator only).
	m.HandleFunc("PUT /v1/admin/user/{id}", s.authed(s.auditUser))
	// Seed "Delete User".
	m.HandleFunc("DELETE /v1/admin/user/{id}", s.authed(s.deleteUser))
	// Seed "Create Business" (an administrator without a business).
	m.HandleFunc("POST /v1/business", s.authed(s.createBusiness))
	// Seed "Get Business List" (name filter).
	m.HandleFunc("GET /v1/business", s.authed(s.listBusinesses))
	// Seed "Get Business".
	m.HandleFunc("GET /v1/business/id/{id}", s.authed(s.getBusiness))
	// Seed "Audit Business" (namespace ns<id> in every cluster).
	m.HandleFunc("PUT /v1/business/id/{id}", s.authed(s.auditBusiness))
	// Seed "Get Cluster List".
	m.HandleFunc("GET /v1/cluster", s.authed(s.listClusters))
	// Seed "Get Label List" (cluster labels).
	m.HandleFunc("GET /v1/cluster/label", s.authed(s.allClusterLabels))
	// Seed "Add Label to Cluster".
	m.HandleFunc("POST /v1/cluster/label", s.authed(s.labelClusters))
	// Seed "Delete Label" (cluster).
	m.HandleFunc("DELETE /v1/cluster/label", s.authed(s.unlabelClusters))
	// Seed "Get Label" (labels of one cluster).
	m.HandleFunc("GET /v1/cluster/label/{cluster}", s.authed(s.clusterLabels))
	// Seed "Get Node List".
	m.HandleFunc("GET /v1/node", s.authed(s.listNodes))
	// Seed "Get Label List" (node labels).
	m.HandleFunc("GET /v1/node/label", s.authed(s.allNodeLabels))
	// Seed "Add Label to Node".
	m.HandleFunc("POST /v1/node/label", s.authed(s.labelNodes))
	// Seed "Delete Label" (node).
	m.HandleFunc("DELETE /v1/node/label", s.authed(s.unlabelNodes))
	// Seed "Create User" under Repository Management (409 username conflict).
	m.HandleFunc("POST /v1/repository/user", s.authed(s.createRepoUser))
	// Seed "Get Projects of Repository" (projectName filter).
	m.HandleFunc("GET /v1/repository/project", s.authed(s.listProjects))
	// Seed "Create Project" (201; 409 name exists).
	m.HandleFunc("POST /v1/repository/project", s.authed(s.createProject))
	m.HandleFunc("DELETE /v1/repository/project", s.authed(s.deleteProjects)) // seed edge-vsm-r3-api "Delete Project"
	// Seed "Create External Repository"; 409 for a taken repositoryId and one global
	// namespace of records (not per business): inference.
	m.HandleFunc("POST /v1/repository/third", s.authed(s.createRegistry))
	// Seed "Get External Repository List".
	m.HandleFunc("GET /v1/repository/third", s.authed(s.listRegistries))
	// Seed "Get External Repository" (404 not found).
	m.HandleFunc("GET /v1/repository/third/{id}", s.authed(s.getRegistry))
	// Seed "Delete External Repository".
	m.HandleFunc("DELETE /v1/repository/third", s.authed(s.deleteRegistries))
	// Seed "Create Application" (cut off after command: args, env, description and
	// the answer's id are inference).
	m.HandleFunc("POST /v1/app", s.authed(s.createApp))
	// inference: the application list and its appName filter are not in the seed
	// (Options.AppLookup plays a platform without them).
	m.HandleFunc("GET /v1/app", s.authed(s.listApps))
	// inference, like the list.
	m.HandleFunc("GET /v1/app/{id}", s.authed(s.getApp))
	// inference (used by tests and the lifecycle's destroy only).
	m.HandleFunc("DELETE /v1/app/{id}", s.authed(s.deleteApp))
	// inference: Beego answers unknown routes 404.
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, http.StatusNotFound, "no such API: "+r.Method+" "+r.URL.Path)
	})
	s.h = s.Faults.Wrap(m)
	return s
}

// throttled is the rate limit's 429: {code, msg} like the fake's other errors, with
// Retry-After (inference: the seed documents no rate limit).
func (s *Server) throttled(w http.ResponseWriter, _ *http.Request, retryAfter time.Duration) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": http.StatusTooManyRequests, "msg": fmt.Sprintf("too many requests, retry in %d second(s)", int(retryAfter/time.Second))})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

func (s *Server) id() int { s.nextID++; return s.nextID - 1 }

// SetAdminPassword changes the system administrator's password.
func (s *Server) SetAdminPassword(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[0].password = p
}

// SeedUser adds a user as if it had registered (and been audited to status), for
// tests that start from an existing platform. It returns the user's id.
func (s *Server) SeedUser(name, password string, isAdmin bool, status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Unix()
	u := &User{ID: s.id(), Name: name, password: password, IsAdmin: isAdmin, Status: status, Phone: "+0", RealName: name, CreateTime: now, UpdateTime: now}
	s.users = append(s.users, u)
	return u.ID
}

// SeedBusiness adds a business owned by the user named owner, with a status (an
// approved one gets its namespaces). It returns the business id, 0 if owner is unknown.
func (s *Server) SeedBusiness(name, owner string, status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByName(owner)
	if u == nil {
		return 0
	}
	b := &Business{ID: s.id(), Name: name, UserID: u.ID, Introduce: "seeded", Objective: "seeded", Scale: "small", Status: Pending, CreateTime: s.now().Unix()}
	s.businesses = append(s.businesses, b)
	if status == Approved {
		s.approveBusiness(b)
	}
	b.Status = status
	return b.ID
}

// --- answers ---------------------------------------------------------------------

func (s *Server) reply(w http.ResponseWriter, status int, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if s.opts.Envelope {
		msg := "success"
		if status == http.StatusCreated {
			msg = "created"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"code": status, "msg": msg, "data": data})
		return
	}
	if data == nil {
		return
	}
	_ = json.NewEncoder(w).Encode(data)
}

func (s *Server) fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if s.opts.ErrorsAsOK {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(status)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"code": status, "msg": msg})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, items any, n, defaultSize int) {
	lo, hi := page(r, n, defaultSize)
	v := sliceOf(items, lo, hi)
	s.reply(w, http.StatusOK, map[string]any{"total": n, "list": v})
}

// sliceOf slices a typed slice held in an any.
func sliceOf(items any, lo, hi int) any {
	switch l := items.(type) {
	case []User:
		return l[lo:hi]
	case []Business:
		return l[lo:hi]
	case []Project:
		return l[lo:hi]
	case []Registry:
		return l[lo:hi]
	case []App:
		return l[lo:hi]
	case []map[string]any:
		return l[lo:hi]
	}
	return items
}

// page reads page and pageSize (pageSize 0: everything).
func page(r *http.Request, n, defaultSize int) (int, int) {
	q := r.URL.Query()
	p, err := strconv.Atoi(q.Get("page"))
	if err != nil || p < 1 {
		p = 1
	}
	ps, err := strconv.Atoi(q.Get("pageSize"))
	if err != nil || ps < 0 {
		ps = defaultSize
	}
	if ps == 0 {
		return 0, n
	}
	lo := (p - 1) * ps
	if lo > n || lo < 0 {
		lo = n
	}
	return lo, min(n, lo+ps)
}

// decode reads a JSON body: 415 for another media type, 400 for broken JSON.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		s.fail(w, http.StatusUnsupportedMediaType, `The Media Type of the request is not supported, it has to be "application/json"`)
		return false
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(v); err != nil {
		s.fail(w, http.StatusBadRequest, "invalid JSON body")
		return false
	}
	return true
}

// --- auth ------------------------------------------------------------------------

func newToken() string {
	a := make([]byte, 24)
	b := make([]byte, 32)
	_, _ = rand.Read(a)
	_, _ = rand.Read(b)
	enc := base64.RawURLEncoding
	return "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + enc.EncodeToString(a) + "." + enc.EncodeToString(b)
}

func bearer(r *http.Request) string {
	v := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return v
}

func (s *Server) issue(userID int, refreshUntil time.Time) string {
	now := s.now()
	if len(s.tokens) > 10_000 {
		for t, ss := range s.tokens {
			if now.After(ss.refreshUntil) {
				delete(s.tokens, t)
			}
		}
	}
	t := newToken()
	s.tokens[t] = &session{user: userID, expiry: now.Add(s.opts.TokenLifetime), refreshUntil: refreshUntil}
	return t
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if req.User == "" || req.Password == "" {
		s.fail(w, http.StatusUnprocessableEntity, "user and password are required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByName(req.User)
	if u == nil || u.password != req.Password {
		s.fail(w, http.StatusUnprocessableEntity, "wrong user name or password")
		return
	}
	if u.Status == Forbidden {
		s.fail(w, http.StatusForbidden, "user is forbidden")
		return
	}
	t := s.issue(u.ID, s.now().Add(5*s.opts.TokenLifetime))
	s.counters.Logins++
	s.reply(w, http.StatusOK, map[string]any{"token": t})
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.tokens[bearer(r)]
	if !ok || !s.now().Before(old.refreshUntil) {
		s.fail(w, http.StatusUnauthorized, "token cannot be refreshed, log in again")
		return
	}
	u := s.userByID(old.user)
	if u == nil || u.Status == Forbidden {
		s.fail(w, http.StatusUnauthorized, "User need to log in first.")
		return
	}
	t := s.issue(old.user, old.refreshUntil)
	s.counters.Refreshes++
	s.reply(w, http.StatusOK, map[string]any{"token": t})
}

type handler func(w http.ResponseWriter, r *http.Request, u *User)

// authed resolves the token's user and runs h under the server's lock.
func (s *Server) authed(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		tok := bearer(r)
		ss, ok := s.tokens[tok]
		if tok == "" || !ok {
			s.fail(w, http.StatusUnauthorized, "User need to log in first.")
			return
		}
		if !s.now().Before(ss.expiry) {
			s.fail(w, http.StatusUnauthorized, "token expired")
			return
		}
		u := s.userByID(ss.user)
		if u == nil || u.Status == Forbidden {
			s.fail(w, http.StatusUnauthorized, "User need to log in first.")
			return
		}
		h(w, r, u)
	}
}

func (s *Server) userByID(id int) *User {
	u, _ := fault.Find(s.users, func(u *User) bool { return u.ID == id })
	return u
}

func (s *Server) userByName(name string) *User {
	for _, u := range s.users {
		if u.Name == name {
			return u
		}
	}
	return nil
}

func isSysadmin(u *User) bool { return u.ID == 1 }

func (s *Server) businessByID(id int) *Business {
	for _, b := range s.businesses {
		if b.ID == id {
			return b
		}
	}
	return nil
}

// approvedBusiness returns the approved business the user belongs to, or nil.
func (s *Server) approvedBusiness(u *User) *Business {
	if u.Business == 0 {
		return nil
	}
	if b := s.businessByID(u.Business); b != nil && b.Status == Approved {
		return b
	}
	return nil
}

// role follows GET /v1/authorization: 0 waiting for approval, 1 approved without a
// business, 2 general user, 3 business administrator, 4 system administrator.
func (s *Server) role(u *User) int {
	switch {
	case isSysadmin(u):
		return 4
	case u.Status != Approved:
		return 0
	case s.approvedBusiness(u) == nil:
		return 1
	case u.IsAdmin:
		return 3
	}
	return 2
}

func (s *Server) whoami(w http.ResponseWriter, _ *http.Request, u *User) {
	_, hasRepo := s.repoUsers[u.Name]
	s.reply(w, http.StatusOK, map[string]any{"displayName": u.Name, "role": s.role(u), "hasRepoAccount": hasRepo,
		"privateProject": true, "enableIngress": false, "enableAlert": false, "enableAdminAutoDeploy": true})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ *User) {
	delete(s.tokens, bearer(r))
	s.reply(w, http.StatusOK, nil)
}

// --- users -----------------------------------------------------------------------

// ValidPassword is the platform's rule: 8-20 characters with at least one upper-case
// letter, one lower-case letter and one digit.
func ValidPassword(p string) bool {
	n := len([]rune(p))
	return n >= 8 && n <= 20 && strings.ContainsAny(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
		strings.ContainsAny(p, "abcdefghijklmnopqrstuvwxyz") && strings.ContainsAny(p, "0123456789")
}

const passwordRule = "Password should be 8-20 characters long with at least 1 uppercase, 1 lowercase and 1 number."

type newUser struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Phone    string `json:"phone"`
	IsAdmin  *bool  `json:"isAdmin"`
	RealName string `json:"realName"`
}

// addUser validates and creates a user; the caller holds the lock.
func (s *Server) addUser(w http.ResponseWriter, req newUser, status, parent, business int) *User {
	var missing []string
	for _, f := range []struct{ name, v string }{{"user", req.User}, {"phone", req.Phone}, {"realName", req.RealName}} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if req.IsAdmin == nil {
		missing = append(missing, "isAdmin")
	}
	if len(missing) > 0 {
		s.fail(w, http.StatusUnprocessableEntity, "missing parameters: "+strings.Join(missing, ", "))
		return nil
	}
	if !ValidPassword(req.Password) {
		s.fail(w, http.StatusUnprocessableEntity, passwordRule)
		return nil
	}
	if s.userByName(req.User) != nil {
		s.fail(w, http.StatusUnprocessableEntity, "user already exists")
		return nil
	}
	now := s.now().Unix()
	u := &User{ID: s.id(), Name: req.User, password: req.Password, Phone: req.Phone, RealName: req.RealName, IsAdmin: *req.IsAdmin,
		Status: status, Parent: parent, Business: business, CreateTime: now, UpdateTime: now}
	s.users = append(s.users, u)
	return u
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req newUser
	if !s.decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.addUser(w, req, Pending, 0, 0); u != nil {
		s.counters.UsersRegistered++
		s.reply(w, http.StatusOK, map[string]any{"id": u.ID})
	}
}

func (s *Server) createSubUser(w http.ResponseWriter, r *http.Request, u *User) {
	var business int
	if !isSysadmin(u) {
		b := s.approvedBusiness(u)
		if !u.IsAdmin || b == nil {
			s.fail(w, http.StatusForbidden, "only a system administrator or a general administrator with an approved business creates sub-users")
			return
		}
		business = b.ID
	}
	var req newUser
	if !s.decode(w, r, &req) {
		return
	}
	if nu := s.addUser(w, req, Approved, u.ID, business); nu != nil {
		s.counters.SubUsersCreated++
		s.reply(w, http.StatusOK, map[string]any{"id": nu.ID})
	}
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		OldPassword string `json:"oldPassword"`
		Password    string `json:"password"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if req.OldPassword != u.password {
		s.fail(w, http.StatusUnprocessableEntity, "old password is wrong")
		return
	}
	if !ValidPassword(req.Password) {
		s.fail(w, http.StatusUnprocessableEntity, passwordRule)
		return
	}
	u.password = req.Password
	s.reply(w, http.StatusOK, nil)
}

// visibleUsers: the system administrator sees everyone, a general administrator the
// users of its business (and its sub-users and itself).
func (s *Server) visibleUser(viewer, u *User) bool {
	if isSysadmin(viewer) || u.ID == viewer.ID || u.Parent == viewer.ID {
		return true
	}
	return viewer.Business != 0 && u.Business == viewer.Business
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, u *User) {
	if !isSysadmin(u) && !u.IsAdmin {
		s.fail(w, http.StatusForbidden, "User does not have permission of admin role.")
		return
	}
	var all []User
	for _, x := range s.users {
		if s.visibleUser(u, x) {
			all = append(all, *x)
		}
	}
	q := r.URL.Query()
	switch q.Get("orderBy") {
	case "", "id":
	case "user_name":
		sort.SliceStable(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	default:
		s.fail(w, http.StatusUnprocessableEntity, "orderBy allows id and user_name")
		return
	}
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	default:
		s.fail(w, http.StatusUnprocessableEntity, "order allows asc and desc")
		return
	}
	s.list(w, r, all, len(all), 10)
}

func (s *Server) pathID(w http.ResponseWriter, r *http.Request) (int, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id <= 0 {
		s.fail(w, http.StatusUnprocessableEntity, "id must be a positive integer")
		return 0, false
	}
	return id, true
}

func (s *Server) auditUser(w http.ResponseWriter, r *http.Request, u *User) {
	if !isSysadmin(u) {
		s.fail(w, http.StatusForbidden, "only the system administrator audits users")
		return
	}
	id, ok := s.pathID(w, r)
	if !ok {
		return
	}
	var req struct {
		Status *int `json:"status"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if req.Status == nil || *req.Status < Pending || *req.Status > Forbidden {
		s.fail(w, http.StatusUnprocessableEntity, "status must be 0 (pending), 1 (approved), 2 (not approved) or 3 (forbidden)")
		return
	}
	x := s.userByID(id)
	if x == nil {
		s.fail(w, http.StatusNotFound, "user not found")
		return
	}
	if isSysadmin(x) {
		s.fail(w, http.StatusForbidden, "the system administrator cannot be audited")
		return
	}
	if x.Status != *req.Status {
		x.Status = *req.Status
		x.UpdateTime = s.now().Unix()
		s.counters.UserAudits++
	}
	s.reply(w, http.StatusOK, map[string]any{"id": x.ID, "status": x.Status})
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, u *User) {
	id, ok := s.pathID(w, r)
	if !ok {
		return
	}
	for i, x := range s.users {
		if x.ID != id {
			continue
		}
		if isSysadmin(x) || !(isSysadmin(u) || (u.IsAdmin && s.visibleUser(u, x) && x.ID != u.ID)) {
			s.fail(w, http.StatusForbidden, "not allowed to delete this user")
			return
		}
		s.users = append(s.users[:i], s.users[i+1:]...)
		s.reply(w, http.StatusOK, nil)
		return
	}
	s.fail(w, http.StatusNotFound, "user not found")
}

// --- businesses ------------------------------------------------------------------

func (s *Server) createBusiness(w http.ResponseWriter, r *http.Request, u *User) {
	if isSysadmin(u) || !u.IsAdmin || u.Status != Approved || u.Parent != 0 {
		s.fail(w, http.StatusForbidden, "only an approved general administrator creates a business")
		return
	}
	for _, b := range s.businesses {
		if b.UserID == u.ID && (b.Status == Pending || b.Status == Approved) {
			s.fail(w, http.StatusForbidden, fmt.Sprintf("this administrator already has a business (%s)", b.Name))
			return
		}
	}
	var req struct {
		Name      string `json:"name"`
		Introduce string `json:"introduce"`
		Objective string `json:"objective"`
		Scale     string `json:"scale"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"name", req.Name}, {"introduce", req.Introduce}, {"objective", req.Objective}, {"scale", req.Scale}} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		s.fail(w, http.StatusUnprocessableEntity, "missing parameters: "+strings.Join(missing, ", "))
		return
	}
	b := &Business{ID: s.id(), Name: req.Name, UserID: u.ID, Introduce: req.Introduce, Objective: req.Objective, Scale: req.Scale,
		Status: Pending, CreateTime: s.now().Unix()}
	s.businesses = append(s.businesses, b)
	s.counters.BusinessesCreated++
	s.reply(w, http.StatusOK, map[string]any{"id": b.ID})
}

func (s *Server) visibleBusiness(u *User, b *Business) bool {
	return isSysadmin(u) || b.UserID == u.ID || (u.Business != 0 && u.Business == b.ID)
}

func (s *Server) listBusinesses(w http.ResponseWriter, r *http.Request, u *User) {
	name := r.URL.Query().Get("name")
	var all []Business
	for _, b := range s.businesses {
		if s.visibleBusiness(u, b) && (name == "" || b.Name == name) {
			all = append(all, *b)
		}
	}
	if r.URL.Query().Get("order") == "desc" {
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	}
	s.list(w, r, all, len(all), 10)
}

func (s *Server) getBusiness(w http.ResponseWriter, r *http.Request, u *User) {
	id, ok := s.pathID(w, r)
	if !ok {
		return
	}
	b := s.businessByID(id)
	if b == nil || !s.visibleBusiness(u, b) {
		s.fail(w, http.StatusNotFound, "business not found")
		return
	}
	s.reply(w, http.StatusOK, *b)
}

// approveBusiness creates the namespaces and attaches the owner; the caller holds
// the lock.
func (s *Server) approveBusiness(b *Business) {
	ns := "ns" + strconv.Itoa(b.ID)
	for _, c := range s.clusters {
		found := false
		for _, x := range c.namespaces {
			found = found || x == ns
		}
		if !found {
			c.namespaces = append(c.namespaces, ns)
			s.counters.NamespacesCreated++
		}
	}
	if owner := s.userByID(b.UserID); owner != nil {
		owner.Business = b.ID
	}
}

func (s *Server) auditBusiness(w http.ResponseWriter, r *http.Request, u *User) {
	if !isSysadmin(u) {
		s.fail(w, http.StatusForbidden, "only the system administrator audits businesses")
		return
	}
	id, ok := s.pathID(w, r)
	if !ok {
		return
	}
	var req struct {
		Status  *int   `json:"status"`
		Comment string `json:"comment"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if req.Status == nil || (*req.Status != Approved && *req.Status != NotApproved) {
		s.fail(w, http.StatusUnprocessableEntity, "status must be 1 (approved) or 2 (disapproved)")
		return
	}
	if strings.TrimSpace(req.Comment) == "" {
		s.fail(w, http.StatusUnprocessableEntity, "comment is required")
		return
	}
	b := s.businessByID(id)
	if b == nil || b.Status == 3 {
		s.fail(w, http.StatusNotFound, "business not found")
		return
	}
	if b.Status != *req.Status {
		if *req.Status == Approved {
			s.approveBusiness(b)
		}
		b.Status = *req.Status
		s.counters.BusinessAudits++
	}
	b.Comment = req.Comment
	s.reply(w, http.StatusOK, map[string]any{"id": b.ID, "status": b.Status})
}

// --- clusters and nodes ----------------------------------------------------------

var labelRE = regexp.MustCompile(`^[A-Za-z0-9.-]{1,63}$`)

func (s *Server) listClusters(w http.ResponseWriter, r *http.Request, _ *User) {
	label := r.URL.Query().Get("clusterLabel")
	var out []map[string]any
	for _, name := range fault.SortedKeys(s.clusters) {
		c := s.clusters[name]
		if label != "" && label != "all" && !c.labels[label] {
			continue
		}
		out = append(out, map[string]any{"clusterName": name, "nodeCount": len(c.nodes), "isReady": true})
	}
	s.list(w, r, out, len(out), 0)
}

func (s *Server) allClusterLabels(w http.ResponseWriter, _ *http.Request, _ *User) {
	set := map[string]bool{}
	for _, c := range s.clusters {
		for l := range c.labels {
			set[l] = true
		}
	}
	s.reply(w, http.StatusOK, fault.SortedKeys(set))
}

type clusterLabelReq struct {
	ClusterName  []string `json:"clusterName"`
	ClusterLabel string   `json:"clusterLabel"`
}

// clusterReq validates a cluster label body; the caller holds the lock.
func (s *Server) clusterReq(w http.ResponseWriter, r *http.Request, u *User) (clusterLabelReq, bool) {
	var req clusterLabelReq
	if !isSysadmin(u) {
		s.fail(w, http.StatusForbidden, "only the system administrator labels clusters")
		return req, false
	}
	if !s.decode(w, r, &req) {
		return req, false
	}
	if len(req.ClusterName) == 0 {
		s.fail(w, http.StatusUnprocessableEntity, "clusterName is required")
		return req, false
	}
	if !labelRE.MatchString(req.ClusterLabel) {
		s.fail(w, http.StatusUnprocessableEntity, "clusterLabel may only use uppercase and lowercase letters, numbers and the special characters - .")
		return req, false
	}
	for _, c := range req.ClusterName {
		if s.clusters[c] == nil {
			s.fail(w, http.StatusNotFound, "cluster "+c+" not found")
			return req, false
		}
	}
	return req, true
}

func (s *Server) labelClusters(w http.ResponseWriter, r *http.Request, u *User) {
	req, ok := s.clusterReq(w, r, u)
	if !ok {
		return
	}
	for _, name := range req.ClusterName {
		c := s.clusters[name]
		if !c.labels[req.ClusterLabel] {
			c.labels[req.ClusterLabel] = true
			s.counters.ClusterLabelsAdded++
		}
	}
	s.reply(w, http.StatusOK, nil)
}

func (s *Server) unlabelClusters(w http.ResponseWriter, r *http.Request, u *User) {
	req, ok := s.clusterReq(w, r, u)
	if !ok {
		return
	}
	for _, name := range req.ClusterName {
		delete(s.clusters[name].labels, req.ClusterLabel)
	}
	s.reply(w, http.StatusOK, nil)
}

func (s *Server) clusterLabels(w http.ResponseWriter, r *http.Request, _ *User) {
	c := s.clusters[r.PathValue("cluster")]
	if c == nil {
		s.fail(w, http.StatusNotFound, "cluster "+r.PathValue("cluster")+" not found")
		return
	}
	var out []map[string]any
	for _, l := range fault.SortedKeys(c.labels) {
		out = append(out, map[string]any{"clusterLabel": l, "createTime": 0})
	}
	s.list(w, r, out, len(out), 10)
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, _ *User) {
	q := r.URL.Query()
	var out []map[string]any
	for _, name := range fault.SortedKeys(s.clusters) {
		if cn := q.Get("clusterName"); cn != "" && cn != name {
			continue
		}
		c := s.clusters[name]
		for _, n := range c.nodes {
			if l := q.Get("nodeLabel"); l != "" && !c.nodeLabels[n][l] {
				continue
			}
			if nn := q.Get("nodeName"); nn != "" && nn != n {
				continue
			}
			out = append(out, map[string]any{"nodeName": n, "clusterName": name, "operatingSystem": "linux", "kernelVersion": "5.15",
				"ip": "10.0.0.1", "memory": 8 << 30, "cpu": 4, "gpu": 0, "disk": 128 << 30, "isReady": true})
		}
	}
	s.list(w, r, out, len(out), 10)
}

func (s *Server) allNodeLabels(w http.ResponseWriter, r *http.Request, _ *User) {
	set := map[string]bool{}
	for name, c := range s.clusters {
		if cn := r.URL.Query().Get("clusterName"); cn != "" && cn != name {
			continue
		}
		for _, ls := range c.nodeLabels {
			for l := range ls {
				set[l] = true
			}
		}
	}
	s.reply(w, http.StatusOK, fault.SortedKeys(set))
}

type nodeLabelReq struct {
	NodeName    []string `json:"nodeName"`
	NodeLabel   string   `json:"nodeLabel"`
	ClusterName string   `json:"clusterName"`
}

func (s *Server) nodeReq(w http.ResponseWriter, r *http.Request, u *User) (nodeLabelReq, *cluster, bool) {
	var req nodeLabelReq
	if !isSysadmin(u) {
		s.fail(w, http.StatusForbidden, "only the system administrator labels nodes")
		return req, nil, false
	}
	if !s.decode(w, r, &req) {
		return req, nil, false
	}
	if len(req.NodeName) == 0 || req.ClusterName == "" {
		s.fail(w, http.StatusUnprocessableEntity, "nodeName and clusterName are required")
		return req, nil, false
	}
	if !labelRE.MatchString(req.NodeLabel) {
		s.fail(w, http.StatusUnprocessableEntity, "nodeLabel may only use uppercase and lowercase letters, numbers and the special characters - .")
		return req, nil, false
	}
	c := s.clusters[req.ClusterName]
	if c == nil {
		s.fail(w, http.StatusNotFound, "cluster "+req.ClusterName+" not found")
		return req, nil, false
	}
	for _, n := range req.NodeName {
		found := false
		for _, x := range c.nodes {
			found = found || x == n
		}
		if !found {
			s.fail(w, http.StatusNotFound, "node "+n+" not found in cluster "+req.ClusterName)
			return req, nil, false
		}
	}
	return req, c, true
}

func (s *Server) labelNodes(w http.ResponseWriter, r *http.Request, u *User) {
	req, c, ok := s.nodeReq(w, r, u)
	if !ok {
		return
	}
	for _, n := range req.NodeName {
		if c.nodeLabels[n] == nil {
			c.nodeLabels[n] = map[string]bool{}
		}
		if !c.nodeLabels[n][req.NodeLabel] {
			c.nodeLabels[n][req.NodeLabel] = true
			s.counters.NodeLabelsAdded++
		}
	}
	s.reply(w, http.StatusOK, nil)
}

func (s *Server) unlabelNodes(w http.ResponseWriter, r *http.Request, u *User) {
	req, c, ok := s.nodeReq(w, r, u)
	if !ok {
		return
	}
	for _, n := range req.NodeName {
		delete(c.nodeLabels[n], req.NodeLabel)
	}
	s.reply(w, http.StatusOK, nil)
}

// --- repository --------------------------------------------------------------------

var projectRE = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

func (s *Server) createRepoUser(w http.ResponseWriter, r *http.Request, u *User) {
	if !isSysadmin(u) {
		s.fail(w, http.StatusForbidden, "User registration can only be used by admin role user when self-registration is off.")
		return
	}
	var req struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.User) == "" || !ValidPassword(req.Password) {
		s.fail(w, http.StatusBadRequest, "Unsatisfied with constraints of the user creation.")
		return
	}
	if _, ok := s.repoUsers[req.User]; ok {
		s.fail(w, http.StatusConflict, "username conflict")
		return
	}
	s.repoUsers[req.User] = req.Password
	s.counters.RepoUsersCreated++
	s.reply(w, http.StatusOK, nil)
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request, u *User) {
	q := r.URL.Query()
	var out []Project
	for _, p := range s.projects {
		if !isSysadmin(u) && p.Owner != u.ID {
			continue
		}
		// Harbor matches the name filter as a substring.
		if n := q.Get("projectName"); n != "" && !strings.Contains(p.Name, n) {
			continue
		}
		if pub := q.Get("public"); pub != "" && strconv.FormatBool(p.Public) != pub {
			continue
		}
		out = append(out, *p)
	}
	s.list(w, r, out, len(out), 10)
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		ProjectName string `json:"projectName"`
		Public      *bool  `json:"public"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if !projectRE.MatchString(req.ProjectName) || len(req.ProjectName) > 255 || req.Public == nil {
		s.fail(w, http.StatusBadRequest, "Unsatisfied with constraints of the project creation.")
		return
	}
	for _, p := range s.projects {
		if p.Name == req.ProjectName {
			s.fail(w, http.StatusConflict, "Project name already exists.")
			return
		}
	}
	p := &Project{ID: s.id(), Name: req.ProjectName, Public: *req.Public, Owner: u.ID, CreateTime: s.now().UTC().Format(time.RFC3339)}
	s.projects = append(s.projects, p)
	s.counters.ProjectsCreated++
	w.Header().Set("Location", "/api/projects/"+strconv.Itoa(p.ID))
	s.reply(w, http.StatusCreated, nil)
}

func (s *Server) createRegistry(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		RepositoryID string `json:"repositoryId"`
		Address      string `json:"address"`
		User         string `json:"user"`
		Password     string `json:"password"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"repositoryId", req.RepositoryID}, {"address", req.Address}, {"user", req.User}, {"password", req.Password}} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		s.fail(w, http.StatusUnprocessableEntity, "missing parameters: "+strings.Join(missing, ", "))
		return
	}
	if s.registry(req.RepositoryID) != nil {
		s.fail(w, http.StatusConflict, "repository "+req.RepositoryID+" already exists")
		return
	}
	s.registries = append(s.registries, &Registry{ID: req.RepositoryID, Address: req.Address, User: req.User, Owner: u.ID, password: req.Password})
	s.counters.RegistriesCreated++
	s.reply(w, http.StatusOK, nil)
}

func (s *Server) registry(id string) *Registry {
	for _, g := range s.registries {
		if g.ID == id {
			return g
		}
	}
	return nil
}

func (s *Server) listRegistries(w http.ResponseWriter, r *http.Request, _ *User) {
	out := make([]Registry, 0, len(s.registries))
	for _, g := range s.registries {
		out = append(out, *g)
	}
	s.list(w, r, out, len(out), 10)
}

func (s *Server) getRegistry(w http.ResponseWriter, r *http.Request, _ *User) {
	g := s.registry(r.PathValue("id"))
	if g == nil {
		s.fail(w, http.StatusNotFound, "Not found")
		return
	}
	s.reply(w, http.StatusOK, *g)
}

func (s *Server) deleteRegistries(w http.ResponseWriter, r *http.Request, _ *User) {
	var req struct {
		RepositoryID []string `json:"repositoryId"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	kept := s.registries[:0]
	for _, g := range s.registries {
		if !slices.Contains(req.RepositoryID, g.ID) {
			kept = append(kept, g)
		}
	}
	s.registries = kept
	s.reply(w, http.StatusOK, nil)
}

// --- applications ------------------------------------------------------------------

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

// namespaceOf is where a user's applications go: its business's namespace, or
// "default" for the system administrator.
func (s *Server) namespaceOf(u *User) string {
	if b := s.approvedBusiness(u); b != nil {
		return "ns" + strconv.Itoa(b.ID)
	}
	return "default"
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request, u *User) {
	if !isSysadmin(u) && s.approvedBusiness(u) == nil {
		s.fail(w, http.StatusForbidden, "only users of an approved business create applications")
		return
	}
	var req struct {
		AppName      string          `json:"appName"`
		DeployType   string          `json:"deployType"`
		Image        string          `json:"image"`
		Version      string          `json:"version"`
		RepositoryID string          `json:"repositoryId"`
		Port         []int           `json:"port"`
		Command      []string        `json:"command"`
		Args         []string        `json:"args"`
		Env          json.RawMessage `json:"env"`
		Description  string          `json:"description"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	env, err := decodeEnv(req.Env)
	var problems []string
	switch {
	case strings.TrimSpace(req.AppName) == "":
		problems = append(problems, "appName is required")
	case req.DeployType != "deployment" && req.DeployType != "daemonset":
		problems = append(problems, "deployType must be deployment or daemonset")
	case strings.TrimSpace(req.Image) == "":
		problems = append(problems, "image is required")
	case !versionRE.MatchString(req.Version):
		problems = append(problems, "version must have the format x.x, for example 1.1")
	case len(req.Port) == 0:
		problems = append(problems, "port is required")
	case err != nil:
		problems = append(problems, "env: "+err.Error())
	}
	for _, p := range req.Port {
		if p < 1 || p > 65535 {
			problems = append(problems, fmt.Sprintf("port %d is out of range", p))
		}
	}
	if req.RepositoryID != "" && s.registry(req.RepositoryID) == nil {
		problems = append(problems, "repository "+req.RepositoryID+" does not exist")
	}
	if len(problems) > 0 {
		s.fail(w, http.StatusUnprocessableEntity, strings.Join(problems, "; "))
		return
	}
	a := &App{ID: s.id(), Name: req.AppName, Namespace: s.namespaceOf(u), Owner: u.ID, DeployType: req.DeployType, Image: req.Image,
		Version: req.Version, RepositoryID: req.RepositoryID, Port: req.Port, Command: req.Command, Args: req.Args, Env: env,
		Description: req.Description, CreateTime: s.now().Unix()}
	s.apps = append(s.apps, a)
	s.counters.AppsCreated++
	s.reply(w, http.StatusOK, map[string]any{"id": a.ID})
}

// decodeEnv accepts [{name, value}] or {name: value}.
func decodeEnv(raw json.RawMessage) ([]EnvVar, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var l []EnvVar
	if err := json.Unmarshal(raw, &l); err == nil {
		for _, e := range l {
			if e.Name == "" {
				return nil, fmt.Errorf("a variable has no name")
			}
		}
		return l, nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("want a list of {name, value} or a mapping")
	}
	for _, k := range fault.SortedKeys(m) {
		l = append(l, EnvVar{Name: k, Value: m[k]})
	}
	return l, nil
}

func (s *Server) visibleApp(u *User, a *App) bool {
	return isSysadmin(u) || a.Owner == u.ID || a.Namespace == s.namespaceOf(u)
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request, u *User) {
	if s.opts.AppLookup != 0 {
		s.fail(w, s.opts.AppLookup, "no such API: GET /v1/app")
		return
	}
	name := r.URL.Query().Get("appName")
	var out []App
	for _, a := range s.apps {
		// A substring match, as list filters usually are: clients must check names.
		if s.visibleApp(u, a) && (name == "" || strings.Contains(a.Name, name)) {
			out = append(out, *a)
		}
	}
	if len(out) == 0 && name != "" && s.opts.AppNoMatch404 {
		s.fail(w, http.StatusNotFound, "application not found")
		return
	}
	s.list(w, r, out, len(out), 10)
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request, u *User) {
	if s.opts.AppLookup != 0 {
		s.fail(w, s.opts.AppLookup, "no such API: GET /v1/app/{id}")
		return
	}
	id, ok := s.pathID(w, r)
	if !ok {
		return
	}
	for _, a := range s.apps {
		if a.ID == id && s.visibleApp(u, a) {
			s.reply(w, http.StatusOK, *a)
			return
		}
	}
	s.fail(w, http.StatusNotFound, "application not found")
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request, u *User) {
	id, ok := s.pathID(w, r)
	if !ok {
		return
	}
	for i, a := range s.apps {
		if a.ID == id && s.visibleApp(u, a) {
			s.apps = append(s.apps[:i], s.apps[i+1:]...)
			s.reply(w, http.StatusOK, nil)
			return
		}
	}
	s.fail(w, http.StatusNotFound, "application not found")
}

// --- inspection --------------------------------------------------------------------

// Snapshot is a deep copy of everything the fake holds (no passwords, no tokens).
type Snapshot struct {
	Users      []User
	Businesses []Business
	Clusters   []Cluster
	RepoUsers  []string
	Projects   []Project
	Registries []Registry
	Apps       []App
	Counters   Counters
	// Sessions is the number of live tokens.
	Sessions int
}

// Snapshot returns a deep copy of the fake's objects and counters.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Snapshot{Counters: s.counters, Sessions: len(s.tokens)}
	for _, u := range s.users {
		c := *u
		c.password = ""
		out.Users = append(out.Users, c)
	}
	for _, b := range s.businesses {
		out.Businesses = append(out.Businesses, *b)
	}
	for _, name := range fault.SortedKeys(s.clusters) {
		c := s.clusters[name]
		cl := Cluster{Name: name, Labels: fault.SortedKeys(c.labels), Namespaces: append([]string(nil), c.namespaces...)}
		for _, n := range c.nodes {
			cl.Nodes = append(cl.Nodes, Node{Name: n, Labels: fault.SortedKeys(c.nodeLabels[n])})
		}
		out.Clusters = append(out.Clusters, cl)
	}
	out.RepoUsers = fault.SortedKeys(s.repoUsers)
	for _, p := range s.projects {
		out.Projects = append(out.Projects, *p)
	}
	for _, g := range s.registries {
		c := *g
		c.password = ""
		out.Registries = append(out.Registries, c)
	}
	for _, a := range s.apps {
		c := *a
		c.Port = append([]int(nil), a.Port...)
		c.Command = append([]string(nil), a.Command...)
		c.Args = append([]string(nil), a.Args...)
		c.Env = append([]EnvVar(nil), a.Env...)
		out.Apps = append(out.Apps, c)
	}
	return out
}

// Cluster returns a cluster of the snapshot by name.
func (sn Snapshot) Cluster(name string) (Cluster, bool) {
	return fault.Find(sn.Clusters, func(c Cluster) bool { return c.Name == name })
}

// User returns a user of the snapshot by name.
func (sn Snapshot) User(name string) (User, bool) {
	return fault.Find(sn.Users, func(u User) bool { return u.Name == name })
}

// Check lists duplicates: two objects with one natural key (user name, business name
// among businesses not deleted, namespace name in a cluster, repository user, project
// name, registry id, application name within a namespace). A provisioning run must
// leave none, whatever faults it met.
func (s *Server) Check() []string {
	snap := s.Snapshot()
	count := fault.Tally{}
	for _, u := range snap.Users {
		count.Add("user " + u.Name)
	}
	for _, b := range snap.Businesses {
		if b.Status != 3 {
			count.Add("business " + b.Name)
		}
	}
	for _, c := range snap.Clusters {
		for _, ns := range c.Namespaces {
			count.Add("namespace " + ns + " in cluster " + c.Name)
		}
	}
	for _, p := range snap.Projects {
		count.Add("repository project " + p.Name)
	}
	for _, g := range snap.Registries {
		count.Add("external registry " + g.ID)
	}
	for _, a := range snap.Apps {
		count.Add("application " + a.Name + " in namespace " + a.Namespace)
	}
	return count.Duplicates()
}

// Report summarises the fake for the sandbox's report page.
func (s *Server) Report() any {
	snap := s.Snapshot()
	pendingUsers, pendingBusinesses := 0, 0
	for _, u := range snap.Users {
		if u.Status == Pending {
			pendingUsers++
		}
	}
	for _, b := range snap.Businesses {
		if b.Status == Pending {
			pendingBusinesses++
		}
	}
	return map[string]any{"users": len(snap.Users), "pending_users": pendingUsers, "businesses": len(snap.Businesses),
		"pending_businesses": pendingBusinesses, "repository_users": len(snap.RepoUsers), "projects": len(snap.Projects),
		"registries": len(snap.Registries), "apps": len(snap.Apps), "duplicates": s.Check(), "counters": snap.Counters}
}
