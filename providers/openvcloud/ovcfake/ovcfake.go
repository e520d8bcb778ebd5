// Package ovcfake is a fake OpenvCloud cloud API for tests and the sandbox.
//
// It follows the real API: the seed (openvcloud-cloud-api.txt), API-NOTES sections 3
// and 6, and the public sources they name, 0-complexity/openvcloud (release 2.x)
// apps/cloudbroker/base/cloudapi__cloudspaces/specs/actors.spec and
// methodclass/cloudapi_cloudspaces.py, and gig-tech/terraform-provider-ovc's vendored
// github.com/gig-tech/ovc-sdk-go/v3/ovc/client.go and cloudspaces.go. Each route below
// names its source; what no source shows is marked "inference".
//
// Every call is POST /restmachine/cloudapi/<actor>/<method> with parameters in a JSON
// body, a form body or the query; errors are the HTTP status plus the message as a
// JSON string ("Cloud Space with name x already exists.").
//
// Authentication, both forms:
//   - an ItsYou.online-like token endpoint at POST /v1/oauth/access_token (form or query
//     grant_type=client_credentials, client_id, client_secret, response_type=id_token,
//     validity) answering a JWT whose exp claim is now+TokenLifetime and whose
//     username claim is the application's user (Options.AppUsers; raw body,
//     Content-Type application/jwt; {"access_token": jwt} with Options.TokenAsJSON or
//     "Accept: application/json" alone), sent as "Authorization: bearer <jwt>";
//     an unknown or expired JWT gets 401; the caller is then "<username>@itsyouonline";
//   - POST /restmachine/cloudapi/users/authenticate {username, password} answering a
//     session key (JSON string) sent as ?authkey=<key>; an unknown or expired key gets
//     419 "key not valid or expired".
//
// Cloud spaces: create (accountId, location, name and access are required: 400
// "Param with name:access is missing." without access; 404 unknown account, 400 unknown
// location / unknown external network / bad CIDR / bad type / max_num_public_ip 0,
// 403 read-only account, 503 no external IP, 409 duplicate name per account ignoring
// only DESTROYED spaces, so a DELETED one still holds its name), list (without DELETED
// and DESTROYED spaces; includedeleted adds the DELETED ones), get (any status),
// update (name, limits, allowed sizes), delete (idempotent; DELETED, or DESTROYED with
// permanently); accounts/list. New spaces start VIRTUAL and are DEPLOYED after
// Options.DeployDelay.
//
// The _async form: any call with _async=true answers a task GUID (JSON string) at once;
// the call itself runs when Options.AsyncDelay has passed. POST
// /restmachine/system/task/get {taskguid} answers 202 with an empty body while it
// runs, then 200 [true, result] or [false, "error text"]; results are kept for
// Options.ResultTTL (600 s), after which (and for unknown GUIDs) it answers 404.
// Options.RunningAnswer "[]" answers 200 [] while a task runs instead, and
// Options.EarlyTaskNotFound answers 404 to the first poll of each task (both seen by
// ovc-sdk-go's client.go on servers before 2.5.6).
//
// Options.Faults.RateLimit is a server-side token bucket: over it a call gets 429 with
// Retry-After and the message as a JSON string, like every other OpenvCloud error
// (inference: no public source shows the body of the 429 that ovc-sdk-go retries).
//
// A Server is safe for concurrent use.
package ovcfake

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"provision/providers/fault"
)

