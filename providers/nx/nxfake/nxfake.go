// Package nxfake is a fake Nx Cloud (the cloud DB, "cdb") and a farm of fake Nx
// Witness servers (REST v3), following the real APIs as API-NOTES sections 1, 2 and 6
// describe them (each route cites its source next to it; inferences say so):
//
//   - cloud: OAuth2 password and refresh_token grants (tokens "nxcdb-...", expires_in
//     sometimes a number, sometimes a string), a bind that creates a NEW cloud system
//     on every call (status notActivated, random auth key), so a blind retry leaks an
//     orphan; system list ({systems:[...]} or a bare array), get, delete (unbind); a
//     removed system answers 403 to both; shares as upserts (accessRole none
//     removes) that come back with the VMS ids the cloud fills in; the partners'
//     organization endpoints (creates under v2, v3 and v4; lists paged in DRF's
//     {count, next, previous, results} with absolute next links, items with
//     system_state); the {errorClass, resultCode, errorDetail, errorText} envelope,
//     also in 2xx answers; an optional rate limit (Options.Faults.RateLimit) answered
//     in DRF's throttle shape on /partners and with tooManyRequests on /cdb.
//   - farm: any number of servers under /servers/{serverKey}/ (or /{serverKey}/ when
//     mounted behind a prefix that is stripped), each created factory-new (admin/admin,
//     not set up) on first contact unless Options.PreSetUp lists it; sessions
//     "vms-..." that expire with x-auth-result: Auth_WrongSessionToken; setup allowed
//     once; cloud bind checked against the cloud (the auth key must match, then the
//     cloud system becomes activated; from version 6.1 organizationId too); the
//     {error, errorId, errorString} envelope, optionally the old {error:"0",
//     reply:{...}} success wrapper. The farm is never rate limited.
//
// A World is safe for concurrent use. Its handlers are wrapped by fault injectors
// (random faults) and by scripted failures (FailNext: an exact answer for the next
// matching requests), so tests can lose exactly one bind answer.
package nxfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"provision/providers/fault"
)

// Options configure a World.
type Options struct {
	// Accounts are the cloud accounts: email -> password.
	Accounts map[string]string
	// Organizations lists the organization ids the partners endpoints know; nil
	// accepts any id.
	Organizations []string
	// TokenLifetime of cloud access tokens (default 1h).
	TokenLifetime time.Duration
	// SessionLifetime of server sessions (default 1h).
	SessionLifetime time.Duration
	// Now is the clock token and session lifetimes run on (tests); nil means time.Now.
	Now func() time.Time
	// PreSetUp lists server keys (host:port) that exist already set up, with
	// ServerAdminPassword as their admin password. Other servers are factory-new
	// (admin/admin, not set up) on first contact.
	PreSetUp            []string
	ServerAdminPassword string
	// BareArrayList makes GET /cdb/systems answer a bare array instead of {systems: [...]}.
	BareArrayList bool
	// FallbackPaths makes the cloud answer 404 on the forms a client tries first
	// (POST /cdb/systems/bind and /cdb/systems/{id}/users), so that only the alternate
	// forms (/cdb/system/bind, /cdb/v0/systems/{id}/users) work.
	FallbackPaths bool
	// ExpiredSessionStatus is the status of an answer to an expired or unknown server
	// session: 401 (default) or 403, always with x-auth-result: Auth_WrongSessionToken.
	ExpiredSessionStatus int
	// LockoutAfter locks a server's login after that many wrong passwords in a row
	// (403 "Too many attempts"); 0 never locks.
	LockoutAfter int
	// WrapReplies wraps server success answers in the old {error:"0", reply:{...}} form.
	WrapReplies bool
	// Faults are random faults for the cloud and, unless FarmFaults is set, the farm
	// (one injector for the whole world).
	Faults fault.Config
	// FarmFaults, when set, gives the farm its own injector. The farm never has the
	// cloud's rate limit.
	FarmFaults *fault.Config
	// PageSize of the partners API's lists (default 50; the real page size is not
	// published: inference).
	PageSize int
	// ServerVersion is what servers report in system/info (default "6.0.1.39873");
	// SetServerVersion changes one server's. From 6.1 on, the cloud part of setup and
	// cloud/bind carry organizationId (nx_open CloudAuthBase in 6.1; 6.0's
	// CloudSystemAuth has no such field, so a 6.0 server ignores it).
	ServerVersion string
	// LogRequests keeps "METHOD path" of every request for Requests (tests that
	// count requests; off by default, so that a long sandbox run does not grow).
	LogRequests bool
}

