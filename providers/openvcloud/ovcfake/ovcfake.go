// Package ovcfake is a fake OpenvCloud cloud API (POST /restmachine/cloudapi/<actor>/<method>,
// parameters in a JSON or form body), with an ItsYou.online-like JWT endpoint
// (/v1/oauth/access_token), session keys (users/authenticate, ?authkey=, 419 when
// expired), cloud spaces (409 on a duplicate name per account, VIRTUAL until
// deployed) and the _async form with task GUIDs polled through
// /restmachine/system/task/get (202 while running, 200 [ok, result], 404 unknown).
package ovcfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"provision/providers/fault"
)

// Options configure the fake.
type Options struct {
	ClientID, ClientSecret string // ItsYou.online application
	Username, Password     string // session login
	Accounts               map[int]string
	Locations              []string
	TokenLifetime          time.Duration // JWTs and session keys (default 1h)
	AsyncDelay             time.Duration // how long an _async task runs (default 100ms)
	DeployDelay            time.Duration // VIRTUAL -> DEPLOYED (default 200ms)
	Faults                 fault.Config
}

// Demo returns options with the account and locations the example plans use.
func Demo() Options {
	return Options{Accounts: map[int]string{42: "retail"}, Locations: []string{"be-gen-1", "nl-ams-1"}}
}

// Space is a cloud space.
type Space struct {
	ID             int    `json:"id"`
	Name           string `json:"name"`
	AccountID      int    `json:"accountId"`
	Location       string `json:"location"`
	Status         string `json:"status"`
	PrivateNetwork string `json:"privatenetwork"`
	Type           string `json:"type"`
	created        time.Time
}

type task struct {
	done   time.Time
	ok     bool
	result any
	expire time.Time
}

// Counters count calls that change state.
type Counters struct {
	Creates, Conflicts, AsyncTasks, Tokens, Sessions int
}

// Server is the fake; safe for concurrent use.
type Server struct {
	Faults *fault.Injector
	opts   Options
	h      http.Handler

	mu       sync.Mutex
	nextID   int
	spaces   []*Space
	tasks    map[string]*task
	keys     map[string]time.Time
	jwts     map[string]time.Time
	counters Counters
}

// New returns a fake.
func New(o Options) *Server {
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = time.Hour
	}
	if o.AsyncDelay <= 0 {
		o.AsyncDelay = 100 * time.Millisecond
	}
	if o.DeployDelay <= 0 {
		o.DeployDelay = 200 * time.Millisecond
	}
	s := &Server{Faults: fault.New(o.Faults), opts: o, nextID: 100, tasks: map[string]*task{}, keys: map[string]time.Time{}, jwts: map[string]time.Time{}}
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/oauth/access_token", s.accessToken)
	m.HandleFunc("POST /restmachine/cloudapi/users/authenticate", s.authenticate)
	m.HandleFunc("POST /restmachine/cloudapi/{actor}/{method}", s.cloudapi)
	m.HandleFunc("POST /restmachine/system/task/get", s.taskGet)
	s.h = s.Faults.Wrap(m)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// SetCredentials sets the accepted credentials (the sandbox passes the plan's).
func (s *Server) SetCredentials(clientID, clientSecret, user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.ClientID, s.opts.ClientSecret, s.opts.Username, s.opts.Password = clientID, clientSecret, user, password
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers the way OpenvCloud does: the status and the message as a JSON string.
func fail(w http.ResponseWriter, status int, msg string) { writeJSON(w, status, msg) }

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// params reads parameters from a JSON body, a form body or the query.
func params(r *http.Request) (map[string]any, error) {
	out := map[string]any{}
	for k, v := range r.URL.Query() {
		out[k] = v[0]
	}
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/json"):
		var m map[string]any
		if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(&m); err != nil {
			return nil, err
		}
		for k, v := range m {
			out[k] = v
		}
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		for k, v := range r.PostForm {
			out[k] = v[0]
		}
	}
	return out, nil
}