// Options configure the fake. Credentials may be set here or later with AddApp/AddUser.
type Options struct {
	// Apps are ItsYou.online API keys: client id -> client secret.
	Apps map[string]string
	// AppUsers names the ItsYou.online user that owns an API key (client id ->
	// username, the JWT's username claim); default: the client id.
	AppUsers map[string]string
	// Users are session logins: username -> password.
	Users map[string]string
	// Accounts by id -> name; Locations are location codes.
	Accounts  map[int]string
	Locations []string
	// ExternalNetworks are the ids accepted as externalnetworkId (default: 1).
	ExternalNetworks []int
	// ReadOnlyAccounts answer 403 to creates.
	ReadOnlyAccounts []int
	// NoExternalIPs makes creates answer 503 "No available external IP Addresses".
	NoExternalIPs bool
	// TokenLifetime of JWTs and session keys (default 1h).
	TokenLifetime time.Duration
	// AsyncDelay: how long an _async call runs before its result is ready (default 100ms).
	AsyncDelay time.Duration
	// DeployDelay: VIRTUAL -> DEPLOYED (default 200ms).
	DeployDelay time.Duration
	// ResultTTL: how long a finished task's result is kept (default 600s).
	ResultTTL time.Duration
	// TokenAsJSON answers the token request with {"access_token": jwt}.
	TokenAsJSON bool
	// RunningAnswer is the system/task/get answer while a task runs: "" for 202 with
	// an empty body, "[]" for 200 [] (ovc-sdk-go treats both as running).
	RunningAnswer string
	// EarlyTaskNotFound answers 404 to the first poll of each task (the race of
	// servers before 2.5.6 that ovc-sdk-go works around).
	EarlyTaskNotFound bool
	// Now is the fake's clock (tests); nil means time.Now.
	Now    func() time.Time
	Faults fault.Config
}

// Demo values: the account and location examples/plans/openvcloud.yaml uses, and the
// credentials a bare demo fake accepts (the sandbox replaces them with the plan's).
const (
	DemoAccountID    = 42
	DemoAccountName  = "retail"
	DemoLocation     = "be-gen-1"
	DemoClientID     = "provision-demo"
	DemoClientSecret = "ovc-demo-client-secret"
	DemoUsername     = "ops"
	DemoPassword     = "ovc-demo-password"
)

// DemoOptions seeds exactly the account and location the example plan uses, with the
// demo credentials.
func DemoOptions() Options {
	return Options{
		Accounts:  map[int]string{DemoAccountID: DemoAccountName},
		Locations: []string{DemoLocation},
		Apps:      map[string]string{DemoClientID: DemoClientSecret},
		Users:     map[string]string{DemoUsername: DemoPassword},
	}
}

// Limits are a space's resource limits (-1: unlimited).
type Limits struct {
	Memory      float64 `json:"CU_M"`
	VDisk       int     `json:"CU_D"`
	CPU         int     `json:"CU_C"`
	NetworkPeer int     `json:"CU_NP"`
	PublicIPs   int     `json:"CU_I"`
}

// Space is a cloud space.
type Space struct {
	ID                int
	Name              string
	AccountID         int
	Location          string
	Status            string // VIRTUAL, DEPLOYED, DELETED, DESTROYED
	Access            string // user with full access
	PrivateNetwork    string
	Type              string
	ExternalNetworkID int
	AllowedVMSizes    []int
	Limits            Limits
	Created           time.Time
}

// Counters count calls that change state (and conflicts).
type Counters struct {
	Creates    int // spaces created
	Conflicts  int // 409 answers to creates
	Updates    int
	Deletes    int
	AsyncCalls int // _async calls accepted
	Tokens     int // JWTs issued
	Sessions   int // session keys issued
}

// Snapshot is a deep copy of the fake's objects.
type Snapshot struct {
	Spaces       []Space // by id
	RunningTasks int
	Counters     Counters
}

type cred struct {
	user string
	exp  time.Time
}

type task struct {
	guid   string
	call   string
	params map[string]any
	user   string
	due    time.Time
	ran    bool
	polled bool
	ok     bool
	result any
	expire time.Time
}

// Server is the fake.
type Server struct {
	// Faults wraps the handler: switch faults on and off at run time.
	Faults *fault.Injector
	h      http.Handler

	mu       sync.Mutex
	opts     Options
	nextID   int
	spaces   map[int]*Space
	tasks    map[string]*task
	queue    []*task // not yet run, in due order (AsyncDelay is constant)
	sessions map[string]cred
	jwts     map[string]cred
	counters Counters
}