// CloudSystem is one cloud system.
type CloudSystem struct {
	ID, Name, Customization, Owner, Organization string
	// Status: notActivated until a server binds it, then activated.
	Status string
	// AuthKey is known to the cloud only; it is never listed.
	AuthKey string `json:"-"`
	// Server is the key of the server bound to it ("" while notActivated).
	Server string
}

// Share is one account's access to a cloud system.
type Share struct {
	Email, AccessRole, UserRoleID, CustomPermissions, VMSUserID string
	Enabled                                                     bool
}

// Server is one fake Nx Witness server.
type Server struct {
	Key, Name, LocalID string
	SetUp              bool
	// CloudID is the cloud system the server is bound to ("" when not bound).
	CloudID, CloudOwner string
	AdminPassword       string `json:"-"`
	Settings            map[string]any
	// Version is what system/info reports.
	Version string
	// CloudOrganization is the organizationId the server was given with its cloud
	// credentials (6.1 and later only).
	CloudOrganization string

	sessions map[string]time.Time
	failures int // wrong passwords in a row
}

// Counters count state-changing and authentication calls.
type Counters struct {
	// Binds are cloud systems created (by either bind form or the partners endpoint).
	Binds int
	// Deletes are cloud systems removed (DELETE /cdb/systems/{id} or a server unbind).
	Deletes int
	// Setups are servers set up; CloudBinds are servers bound by /system/cloud/bind
	// (a repeated bind to the same system is not counted); Unbinds are servers unbound.
	Setups, CloudBinds, Unbinds int
	// SharesCreated, SharesUpdated (an upsert that changed something or not) and
	// SharesRemoved (accessRole none or DELETE).
	SharesCreated, SharesUpdated, SharesRemoved int
	SettingsPatches                             int
	TokensIssued, Logins, FailedLogins          int
}

// Failure is a scripted answer for the next requests that match Method and Path.
type Failure struct {
	// Method matches the request method ("" matches any).
	Method string
	// Path matches when the request path contains it, e.g. "/cdb/systems/bind" or
	// "/rest/v3/system/setup".
	Path string
	// Times is how many requests fail (default 1).
	Times int
	// Lose applies the request and then closes the connection without an answer
	// (the change happened, the answer is lost). Otherwise the answer below is sent.
	Lose bool
	// Applied applies the request and then sends the error answer below instead of
	// the real one (a server that did the work and reported a failure).
	Applied bool
	// Status, Code and Text make the error answer in the side's envelope (cloud:
	// resultCode/errorText; server: errorId/errorString).
	Status     int
	Code, Text string
	// RetryAfter, when set, is sent as Retry-After (seconds).
	RetryAfter time.Duration
}

// World is the fake cloud plus its server farm. Safe for concurrent use.
type World struct {
	// Faults injects random faults into the cloud (and the farm unless FarmFaults
	// differs); FarmFaults is the farm's injector (the same as Faults by default).
	Faults     *fault.Injector
	FarmFaults *fault.Injector

	opts Options

	mu       sync.Mutex
	tokens   map[string]tokenInfo
	refresh  map[string]string // refresh token -> email
	systems  map[string]*CloudSystem
	removed  map[string]bool // ids of removed systems (they answer 403)
	requests []string        // "METHOD path" of every request, in order
	order    []string        // system ids in creation order
	shares   map[string]map[string]*Share
	servers  map[string]*Server
	counters Counters
	script   []*Failure
	answers  int // answers given, alternates the forms of some fields

	cloud, farm http.Handler
}

type tokenInfo struct {
	email  string
	expiry time.Time
}

// New returns a world.
func New(o Options) *World {
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = time.Hour
	}
	if o.SessionLifetime <= 0 {
		o.SessionLifetime = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PageSize <= 0 {
		o.PageSize = 50
	}
	if o.ServerVersion == "" {
		o.ServerVersion = "6.0.1.39873"
	}
	if o.ExpiredSessionStatus == 0 {
		o.ExpiredSessionStatus = http.StatusUnauthorized
	}
	accounts := map[string]string{}
	for k, v := range o.Accounts {
		accounts[k] = v
	}
	o.Accounts = accounts
	w := &World{opts: o, tokens: map[string]tokenInfo{}, refresh: map[string]string{},
		systems: map[string]*CloudSystem{}, removed: map[string]bool{}, shares: map[string]map[string]*Share{}, servers: map[string]*Server{}}
	w.Faults = fault.New(o.Faults)
	w.FarmFaults = w.Faults
	if o.FarmFaults != nil {
		w.FarmFaults = fault.New(*o.FarmFaults)
	}
	for _, k := range o.PreSetUp {
		w.servers[k] = &Server{Key: k, Name: k, SetUp: true, LocalID: fault.UUID(), AdminPassword: o.ServerAdminPassword,
			Settings: map[string]any{}, sessions: map[string]time.Time{}}
	}
	w.Faults.SetThrottle(throttled)
	w.cloud = w.record(w.Faults.Wrap(w.scripted(cloudEnvelope, w.cloudMux())))
	// Servers on the customers' premises are not behind the cloud's rate limit.
	w.farm = w.record(w.FarmFaults.WrapUnlimited(w.scripted(serverEnvelope, http.HandlerFunc(w.serveFarm))))
	return w
}