func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		fail(w, 400, "bad form")
		return
	}
	f := r.Form
	s.mu.Lock()
	ok := f.Get("grant_type") == "client_credentials" && f.Get("client_id") == s.opts.ClientID && f.Get("client_secret") == s.opts.ClientSecret && s.opts.ClientID != ""
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(401)
		_, _ = w.Write([]byte("invalid client credentials"))
		return
	}
	exp := time.Now().Add(s.opts.TokenLifetime)
	payload, _ := json.Marshal(map[string]any{"azp": f.Get("client_id"), "exp": exp.Unix(), "iss": "itsyouonline"})
	jwt := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES384","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + random(16)
	s.mu.Lock()
	s.jwts[jwt] = exp
	s.counters.Tokens++
	s.mu.Unlock()
	if strings.Contains(r.Header.Get("Accept"), "application/json") && s.counters.Tokens%2 == 0 {
		writeJSON(w, 200, map[string]string{"access_token": jwt})
		return
	}
	w.Header().Set("Content-Type", "application/jwt")
	_, _ = w.Write([]byte(jwt))
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) {
	p, err := params(r)
	if err != nil {
		fail(w, 400, "bad parameters")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p["username"] != s.opts.Username || p["password"] != s.opts.Password || s.opts.Username == "" {
		fail(w, 401, "Unauthorized")
		return
	}
	key := random(16)
	s.keys[key] = time.Now().Add(s.opts.TokenLifetime)
	s.counters.Sessions++
	writeJSON(w, 200, key)
}

// authorized checks a bearer JWT or an authkey; it answers 401 or 419 itself.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if h := r.Header.Get("Authorization"); h != "" {
		jwt := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(h, "bearer "), "Bearer "))
		if exp, ok := s.jwts[jwt]; ok && now.Before(exp) {
			return true
		}
		fail(w, 401, "Unauthorized: invalid or expired JWT")
		return false
	}
	if k := r.URL.Query().Get("authkey"); k != "" {
		if exp, ok := s.keys[k]; ok && now.Before(exp) {
			return true
		}
		fail(w, 419, "key not valid or expired")
		return false
	}
	fail(w, 401, "Unauthorized")
	return false
}

func num(v any) (int, bool) {
	switch t := v.(type) {
	case float64:
		return int(t), true
	case string:
		n, err := strconv.Atoi(t)
		return n, err == nil
	}
	return 0, false
}

func truthy(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		return strings.EqualFold(t, "true")
	}
	return false
}

func (s *Server) cloudapi(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	p, err := params(r)
	if err != nil {
		fail(w, 400, "bad parameters")
		return
	}
	call := r.PathValue("actor") + "/" + r.PathValue("method")
	var status int
	var result any
	switch call {
	case "cloudspaces/create":
		status, result = s.create(p)
	case "cloudspaces/list":
		status, result = s.list(p)
	case "cloudspaces/get":
		status, result = s.get(p)
	case "cloudspaces/delete":
		status, result = s.delete(p)
	case "accounts/list":
		status, result = 200, s.accounts()
	default:
		fail(w, 404, "no such method "+call)
		return
	}
	if truthy(p["_async"]) {
		guid := fmt.Sprintf("%s-%s-%s", random(4), random(2), random(6))
		s.mu.Lock()
		s.tasks[guid] = &task{done: time.Now().Add(s.opts.AsyncDelay), ok: status == 200, result: result, expire: time.Now().Add(s.opts.AsyncDelay + 600*time.Second)}
		s.counters.AsyncTasks++
		s.mu.Unlock()
		writeJSON(w, 200, guid)
		return
	}
	writeJSON(w, status, result)
}