// New returns a fake with o's objects and credentials.
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
	if o.ResultTTL <= 0 {
		o.ResultTTL = 600 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.ExternalNetworks) == 0 {
		o.ExternalNetworks = []int{1}
	}
	o.Apps = copyMap(o.Apps)
	o.AppUsers = copyMap(o.AppUsers)
	o.Users = copyMap(o.Users)
	accounts := make(map[int]string, len(o.Accounts))
	for k, v := range o.Accounts {
		accounts[k] = v
	}
	o.Accounts = accounts
	s := &Server{opts: o, nextID: 100, spaces: map[int]*Space{}, tasks: map[string]*task{}, sessions: map[string]cred{}, jwts: map[string]cred{}}
	s.Faults = fault.New(o.Faults)
	s.Faults.SetThrottle(throttled)
	m := http.NewServeMux()
	// Seed "JWT" (curl -d grant_type=client_credentials...&response_type=id_token) and
	// ovc-sdk-go v3 client.go jwtFromIYO; the JSON form: API-NOTES 3 (inference).
	m.HandleFunc("/v1/oauth/access_token", s.accessToken)
	// Seed "Username and password" (users/authenticate, ?authkey=); 419: API-NOTES 3.
	m.HandleFunc("POST /restmachine/cloudapi/users/authenticate", s.authenticate)
	// The cloudapi actors: cloudspaces/create|list|get|update|delete from
	// 0-complexity/openvcloud cloudapi__cloudspaces specs/actors.spec and
	// cloudapi_cloudspaces.py; accounts/list from the seed's curl example; _async
	// from the seed's "Calling the api asynchronously".
	m.HandleFunc("POST /restmachine/cloudapi/{actor}/{method}", s.cloudapi)
	// Seed "Calling the api asynchronously" and ovc-sdk-go v3 client.go do() (202 or
	// [] while running, [ok, result] when done, 404 unknown; ResultTTL: API-NOTES 3).
	m.HandleFunc("POST /restmachine/system/task/get", s.taskGet)
	s.h = s.Faults.Wrap(m)
	return s
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// throttled is the rate limit's 429: the message as a JSON string, like every
// OpenvCloud error (inference).
func throttled(w http.ResponseWriter, _ *http.Request, retryAfter time.Duration) {
	fault.WriteJSON(w, http.StatusTooManyRequests, fmt.Sprintf("Too many requests, retry in %d second(s).", int(retryAfter/time.Second)))
}

// ServeHTTP implements http.Handler (with faults).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// AddApp accepts an ItsYou.online client id and secret.
func (s *Server) AddApp(clientID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Apps[clientID] = secret
}

// AddUser accepts a session login.
func (s *Server) AddUser(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Users[username] = password
}

// RevokeCredentials forgets every issued JWT and session key (as after a server-side
// revocation): the next call with one gets 401 or 419.
func (s *Server) RevokeCredentials() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwts = map[string]cred{}
	s.sessions = map[string]cred{}
}

// fail answers the way OpenvCloud does: the status and the message as a JSON string.
func fail(w http.ResponseWriter, status int, msg string) { fault.WriteJSON(w, status, msg) }

// params reads parameters from the query, then a JSON or form body (body wins).
func params(r *http.Request) (map[string]any, error) {
	out := map[string]any{}
	for k, v := range r.URL.Query() {
		if k != "authkey" {
			out[k] = v[0]
		}
	}
	ct := r.Header.Get("Content-Type")
	body := http.MaxBytesReader(nil, r.Body, 1<<20)
	switch {
	case strings.HasPrefix(ct, "application/json"):
		var m map[string]any
		dec := json.NewDecoder(body)
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return nil, errors.New("request body is not a JSON object")
		}
		for k, v := range m {
			out[k] = v
		}
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		r.Body = body
		if err := r.ParseForm(); err != nil {
			return nil, errors.New("request body is not a form")
		}
		for k, v := range r.PostForm {
			out[k] = v[0]
		}
	}
	return out, nil
}

func str(p map[string]any, k string) string {
	switch v := p[k].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// num reads an integer parameter (JSON number or numeric string).
func num(p map[string]any, k string) (int, bool) {
	var f float64
	switch v := p[k].(type) {
	case json.Number:
		x, err := v.Float64()
		if err != nil {
			return 0, false
		}
		f = x
	case float64:
		f = v
	case string:
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, false
		}
		f = x
	default:
		return 0, false
	}
	if f != math.Trunc(f) || math.Abs(f) > 1e12 {
		return 0, false
	}
	return int(f), true
}