// Cloud is the Nx Cloud handler (paths /cdb/..., /partners/...).
func (w *World) Cloud() http.Handler { return w.cloud }

// Farm is the handler of every fake server, under /servers/{serverKey}/rest/v3/...
// (or /{serverKey}/rest/v3/... behind a stripped prefix).
func (w *World) Farm() http.Handler { return w.farm }

// ServeHTTP serves the cloud, and the farm under /servers/: one listener for both.
func (w *World) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, ServersPrefix) {
		w.farm.ServeHTTP(rw, r)
		return
	}
	w.cloud.ServeHTTP(rw, r)
}

// ServersPrefix is the farm's path prefix.
const ServersPrefix = "/servers/"

// ServerKey is the farm's key for a server URL: its host and port ("10.0.0.5:7001").
func ServerKey(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return strings.Trim(rawURL, "/")
	}
	return u.Host
}

// ServerPath is the farm path that plays the server at rawURL:
// https://10.0.0.5:7001 -> /servers/10.0.0.5:7001.
func ServerPath(rawURL string) string { return ServersPrefix + ServerKey(rawURL) }

// ServerURLFor maps a server URL to the farm served at base (the URL of a listener
// serving this World, or its Farm handler at base's path): base + ServerPath(rawURL).
func (w *World) ServerURLFor(base, rawURL string) string {
	return strings.TrimRight(base, "/") + ServerPath(rawURL)
}

// AddAccount adds (or resets) a cloud account.
func (w *World) AddAccount(email, password string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.opts.Accounts[email] = password
}

// AddServer adds (or replaces) a set-up server with this admin password and no
// cloud binding.
func (w *World) AddServer(key, adminPassword string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.servers[key] = &Server{Key: key, Name: key, SetUp: true, LocalID: fault.UUID(), AdminPassword: adminPassword,
		Settings: map[string]any{}, sessions: map[string]time.Time{}}
}

// SetServerVersion sets the version a server reports (creating it factory-new if
// it does not exist yet).
func (w *World) SetServerVersion(key, version string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.server(key).Version = version
}

// record logs every request ("METHOD path") for request counts.
func (w *World) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.opts.LogRequests {
			w.mu.Lock()
			w.requests = append(w.requests, r.Method+" "+r.URL.Path)
			w.mu.Unlock()
		}
		h.ServeHTTP(rw, r)
	})
}

// Requests returns (with Options.LogRequests) "METHOD path" of every request so far, in arrival order (the farm's
// paths start with the server's key, e.g. /servers/10.0.0.1:7001/rest/v3/system/info).
func (w *World) Requests() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.requests...)
}

// ResetRequests forgets the requests logged so far.
func (w *World) ResetRequests() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.requests = nil
}

// ExpireTokens ends every cloud token and server session now (the next call gets the
// expired answer).
func (w *World) ExpireTokens() {
	w.mu.Lock()
	defer w.mu.Unlock()
	past := w.opts.Now().Add(-time.Second)
	for k, t := range w.tokens {
		t.expiry = past
		w.tokens[k] = t
	}
	for _, s := range w.servers {
		for k := range s.sessions {
			s.sessions[k] = past
		}
	}
}

// FailNext scripts failures for the next matching requests (cloud or farm).
func (w *World) FailNext(f Failure) {
	if f.Times <= 0 {
		f.Times = 1
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.script = append(w.script, &f)
}

// ClearFailures drops every scripted failure not used yet.
func (w *World) ClearFailures() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.script = nil
}

type envelope func(rw http.ResponseWriter, status int, code, text string)