func (s *Server) create(p map[string]any) (int, any) {
	for _, k := range []string{"accountId", "location", "name", "access"} {
		if _, ok := p[k]; !ok {
			return 400, fmt.Sprintf("Param with name:%s is missing.", k)
		}
	}
	acc, ok := num(p["accountId"])
	if !ok {
		return 400, "Param accountId must be an integer."
	}
	name, _ := p["name"].(string)
	loc, _ := p["location"].(string)
	cidr := "192.168.103.0/24"
	if v, ok := p["privatenetwork"].(string); ok && v != "" {
		cidr = v
	}
	typ := "routeros"
	if v, ok := p["type"].(string); ok && v != "" {
		typ = v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.opts.Accounts[acc]; !ok {
		return 404, fmt.Sprintf("Account with id %d does not exist", acc)
	}
	okLoc := false
	for _, l := range s.opts.Locations {
		okLoc = okLoc || l == loc
	}
	if !okLoc {
		return 400, fmt.Sprintf("Location %s does not exist", loc)
	}
	if _, _, err := net.ParseCIDR(cidr); err != nil {
		return 400, "privatenetwork is not a valid CIDR"
	}
	if typ != "routeros" && typ != "vgw" {
		return 400, "type must be routeros or vgw"
	}
	for _, sp := range s.spaces {
		if sp.AccountID == acc && sp.Name == name && sp.Status != "DESTROYED" {
			s.counters.Conflicts++
			return 409, fmt.Sprintf("Cloud Space with name %s already exists.", name)
		}
	}
	sp := &Space{ID: s.nextID, Name: name, AccountID: acc, Location: loc, Status: "VIRTUAL", PrivateNetwork: cidr, Type: typ, created: time.Now()}
	s.nextID++
	s.spaces = append(s.spaces, sp)
	s.counters.Creates++
	return 200, sp.ID
}

func (s *Server) refresh() {
	for _, sp := range s.spaces {
		if sp.Status == "VIRTUAL" && time.Since(sp.created) > s.opts.DeployDelay {
			sp.Status = "DEPLOYED"
		}
	}
}

func (s *Server) list(p map[string]any) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh()
	out := []Space{}
	for _, sp := range s.spaces {
		if sp.Status != "DESTROYED" || truthy(p["includedeleted"]) {
			out = append(out, *sp)
		}
	}
	return 200, out
}

func (s *Server) get(p map[string]any) (int, any) {
	id, _ := num(p["cloudspaceId"])
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh()
	for _, sp := range s.spaces {
		if sp.ID == id {
			return 200, *sp
		}
	}
	return 404, "Cloud space not found"
}

func (s *Server) delete(p map[string]any) (int, any) {
	id, _ := num(p["cloudspaceId"])
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.spaces {
		if sp.ID == id {
			sp.Status = "DESTROYED"
		}
	}
	return 200, true
}

func (s *Server) accounts() any {
	var out []map[string]any
	for id, name := range s.opts.Accounts {
		out = append(out, map[string]any{"id": id, "name": name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["id"].(int) < out[j]["id"].(int) })
	return out
}

func (s *Server) taskGet(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	p, err := params(r)
	if err != nil {
		fail(w, 400, "bad parameters")
		return
	}
	guid, _ := p["taskguid"].(string)
	s.mu.Lock()
	t, ok := s.tasks[guid]
	s.mu.Unlock()
	now := time.Now()
	switch {
	case !ok || now.After(t.expire):
		fail(w, 404, "task not found")
	case now.Before(t.done):
		w.WriteHeader(http.StatusAccepted)
	default:
		writeJSON(w, 200, []any{t.ok, t.result})
	}
}

// Snapshot returns the cloud spaces and counters.
func (s *Server) Snapshot() ([]Space, Counters) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh()
	out := make([]Space, len(s.spaces))
	for i, sp := range s.spaces {
		out[i] = *sp
	}
	return out, s.counters
}

// Duplicates lists live cloud spaces sharing an account and a name.
func (s *Server) Duplicates() []string {
	spaces, _ := s.Snapshot()
	n := map[string]int{}
	for _, sp := range spaces {
		if sp.Status != "DESTROYED" {
			n[fmt.Sprintf("%d/%s", sp.AccountID, sp.Name)]++
		}
	}
	var out []string
	for k, c := range n {
		if c > 1 {
			out = append(out, fmt.Sprintf("%s (%d)", k, c))
		}
	}
	sort.Strings(out)
	return out
}

// Report summarises the fake for the sandbox.
func (s *Server) Report() any {
	spaces, c := s.Snapshot()
	return map[string]any{"cloud_spaces": len(spaces), "duplicates": s.Duplicates(), "counters": c}
}

var _ = url.Values{}