func float(p map[string]any, k string) (float64, bool) {
	switch v := p[k].(type) {
	case json.Number:
		x, err := v.Float64()
		return x, err == nil
	case float64:
		return v, true
	case string:
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return x, err == nil
	}
	return 0, false
}

func truthy(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		return strings.EqualFold(t, "true") || t == "1"
	case json.Number:
		return t.String() == "1"
	}
	return false
}

func present(p map[string]any, k string) bool {
	v, ok := p[k]
	return ok && v != nil && v != ""
}

func missing(k string) (int, any) {
	return http.StatusBadRequest, fmt.Sprintf("Param with name:%s is missing.", k)
}

// accessToken is the ItsYou.online-like token endpoint.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.Form // query and form body
	if f.Get("grant_type") != "client_credentials" {
		http.Error(w, "unsupported grant_type", http.StatusBadRequest)
		return
	}
	id, secret := f.Get("client_id"), f.Get("client_secret")
	s.mu.Lock()
	want, ok := s.opts.Apps[id]
	lifetime := s.opts.TokenLifetime
	asJSON := s.opts.TokenAsJSON
	s.mu.Unlock()
	if !ok || id == "" || secret != want {
		http.Error(w, "invalid client_id or client_secret", http.StatusUnauthorized)
		return
	}
	if v, err := strconv.Atoi(f.Get("validity")); err == nil && v > 0 && time.Duration(v)*time.Second < lifetime {
		lifetime = time.Duration(v) * time.Second
	}
	exp := s.opts.Now().Add(lifetime)
	s.mu.Lock()
	username := s.opts.AppUsers[id]
	s.mu.Unlock()
	if username == "" {
		username = id
	}
	claims, _ := json.Marshal(map[string]any{"azp": id, "username": username, "iss": "itsyouonline", "scope": []string{"user:memberof:" + id}, "exp": int64(math.Ceil(float64(exp.UnixNano()) / 1e9))})
	jwt := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES384","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(claims) + "." + base64.RawURLEncoding.EncodeToString([]byte(fault.RandomHex(48)))
	s.mu.Lock()
	// Users who log in through ItsYou.online are known to OpenvCloud as
	// <username>@itsyouonline (ovc-sdk-go v3 client.go NewClient: Access).
	s.jwts[jwt] = cred{user: username + "@itsyouonline", exp: exp}
	s.counters.Tokens++
	s.mu.Unlock()
	if asJSON || r.Header.Get("Accept") == "application/json" {
		fault.WriteJSON(w, http.StatusOK, map[string]any{"access_token": jwt, "token_type": "bearer", "expires_in": int(lifetime.Seconds())})
		return
	}
	w.Header().Set("Content-Type", "application/jwt")
	_, _ = w.Write([]byte(jwt))
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) {
	p, err := params(r)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	for _, k := range []string{"username", "password"} {
		if !present(p, k) {
			st, msg := missing(k)
			fault.WriteJSON(w, st, msg)
			return
		}
	}
	user, pw := str(p, "username"), str(p, "password")
	s.mu.Lock()
	defer s.mu.Unlock()
	if want, ok := s.opts.Users[user]; !ok || pw != want {
		fail(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	key := fault.RandomHex(16)
	s.sessions[key] = cred{user: user, exp: s.opts.Now().Add(s.opts.TokenLifetime)}
	s.counters.Sessions++
	fault.WriteJSON(w, http.StatusOK, key)
}

// caller checks a bearer JWT or an authkey and returns the user; it answers 401 or
// 419 itself when they are not valid.
func (s *Server) caller(w http.ResponseWriter, r *http.Request) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, jwt, _ := strings.Cut(strings.TrimSpace(h), " ")
		if c, ok := s.jwts[strings.TrimSpace(jwt)]; ok && strings.EqualFold(scheme, "bearer") && now.Before(c.exp) {
			return c.user, true
		}
		fail(w, http.StatusUnauthorized, "JWT is invalid or expired")
		return "", false
	}
	if k := r.URL.Query().Get("authkey"); k != "" {
		if c, ok := s.sessions[k]; ok && now.Before(c.exp) {
			return c.user, true
		}
		fail(w, 419, "key not valid or expired")
		return "", false
	}
	fail(w, http.StatusUnauthorized, "Unauthorized")
	return "", false
}