// scripted answers requests that match a scripted failure.
func (w *World) scripted(env envelope, h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		var hit *Failure
		for i, f := range w.script {
			if (f.Method == "" || f.Method == r.Method) && strings.Contains(r.URL.Path, f.Path) {
				c := *f
				hit = &c
				f.Times--
				if f.Times <= 0 {
					w.script = append(w.script[:i], w.script[i+1:]...)
				}
				break
			}
		}
		w.mu.Unlock()
		switch {
		case hit == nil:
			h.ServeHTTP(rw, r)
		case hit.Lose:
			h.ServeHTTP(httptest.NewRecorder(), r) // applied ...
			fault.HangUp(rw)                       // ... and the answer is lost
		default:
			if hit.Applied {
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
			if hit.RetryAfter > 0 {
				rw.Header().Set("Retry-After", strconv.Itoa(int((hit.RetryAfter+time.Second-1)/time.Second)))
			}
			env(rw, hit.Status, hit.Code, hit.Text)
		}
	})
}

// decode reads a JSON body (at most 1 MiB) into v.
func decode(rw http.ResponseWriter, r *http.Request, v any) error {
	return json.NewDecoder(http.MaxBytesReader(rw, r.Body, 1<<20)).Decode(v)
}

// Snapshot is a deep copy of everything the world holds.
type Snapshot struct {
	// Systems in creation order (deleted ones are gone).
	Systems []CloudSystem
	// Shares by cloud system id, sorted by email.
	Shares map[string][]Share
	// Servers sorted by key.
	Servers  []Server
	Counters Counters
}

// System returns the snapshot's cloud system with this id.
func (s Snapshot) System(id string) (CloudSystem, bool) {
	return fault.Find(s.Systems, func(cs CloudSystem) bool { return cs.ID == id })
}

// Server returns the snapshot's server with this key.
func (s Snapshot) Server(key string) (Server, bool) {
	return fault.Find(s.Servers, func(srv Server) bool { return srv.Key == key })
}

// Snapshot returns a deep copy of the world.
func (w *World) Snapshot() Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := Snapshot{Shares: map[string][]Share{}, Counters: w.counters}
	for _, id := range w.order {
		if cs, ok := w.systems[id]; ok {
			s.Systems = append(s.Systems, *cs)
		}
	}
	for id, m := range w.shares {
		for _, e := range fault.SortedKeys(m) {
			s.Shares[id] = append(s.Shares[id], *m[e])
		}
	}
	for _, k := range fault.SortedKeys(w.servers) {
		srv := *w.servers[k]
		srv.sessions = nil
		srv.Settings = make(map[string]any, len(w.servers[k].Settings))
		for sk, sv := range w.servers[k].Settings {
			srv.Settings[sk] = sv
		}
		s.Servers = append(s.Servers, srv)
	}
	return s
}

// Check compares the world with what a plan wanted (cloud system name -> server key):
// duplicates are names held by more than one cloud system, orphans are cloud systems
// never activated (no server bound), missing are wanted names with no activated cloud
// system bound to their server. Each list is sorted.
func (w *World) Check(want map[string]string) (duplicates, orphans, missing []string) {
	snap := w.Snapshot()
	byName := map[string][]CloudSystem{}
	for _, cs := range snap.Systems {
		byName[cs.Name] = append(byName[cs.Name], cs)
		if cs.Server == "" || cs.Status != "activated" {
			orphans = append(orphans, fmt.Sprintf("%s (%s, %s)", cs.Name, cs.ID, cs.Status))
		}
	}
	for name, l := range byName {
		if len(l) > 1 {
			duplicates = append(duplicates, fmt.Sprintf("%s (%d cloud systems)", name, len(l)))
		}
	}
	for name, key := range want {
		ok := false
		for _, cs := range byName[name] {
			if cs.Server == key && cs.Status == "activated" {
				ok = true
			}
		}
		if !ok {
			missing = append(missing, name)
		}
	}
	sort.Strings(duplicates)
	sort.Strings(orphans)
	sort.Strings(missing)
	return duplicates, orphans, missing
}

// Report summarises the world for the sandbox's report page.
func (w *World) Report() any {
	snap := w.Snapshot()
	dups, orphans, _ := w.Check(nil)
	shares := 0
	for _, l := range snap.Shares {
		shares += len(l)
	}
	setUp, bound := 0, 0
	for _, s := range snap.Servers {
		if s.SetUp {
			setUp++
		}
		if s.CloudID != "" {
			bound++
		}
	}
	return map[string]any{"cloud_systems": len(snap.Systems), "servers": len(snap.Servers), "servers_set_up": setUp,
		"servers_bound": bound, "shares": shares, "duplicates": dups, "orphans": orphans, "counters": snap.Counters}
}
