// Package edgefake is a fake of the edge platform's "Video Security Monitoring R3"
// open API (port 8995, /v1): JWT-like tokens valid for TokenLifetime and refreshable
// (PUT /v1/authorization) for five lifetimes, users pending until the system
// administrator approves them, business namespaces audited into "ns<id>", cluster
// and node labels, Harbor-style repository users and projects (409 on duplicates),
// external registries and applications. Answers use the {code, msg, data} envelope
// when Options.Envelope is set, plain JSON otherwise.
package edgefake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"provision/providers/fault"
)

// Options configure the fake.
type Options struct {
	AdminPassword string              // password of the built-in system administrator "admin"
	Clusters      map[string][]string // cluster -> node names
	TokenLifetime time.Duration       // default 1h
	Envelope      bool
	Faults        fault.Config
}

// DemoClusters are the clusters and nodes the example plans use.
func DemoClusters() map[string][]string {
	return map[string][]string{
		"cluster-a": {"edge-a1", "edge-a2", "edge-a3"},
		"cluster-b": {"edge-b1", "edge-b2"},
	}
}

// User is a platform user. Status: 0 pending, 1 approved, 2 not approved, 3 forbidden.
type User struct {
	ID       int    `json:"id"`
	Name     string `json:"user"`
	Password string `json:"-"`
	Phone    string `json:"phone"`
	RealName string `json:"realName"`
	IsAdmin  bool   `json:"isAdmin"`
	Status   int    `json:"status"`
	Business int    `json:"businessId"`
	Parent   int    `json:"-"`
}

// Business is a business namespace. Status: 0 pending, 1 approved, 2 disapproved.
type Business struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	UserID    int    `json:"userId"`
	Introduce string `json:"introduce"`
	Objective string `json:"objective"`
	Scale     string `json:"scale"`
	Status    int    `json:"status"`
	Comment   string `json:"comment"`
}

// App is an application.
type App struct {
	ID           int    `json:"id"`
	Name         string `json:"appName"`
	DeployType   string `json:"deployType"`
	Image        string `json:"image"`
	Version      string `json:"version"`
	RepositoryID string `json:"repositoryId"`
	Port         []int  `json:"port"`
	Owner        int    `json:"userId"`
}

// Registry is an external registry record.
type Registry struct {
	ID      string `json:"repositoryId"`
	Address string `json:"address"`
	User    string `json:"user"`
}

// Project is a repository project.
type Project struct {
	ID     int    `json:"projectId"`
	Name   string `json:"projectName"`
	Public bool   `json:"public"`
}

// Counters count creates.
type Counters struct {
	Users, Approvals, Businesses, Audits, ClusterLabels, NodeLabels, RepoUsers, Projects, Registries, Apps, Logins, Refreshes int
}

// Server is the fake. Safe for concurrent use.
type Server struct {
	Faults *fault.Injector
	opts   Options
	h      http.Handler

	mu            sync.Mutex
	nextID        int
	users         []*User
	businesses    []*Business
	namespaces    map[string][]string // cluster -> namespaces
	clusterLabels map[string]map[string]bool
	nodeLabels    map[string]map[string]bool // cluster/node -> labels
	repoUsers     map[string]bool
	projects      []*Project
	registries    map[string]*Registry
	apps          []*App
	tokens        map[string]session
	counters      Counters
}

type session struct {
	user    int
	expiry  time.Time
	refresh time.Time
}