var methods = map[string]bool{"cloudspaces/create": true, "cloudspaces/list": true, "cloudspaces/get": true, "cloudspaces/update": true, "cloudspaces/delete": true, "accounts/list": true}

func (s *Server) cloudapi(w http.ResponseWriter, r *http.Request) {
	user, ok := s.caller(w, r)
	if !ok {
		return
	}
	p, err := params(r)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	call := r.PathValue("actor") + "/" + r.PathValue("method")
	if !methods[call] {
		fail(w, http.StatusNotFound, "Could not find method "+call)
		return
	}
	async := truthy(p["_async"])
	delete(p, "_async")
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	s.advance(now)
	if async {
		t := &task{guid: fault.UUID(), call: call, params: p, user: user, due: now.Add(s.opts.AsyncDelay)}
		s.tasks[t.guid] = t
		s.queue = append(s.queue, t)
		s.counters.AsyncCalls++
		fault.WriteJSON(w, http.StatusOK, t.guid)
		return
	}
	status, result := s.dispatch(call, p, user, now)
	fault.WriteJSON(w, status, result)
}

// advance runs the tasks that are due, deploys spaces and forgets expired results.
// Callers hold s.mu.
func (s *Server) advance(now time.Time) {
	for len(s.queue) > 0 && !s.queue[0].due.After(now) {
		t := s.queue[0]
		s.queue = s.queue[1:]
		status, result := s.dispatch(t.call, t.params, t.user, t.due)
		t.ran, t.ok, t.result = true, status == http.StatusOK, result
		t.expire = t.due.Add(s.opts.ResultTTL)
	}
	for _, sp := range s.spaces {
		if sp.Status == "VIRTUAL" && !now.Before(sp.Created.Add(s.opts.DeployDelay)) {
			sp.Status = "DEPLOYED"
		}
	}
	for g, t := range s.tasks {
		if t.ran && now.After(t.expire) {
			delete(s.tasks, g)
		}
	}
}

// Settle runs every queued _async call and deploys every VIRTUAL space now, as if
// their delays had passed (tests: the time an operator takes between a killed run
// and the next, in which the server finishes what it had accepted).
func (s *Server) Settle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for _, t := range s.queue {
		status, result := s.dispatch(t.call, t.params, t.user, now)
		t.ran, t.ok, t.result = true, status == http.StatusOK, result
		t.expire = now.Add(s.opts.ResultTTL)
	}
	s.queue = nil
	for _, sp := range s.spaces {
		if sp.Status == "VIRTUAL" {
			sp.Status = "DEPLOYED"
		}
	}
}

// dispatch runs one call; callers hold s.mu.
func (s *Server) dispatch(call string, p map[string]any, user string, now time.Time) (int, any) {
	switch call {
	case "cloudspaces/create":
		return s.create(p, user, now)
	case "cloudspaces/list":
		return s.list(p)
	case "cloudspaces/get":
		sp, st, msg := s.space(p)
		if sp == nil {
			return st, msg
		}
		return http.StatusOK, s.spaceJSON(sp, true)
	case "cloudspaces/update":
		return s.update(p)
	case "cloudspaces/delete":
		// cloudapi_cloudspaces.py delete: DESTROYED answers True at once; otherwise
		// DELETED (soft, restorable), or DESTROYED with permanently.
		sp, st, msg := s.space(p)
		if sp == nil {
			return st, msg
		}
		switch {
		case sp.Status == "DESTROYED":
		case truthy(p["permanently"]):
			sp.Status = "DESTROYED"
			s.counters.Deletes++
		case sp.Status != "DELETED":
			sp.Status = "DELETED"
			s.counters.Deletes++
		}
		return http.StatusOK, true
	case "accounts/list":
		ids := make([]int, 0, len(s.opts.Accounts))
		for id := range s.opts.Accounts {
			ids = append(ids, id)
		}
		sort.Ints(ids)
		out := []map[string]any{}
		for _, id := range ids {
			out = append(out, map[string]any{"id": id, "name": s.opts.Accounts[id], "status": "CONFIRMED"})
		}
		return http.StatusOK, out
	}
	return http.StatusNotFound, "Could not find method " + call
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// privateCIDR checks an IPv4 private network of /8 to /30 with no host bits set.
func privateCIDR(v string) bool {
	ip, n, err := net.ParseCIDR(v)
	if err != nil || ip.To4() == nil || !ip.Equal(n.IP) || !ip.IsPrivate() {
		return false
	}
	ones, _ := n.Mask.Size()
	return ones >= 8 && ones <= 30
}

func (s *Server) create(p map[string]any, user string, now time.Time) (int, any) {
	// actors.spec create: accountId, location, name and access have no default.
	for _, k := range []string{"accountId", "location", "name", "access"} {
		if !present(p, k) {
			return missing(k)
		}
	}
	acc, ok := num(p, "accountId")
	if !ok {
		return http.StatusBadRequest, "Param accountId must be an integer."
	}
	name, loc := str(p, "name"), str(p, "location")
	if _, ok := s.opts.Accounts[acc]; !ok {
		return http.StatusNotFound, "Account does not exist"
	}
	if contains(s.opts.ReadOnlyAccounts, acc) {
		return http.StatusForbidden, fmt.Sprintf("User %s has no create rights on account %d", user, acc)
	}
	locOK := false
	for _, l := range s.opts.Locations {
		locOK = locOK || l == loc
	}
	if !locOK {
		return http.StatusBadRequest, fmt.Sprintf("Location %s does not exists", loc)
	}
	ext := 0
	if present(p, "externalnetworkId") {
		if ext, ok = num(p, "externalnetworkId"); !ok || !contains(s.opts.ExternalNetworks, ext) {
			return http.StatusBadRequest, fmt.Sprintf("Could not find externalnetwork with id %s", str(p, "externalnetworkId"))
		}
	}
	// cloudapi_cloudspaces.py _listActiveCloudSpaces: only DESTROYED spaces free a name.
	for _, sp := range s.spaces {
		if sp.AccountID == acc && sp.Name == name && sp.Status != "DESTROYED" {
			s.counters.Conflicts++
			return http.StatusConflict, fmt.Sprintf("Cloud Space with name %s already exists.", name)
		}
	}
	lim := Limits{Memory: -1, VDisk: -1, CPU: -1, NetworkPeer: -1, PublicIPs: -1}
	if present(p, "maxMemoryCapacity") {
		if lim.Memory, ok = float(p, "maxMemoryCapacity"); !ok {
			return http.StatusBadRequest, "Param maxMemoryCapacity must be a number."
		}
	}
	for k, dst := range map[string]*int{"maxVDiskCapacity": &lim.VDisk, "maxCPUCapacity": &lim.CPU, "maxNetworkPeerTransfer": &lim.NetworkPeer, "maxNumPublicIP": &lim.PublicIPs} {
		if present(p, k) {
			if *dst, ok = num(p, k); !ok {
				return http.StatusBadRequest, fmt.Sprintf("Param %s must be an integer.", k)
			}
		}
	}
	if lim.PublicIPs != -1 && lim.PublicIPs < 1 {
		return http.StatusBadRequest, "Cloudspace must have reserve at least 1 Public IP address for its VFW"
	}
	cidr := "192.168.103.0/24"
	if present(p, "privatenetwork") {
		cidr = str(p, "privatenetwork")
	}
	if !privateCIDR(cidr) {
		return http.StatusBadRequest, fmt.Sprintf("privatenetwork %s is not a private IPv4 network between /8 and /30", cidr)
	}
	typ := "routeros"
	if present(p, "type") {
		typ = str(p, "type")
	}
	if typ != "routeros" && typ != "vgw" {
		return http.StatusBadRequest, fmt.Sprintf("type %s is not supported, use routeros or vgw", typ)
	}
	// The ACE's userGroupId is access as given (cloudapi_cloudspaces.py create does
	// not look the user up).
	access := str(p, "access")
	sizes, ok := intList(p["allowedVMSizes"])
	if !ok {
		return http.StatusBadRequest, "Param allowedVMSizes must be a list of integers."
	}
	if s.opts.NoExternalIPs {
		return http.StatusServiceUnavailable, "No available external IP Addresses"
	}
	if ext == 0 {
		ext = s.opts.ExternalNetworks[0]
	}
	sp := &Space{ID: s.nextID, Name: name, AccountID: acc, Location: loc, Status: "VIRTUAL", Access: access, PrivateNetwork: cidr, Type: typ,
		ExternalNetworkID: ext, AllowedVMSizes: sizes, Limits: lim, Created: now}
	s.nextID++
	s.spaces[sp.ID] = sp
	s.counters.Creates++
	return http.StatusOK, sp.ID
}

func intList(v any) ([]int, bool) {
	switch t := v.(type) {
	case nil:
		return nil, true
	case string:
		if strings.TrimSpace(t) == "" || t == "[]" {
			return nil, true
		}
		var out []int
		for _, f := range strings.Split(strings.Trim(t, "[]"), ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return nil, false
			}
			out = append(out, n)
		}
		return out, true
	case []any:
		out := make([]int, 0, len(t))
		for _, e := range t {
			n, ok := num(map[string]any{"v": e}, "v")
			if !ok {
				return nil, false
			}
			out = append(out, n)
		}
		return out, true
	}
	return nil, false
}