// New returns a server.
func New(o Options) *Server {
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = time.Hour
	}
	if o.Clusters == nil {
		o.Clusters = DemoClusters()
	}
	s := &Server{Faults: fault.New(o.Faults), opts: o, nextID: 1, namespaces: map[string][]string{}, clusterLabels: map[string]map[string]bool{},
		nodeLabels: map[string]map[string]bool{}, repoUsers: map[string]bool{}, registries: map[string]*Registry{}, tokens: map[string]session{}}
	s.users = append(s.users, &User{ID: s.id(), Name: "admin", Password: o.AdminPassword, IsAdmin: true, Status: 1, RealName: "System administrator"})
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/authorization", s.login)
	m.HandleFunc("PUT /v1/authorization", s.refresh)
	m.HandleFunc("GET /v1/authorization", s.auth(s.whoami))
	m.HandleFunc("POST /v1/user", s.register)
	m.HandleFunc("GET /v1/admin/user", s.auth(s.listUsers))
	m.HandleFunc("POST /v1/admin/user", s.auth(s.createSubUser))
	m.HandleFunc("PUT /v1/admin/user/{id}", s.auth(s.auditUser))
	m.HandleFunc("POST /v1/business", s.auth(s.createBusiness))
	m.HandleFunc("GET /v1/business", s.auth(s.listBusinesses))
	m.HandleFunc("PUT /v1/business/id/{id}", s.auth(s.auditBusiness))
	m.HandleFunc("GET /v1/cluster", s.auth(s.listClusters))
	m.HandleFunc("POST /v1/cluster/label", s.auth(s.labelClusters))
	m.HandleFunc("GET /v1/cluster/label/{cluster}", s.auth(s.clusterLabelList))
	m.HandleFunc("GET /v1/node", s.auth(s.listNodes))
	m.HandleFunc("POST /v1/node/label", s.auth(s.labelNodes))
	m.HandleFunc("POST /v1/repository/user", s.auth(s.createRepoUser))
	m.HandleFunc("GET /v1/repository/project", s.auth(s.listProjects))
	m.HandleFunc("POST /v1/repository/project", s.auth(s.createProject))
	m.HandleFunc("POST /v1/repository/third", s.auth(s.createRegistry))
	m.HandleFunc("GET /v1/repository/third/{id}", s.auth(s.getRegistry))
	m.HandleFunc("POST /v1/app", s.auth(s.createApp))
	m.HandleFunc("GET /v1/app", s.auth(s.listApps))
	s.h = s.Faults.Wrap(m)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// SetAdminPassword sets the system administrator's password.
func (s *Server) SetAdminPassword(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[0].Password = p
}

func (s *Server) id() int { s.nextID++; return s.nextID - 1 }

func (s *Server) reply(w http.ResponseWriter, status int, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if s.opts.Envelope {
		_ = json.NewEncoder(w).Encode(map[string]any{"code": status, "msg": "success", "data": data})
		return
	}
	_ = json.NewEncoder(w).Encode(data)
}

func (s *Server) fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": status, "msg": msg})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		w.WriteHeader(http.StatusUnsupportedMediaType)
		_, _ = w.Write([]byte(`{"code":415,"msg":"The Media Type of the request is not supported, it has to be \"application/json\""}`))
		return false
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(v); err != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(`{"code":422,"msg":"body is not valid JSON"}`))
		return false
	}
	return true
}

func token() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "eyJ" + hex.EncodeToString(b)
}

var (
	passwordRE = regexp.MustCompile(`^.{8,20}$`)
	labelRE    = regexp.MustCompile(`^[A-Za-z0-9.-]+$`)
	versionRE  = regexp.MustCompile(`^\d+\.\d+$`)
)

// ValidPassword follows the seed: 8-20 characters, an upper, a lower and a digit.
func ValidPassword(p string) bool {
	return passwordRE.MatchString(p) && strings.ContainsAny(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
		strings.ContainsAny(p, "abcdefghijklmnopqrstuvwxyz") && strings.ContainsAny(p, "0123456789")
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req struct{ User, Password string }
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.Name == req.User && u.Password == req.Password {
			if u.Status != 1 {
				s.fail(w, 403, "user is not approved")
				return
			}
			t := token()
			now := time.Now()
			s.tokens[t] = session{user: u.ID, expiry: now.Add(s.opts.TokenLifetime), refresh: now.Add(5 * s.opts.TokenLifetime)}
			s.counters.Logins++
			s.reply(w, 200, map[string]any{"token": t, "expire": int(s.opts.TokenLifetime / time.Second)})
			return
		}
	}
	s.fail(w, 422, "wrong user name or password")
}

func bearer(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(v, "Bearer "); ok {
		return t
	}
	return v
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.tokens[bearer(r)]
	if !ok || time.Now().After(old.refresh) {
		s.fail(w, 401, "token cannot be refreshed; log in")
		return
	}
	delete(s.tokens, bearer(r))
	t := token()
	s.tokens[t] = session{user: old.user, expiry: time.Now().Add(s.opts.TokenLifetime), refresh: old.refresh}
	s.counters.Refreshes++
	s.reply(w, 200, map[string]any{"token": t, "expire": int(s.opts.TokenLifetime / time.Second)})
}

type authed func(w http.ResponseWriter, r *http.Request, u *User)

func (s *Server) auth(h authed) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		sess, ok := s.tokens[bearer(r)]
		var u *User
		if ok && time.Now().Before(sess.expiry) {
			u = s.user(sess.user)
		}
		s.mu.Unlock()
		if u == nil {
			s.fail(w, 401, "User need to log in first.")
			return
		}
		h(w, r, u)
	}
}

func (s *Server) user(id int) *User {
	for _, u := range s.users {
		if u.ID == id {
			return u
		}
	}
	return nil
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, u *User) {
	role := 2
	switch {
	case u.ID == 1:
		role = 4
	case u.IsAdmin && u.Business != 0:
		role = 3
	case u.IsAdmin:
		role = 1
	}
	s.reply(w, 200, map[string]any{"displayName": u.Name, "role": role})
}

type newUser struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Phone    string `json:"phone"`
	IsAdmin  bool   `json:"isAdmin"`
	RealName string `json:"realName"`
}

func (s *Server) addUser(w http.ResponseWriter, req newUser, status, parent, business int) {
	if req.User == "" || req.Phone == "" || req.RealName == "" {
		s.fail(w, 422, "user, phone and realName are required")
		return
	}
	if !ValidPassword(req.Password) {
		s.fail(w, 422, "Password should be 8-20 characters long with at least 1 uppercase, 1 lowercase and 1 number.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.Name == req.User {
			s.fail(w, 422, "user already exists")
			return
		}
	}
	u := &User{ID: s.id(), Name: req.User, Password: req.Password, Phone: req.Phone, RealName: req.RealName, IsAdmin: req.IsAdmin, Status: status, Parent: parent, Business: business}
	s.users = append(s.users, u)
	s.counters.Users++
	s.reply(w, 200, map[string]any{"id": u.ID})
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req newUser
	if decode(w, r, &req) {
		s.addUser(w, req, 0, 0, 0)
	}
}

func (s *Server) createSubUser(w http.ResponseWriter, r *http.Request, u *User) {
	if !u.IsAdmin {
		s.fail(w, 403, "only administrators create sub-users")
		return
	}
	var req newUser
	if decode(w, r, &req) {
		s.addUser(w, req, 1, u.ID, u.Business)
	}
}

func page(r *http.Request, n int) (int, int) {
	p, _ := strconv.Atoi(r.URL.Query().Get("page"))
	ps, err := strconv.Atoi(r.URL.Query().Get("pageSize"))
	if p < 1 {
		p = 1
	}
	if err != nil {
		ps = 10
	}
	if ps <= 0 {
		return 0, n
	}
	lo := (p - 1) * ps
	if lo > n {
		lo = n
	}
	return lo, min(n, lo+ps)
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, u *User) {
	if !u.IsAdmin {
		s.fail(w, 403, "User does not have permission of admin role.")
		return
	}
	s.mu.Lock()
	var all []User
	for _, x := range s.users {
		if u.ID == 1 || x.Parent == u.ID || x.ID == u.ID {
			all = append(all, *x)
		}
	}
	s.mu.Unlock()
	lo, hi := page(r, len(all))
	s.reply(w, 200, map[string]any{"total": len(all), "list": all[lo:hi]})
}