// space finds the space of a cloudspaceId parameter.
func (s *Server) space(p map[string]any) (*Space, int, any) {
	if !present(p, "cloudspaceId") {
		st, msg := missing("cloudspaceId")
		return nil, st, msg
	}
	id, ok := num(p, "cloudspaceId")
	if !ok {
		return nil, http.StatusBadRequest, "Param cloudspaceId must be an integer."
	}
	sp, ok := s.spaces[id]
	if !ok {
		return nil, http.StatusNotFound, fmt.Sprintf("Cloud space with id %d does not exists", id)
	}
	return sp, 0, nil
}

func (s *Server) spaceJSON(sp *Space, full bool) map[string]any {
	m := map[string]any{
		"id": sp.ID, "name": sp.Name, "accountId": sp.AccountID, "accountName": s.opts.Accounts[sp.AccountID],
		"location": sp.Location, "status": sp.Status, "description": "",
		"acl":               []map[string]any{{"userGroupId": sp.Access, "type": "U", "right": "ACDRUX", "status": "CONFIRMED", "canBeDeleted": false}},
		"externalnetworkip": fmt.Sprintf("185.15.201.%d", sp.ID%250+1), "creationTime": sp.Created.Unix(), "updateTime": sp.Created.Unix(),
	}
	if full {
		m["resourceLimits"] = sp.Limits
		m["gid"] = 1
		m["publicipaddress"] = m["externalnetworkip"]
		m["privatenetwork"] = sp.PrivateNetwork
		m["type"] = sp.Type
	}
	return m
}