func (s *Server) auditUser(w http.ResponseWriter, r *http.Request, u *User) {
	if u.ID != 1 {
		s.fail(w, 403, "only the system administrator audits users")
		return
	}
	var req struct{ Status int }
	if !decode(w, r, &req) {
		return
	}
	id, _ := strconv.Atoi(r.PathValue("id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.user(id)
	if x == nil {
		s.fail(w, 404, "user not found")
		return
	}
	if req.Status < 0 || req.Status > 3 {
		s.fail(w, 422, "status must be 0-3")
		return
	}
	x.Status = req.Status
	s.counters.Approvals++
	s.reply(w, 200, map[string]any{"id": id, "status": x.Status})
}

func (s *Server) createBusiness(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct{ Name, Introduce, Objective, Scale string }
	if !decode(w, r, &req) {
		return
	}
	if req.Name == "" || req.Introduce == "" || req.Objective == "" || req.Scale == "" {
		s.fail(w, 422, "name, introduce, objective and scale are required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !u.IsAdmin || u.ID == 1 {
		s.fail(w, 403, "only a general administrator creates a business")
		return
	}
	for _, b := range s.businesses {
		if b.UserID == u.ID && b.Status != 3 {
			s.fail(w, 403, "this administrator has a business already")
			return
		}
	}
	b := &Business{ID: s.id(), Name: req.Name, UserID: u.ID, Introduce: req.Introduce, Objective: req.Objective, Scale: req.Scale}
	s.businesses = append(s.businesses, b)
	s.counters.Businesses++
	s.reply(w, 200, map[string]any{"id": b.ID})
}

func (s *Server) listBusinesses(w http.ResponseWriter, r *http.Request, u *User) {
	name := r.URL.Query().Get("name")
	s.mu.Lock()
	var all []Business
	for _, b := range s.businesses {
		if (name == "" || b.Name == name) && (u.ID == 1 || b.UserID == u.ID) {
			all = append(all, *b)
		}
	}
	s.mu.Unlock()
	lo, hi := page(r, len(all))
	s.reply(w, 200, map[string]any{"total": len(all), "list": all[lo:hi]})
}

func (s *Server) auditBusiness(w http.ResponseWriter, r *http.Request, u *User) {
	if u.ID != 1 {
		s.fail(w, 403, "only the system administrator audits businesses")
		return
	}
	var req struct {
		Status  int
		Comment string
	}
	if !decode(w, r, &req) {
		return
	}
	id, _ := strconv.Atoi(r.PathValue("id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.businesses {
		if b.ID == id {
			if req.Status != 1 && req.Status != 2 {
				s.fail(w, 422, "status must be 1 or 2")
				return
			}
			if b.Status != 1 && req.Status == 1 {
				for c := range s.opts.Clusters {
					s.namespaces[c] = append(s.namespaces[c], fmt.Sprintf("ns%d", b.ID))
				}
				if owner := s.user(b.UserID); owner != nil {
					owner.Business = b.ID
				}
			}
			b.Status, b.Comment = req.Status, req.Comment
			s.counters.Audits++
			s.reply(w, 200, map[string]any{"id": id, "status": b.Status})
			return
		}
	}
	s.fail(w, 404, "business not found")
}

func (s *Server) listClusters(w http.ResponseWriter, r *http.Request, u *User) {
	var out []map[string]any
	for _, c := range sortedKeys(s.opts.Clusters) {
		out = append(out, map[string]any{"clusterName": c, "nodeCount": len(s.opts.Clusters[c]), "isReady": true})
	}
	s.reply(w, 200, map[string]any{"total": len(out), "list": out})
}

func (s *Server) labelClusters(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		ClusterName  []string `json:"clusterName"`
		ClusterLabel string   `json:"clusterLabel"`
	}
	if !decode(w, r, &req) {
		return
	}
	if !labelRE.MatchString(req.ClusterLabel) || len(req.ClusterName) == 0 {
		s.fail(w, 422, "clusterLabel may only use letters, numbers, '-' and '.'; clusterName is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range req.ClusterName {
		if _, ok := s.opts.Clusters[c]; !ok {
			s.fail(w, 404, "cluster "+c+" not found")
			return
		}
	}
	for _, c := range req.ClusterName {
		if s.clusterLabels[c] == nil {
			s.clusterLabels[c] = map[string]bool{}
		}
		if !s.clusterLabels[c][req.ClusterLabel] {
			s.counters.ClusterLabels++
		}
		s.clusterLabels[c][req.ClusterLabel] = true
	}
	s.reply(w, 200, map[string]any{})
}

func (s *Server) clusterLabelList(w http.ResponseWriter, r *http.Request, u *User) {
	c := r.PathValue("cluster")
	s.mu.Lock()
	var out []map[string]any
	for _, l := range sortedKeys(s.clusterLabels[c]) {
		out = append(out, map[string]any{"clusterLabel": l, "createTime": 0})
	}
	s.mu.Unlock()
	if _, ok := s.opts.Clusters[c]; !ok {
		s.fail(w, 404, "cluster not found")
		return
	}
	lo, hi := page(r, len(out))
	s.reply(w, 200, map[string]any{"total": len(out), "list": out[lo:hi]})
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, u *User) {
	q := r.URL.Query()
	s.mu.Lock()
	var out []map[string]any
	for _, c := range sortedKeys(s.opts.Clusters) {
		if q.Get("clusterName") != "" && q.Get("clusterName") != c {
			continue
		}
		for _, n := range s.opts.Clusters[c] {
			if l := q.Get("nodeLabel"); l != "" && !s.nodeLabels[c+"/"+n][l] {
				continue
			}
			out = append(out, map[string]any{"nodeName": n, "clusterName": c, "isReady": true})
		}
	}
	s.mu.Unlock()
	lo, hi := page(r, len(out))
	s.reply(w, 200, map[string]any{"total": len(out), "list": out[lo:hi]})
}

func (s *Server) labelNodes(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		NodeName    []string `json:"nodeName"`
		NodeLabel   string   `json:"nodeLabel"`
		ClusterName string   `json:"clusterName"`
	}
	if !decode(w, r, &req) {
		return
	}
	if !labelRE.MatchString(req.NodeLabel) || len(req.NodeName) == 0 || req.ClusterName == "" {
		s.fail(w, 422, "nodeLabel may only use letters, numbers, '-' and '.'; nodeName and clusterName are required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	nodes, ok := s.opts.Clusters[req.ClusterName]
	if !ok {
		s.fail(w, 404, "cluster not found")
		return
	}
	for _, n := range req.NodeName {
		found := false
		for _, x := range nodes {
			found = found || x == n
		}
		if !found {
			s.fail(w, 404, "node "+n+" not found in "+req.ClusterName)
			return
		}
	}
	for _, n := range req.NodeName {
		k := req.ClusterName + "/" + n
		if s.nodeLabels[k] == nil {
			s.nodeLabels[k] = map[string]bool{}
		}
		if !s.nodeLabels[k][req.NodeLabel] {
			s.counters.NodeLabels++
		}
		s.nodeLabels[k][req.NodeLabel] = true
	}
	s.reply(w, 200, map[string]any{})
}

func (s *Server) createRepoUser(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct{ User, Password string }
	if !decode(w, r, &req) {
		return
	}
	if req.User == "" || !ValidPassword(req.Password) {
		s.fail(w, 400, "Unsatisfied with constraints of the user creation.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.repoUsers[req.User] {
		s.fail(w, 409, "username conflict")
		return
	}
	s.repoUsers[req.User] = true
	s.counters.RepoUsers++
	s.reply(w, 200, map[string]any{})
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request, u *User) {
	name := r.URL.Query().Get("projectName")
	s.mu.Lock()
	var out []Project
	for _, p := range s.projects {
		if name == "" || p.Name == name {
			out = append(out, *p)
		}
	}
	s.mu.Unlock()
	lo, hi := page(r, len(out))
	s.reply(w, 200, map[string]any{"total": len(out), "list": out[lo:hi]})
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		ProjectName string `json:"projectName"`
		Public      bool   `json:"public"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.ProjectName == "" {
		s.fail(w, 400, "Unsatisfied with constraints of the project creation.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.projects {
		if p.Name == req.ProjectName {
			s.fail(w, 409, "Project name already exists.")
			return
		}
	}
	p := &Project{ID: s.id(), Name: req.ProjectName, Public: req.Public}
	s.projects = append(s.projects, p)
	s.counters.Projects++
	s.reply(w, 201, map[string]any{"projectId": p.ID})
}

func (s *Server) createRegistry(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		RepositoryID string `json:"repositoryId"`
		Address      string `json:"address"`
		User         string `json:"user"`
		Password     string `json:"password"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.RepositoryID == "" || req.Address == "" || req.User == "" || req.Password == "" {
		s.fail(w, 422, "repositoryId, address, user and password are required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.registries[req.RepositoryID]; ok {
		s.fail(w, 409, "repository already exists")
		return
	}
	s.registries[req.RepositoryID] = &Registry{ID: req.RepositoryID, Address: req.Address, User: req.User}
	s.counters.Registries++
	s.reply(w, 200, map[string]any{"repositoryId": req.RepositoryID})
}

func (s *Server) getRegistry(w http.ResponseWriter, r *http.Request, u *User) {
	s.mu.Lock()
	reg, ok := s.registries[r.PathValue("id")]
	var out Registry
	if ok {
		out = *reg
	}
	s.mu.Unlock()
	if !ok {
		s.fail(w, 404, "Not found")
		return
	}
	s.reply(w, 200, out)
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		AppName      string `json:"appName"`
		DeployType   string `json:"deployType"`
		Image        string `json:"image"`
		Version      string `json:"version"`
		RepositoryID string `json:"repositoryId"`
		Port         []int  `json:"port"`
	}
	if !decode(w, r, &req) {
		return
	}
	switch {
	case req.AppName == "" || req.Image == "":
		s.fail(w, 422, "appName and image are required")
		return
	case req.DeployType != "deployment" && req.DeployType != "daemonset":
		s.fail(w, 422, "deployType must be deployment or daemonset")
		return
	case !versionRE.MatchString(req.Version):
		s.fail(w, 422, "version must have the form x.y")
		return
	case len(req.Port) == 0:
		s.fail(w, 422, "port is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.RepositoryID != "" {
		if _, ok := s.registries[req.RepositoryID]; !ok {
			s.fail(w, 422, "repositoryId "+req.RepositoryID+" does not exist")
			return
		}
	}
	for _, a := range s.apps {
		if a.Name == req.AppName && a.Owner == u.ID {
			s.fail(w, 409, "application already exists")
			return
		}
	}
	a := &App{ID: s.id(), Name: req.AppName, DeployType: req.DeployType, Image: req.Image, Version: req.Version, RepositoryID: req.RepositoryID, Port: req.Port, Owner: u.ID}
	s.apps = append(s.apps, a)
	s.counters.Apps++
	s.reply(w, 200, map[string]any{"id": a.ID})
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request, u *User) {
	name := r.URL.Query().Get("appName")
	s.mu.Lock()
	var out []App
	for _, a := range s.apps {
		if name == "" || a.Name == name {
			out = append(out, *a)
		}
	}
	s.mu.Unlock()
	lo, hi := page(r, len(out))
	s.reply(w, 200, map[string]any{"total": len(out), "list": out[lo:hi]})
}

// Snapshot of everything the fake holds.
type Snapshot struct {
	Users         []User
	Businesses    []Business
	Namespaces    map[string][]string
	ClusterLabels map[string][]string
	NodeLabels    map[string][]string
	RepoUsers     []string
	Projects      []Project
	Registries    []Registry
	Apps          []App
	Counters      Counters
}

// Snapshot returns a deep copy.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Snapshot{Namespaces: map[string][]string{}, ClusterLabels: map[string][]string{}, NodeLabels: map[string][]string{}, Counters: s.counters}
	for _, u := range s.users {
		out.Users = append(out.Users, *u)
	}
	for _, b := range s.businesses {
		out.Businesses = append(out.Businesses, *b)
	}
	for c, l := range s.namespaces {
		out.Namespaces[c] = append([]string(nil), l...)
	}
	for c, m := range s.clusterLabels {
		out.ClusterLabels[c] = sortedKeys(m)
	}
	for n, m := range s.nodeLabels {
		out.NodeLabels[n] = sortedKeys(m)
	}
	out.RepoUsers = sortedKeys(s.repoUsers)
	for _, p := range s.projects {
		out.Projects = append(out.Projects, *p)
	}
	for _, k := range sortedKeys(s.registries) {
		out.Registries = append(out.Registries, *s.registries[k])
	}
	for _, a := range s.apps {
		out.Apps = append(out.Apps, *a)
	}
	return out
}

// Duplicates lists objects that share a natural key (there should be none).
func (s *Server) Duplicates() []string {
	snap := s.Snapshot()
	count := map[string]int{}
	for _, u := range snap.Users {
		count["user "+u.Name]++
	}
	for _, b := range snap.Businesses {
		count["business "+b.Name]++
	}
	for _, a := range snap.Apps {
		count[fmt.Sprintf("app %s of user %d", a.Name, a.Owner)]++
	}
	for _, p := range snap.Projects {
		count["project "+p.Name]++
	}
	var out []string
	for k, n := range count {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s (%d)", k, n))
		}
	}
	sort.Strings(out)
	return out
}

// Report summarises the fake for the sandbox's report page.
func (s *Server) Report() any {
	snap := s.Snapshot()
	return map[string]any{"users": len(snap.Users), "businesses": len(snap.Businesses), "apps": len(snap.Apps), "projects": len(snap.Projects),
		"registries": len(snap.Registries), "duplicates": s.Duplicates(), "counters": snap.Counters}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