func (s *Server) list(p map[string]any) (int, any) {
	ids := make([]int, 0, len(s.spaces))
	for id := range s.spaces {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	// cloudapi_cloudspaces.py list: the invalid states (DELETED, DESTROYED) are left
	// out; includedeleted takes DELETED off that list.
	out := []map[string]any{}
	all := truthy(p["includedeleted"])
	for _, id := range ids {
		switch sp := s.spaces[id]; {
		case sp.Status == "DESTROYED":
		case sp.Status == "DELETED" && !all:
		default:
			out = append(out, s.spaceJSON(sp, false))
		}
	}
	return http.StatusOK, out
}

func (s *Server) update(p map[string]any) (int, any) {
	sp, st, msg := s.space(p)
	if sp == nil {
		return st, msg
	}
	if sp.Status == "DESTROYED" {
		// inference: cloudapi_cloudspaces.py update does not check the status.
		return http.StatusBadRequest, "Cloud space is destroyed"
	}
	lim := sp.Limits
	var ok bool
	if present(p, "maxMemoryCapacity") {
		if lim.Memory, ok = float(p, "maxMemoryCapacity"); !ok {
			return http.StatusBadRequest, "Param maxMemoryCapacity must be a number."
		}
	}
	for k, dst := range map[string]*int{"maxVDiskCapacity": &lim.VDisk, "maxCPUCapacity": &lim.CPU, "maxNetworkPeerTransfer": &lim.NetworkPeer, "maxNumPublicIP": &lim.PublicIPs} {
		if present(p, k) {
			if *dst, ok = num(p, k); !ok {
				return http.StatusBadRequest, fmt.Sprintf("Param %s must be an integer.", k)
			}
		}
	}
	if lim.PublicIPs != -1 && lim.PublicIPs < 1 {
		return http.StatusBadRequest, "Cloudspace must have reserve at least 1 Public IP address for its VFW"
	}
	name := sp.Name
	if present(p, "name") && str(p, "name") != sp.Name {
		name = str(p, "name")
		for _, o := range s.spaces {
			if o.ID != sp.ID && o.AccountID == sp.AccountID && o.Name == name && o.Status != "DESTROYED" {
				return http.StatusConflict, fmt.Sprintf("Cloud Space with name %s already exists.", name)
			}
		}
	}
	if v, has := p["allowedVMSizes"]; has {
		sizes, ok := intList(v)
		if !ok {
			return http.StatusBadRequest, "Param allowedVMSizes must be a list of integers."
		}
		sp.AllowedVMSizes = sizes
	}
	sp.Name, sp.Limits = name, lim
	s.counters.Updates++
	return http.StatusOK, true
}

func (s *Server) taskGet(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.caller(w, r); !ok {
		return
	}
	p, err := params(r)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if !present(p, "taskguid") {
		st, msg := missing("taskguid")
		fault.WriteJSON(w, st, msg)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.opts.Now())
	t, ok := s.tasks[str(p, "taskguid")]
	first := ok && !t.polled
	if ok {
		t.polled = true
	}
	switch {
	case !ok || (first && s.opts.EarlyTaskNotFound):
		fail(w, http.StatusNotFound, "Task not found or its result expired")
	case !t.ran && s.opts.RunningAnswer == "[]":
		fault.WriteJSON(w, http.StatusOK, []any{})
	case !t.ran:
		w.WriteHeader(http.StatusAccepted)
	default:
		fault.WriteJSON(w, http.StatusOK, []any{t.ok, t.result})
	}
}

// Snapshot returns a deep copy of the spaces and the counters.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.opts.Now())
	out := Snapshot{Counters: s.counters, RunningTasks: len(s.queue)}
	for _, sp := range s.spaces {
		c := *sp
		c.AllowedVMSizes = append([]int(nil), sp.AllowedVMSizes...)
		out.Spaces = append(out.Spaces, c)
	}
	sort.Slice(out.Spaces, func(i, j int) bool { return out.Spaces[i].ID < out.Spaces[j].ID })
	return out
}

// Duplicates lists spaces that are not DESTROYED sharing an account and a name, as
// "account/name (count)".
func (s *Server) Duplicates() []string {
	t := fault.Tally{}
	for _, sp := range s.Snapshot().Spaces {
		if sp.Status != "DESTROYED" {
			t.Add(fmt.Sprintf("%d/%s", sp.AccountID, sp.Name))
		}
	}
	return t.Duplicates()
}

// Check reports duplicates (by account and name among spaces that are not
// DESTROYED); nil means none.
func (s *Server) Check() error {
	return fault.DuplicatesError("duplicate cloud spaces", s.Duplicates())
}

// Report summarises the fake for the sandbox report.
func (s *Server) Report() any {
	snap := s.Snapshot()
	by := map[string]int{}
	for _, sp := range snap.Spaces {
		by[sp.Status]++
	}
	dups := s.Duplicates()
	return map[string]any{"cloud_spaces": len(snap.Spaces), "by_status": by, "duplicates": dups, "running_tasks": snap.RunningTasks, "counters": snap.Counters}
}
