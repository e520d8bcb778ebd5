// Package nxfake is a fake Nx Cloud (cloud DB, "cdb") and a farm of fake Nx Witness
// servers (REST v3), following the real APIs as described in API-NOTES: OAuth2
// password tokens that expire, a bind that creates a NEW cloud system on every
// call (so a blind retry leaks an orphan), upsert shares, server sessions that
// expire with x-auth-result: Auth_WrongSessionToken, setup allowed once, and the
// documented error envelopes. The farm serves any number of servers under
// /{serverKey}/rest/v3/...; a server is created factory-new on first contact.
package nxfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"provision/providers/fault"
)

// Options configure a World.
type Options struct {
	// Accounts are cloud accounts: email -> password.
	Accounts map[string]string
	// TokenLifetime of cloud tokens (default 1h); SessionLifetime of server sessions (default 1h).
	TokenLifetime   time.Duration
	SessionLifetime time.Duration
	// PreSetUp lists server keys that exist already set up (mode existing), with
	// ServerAdminPassword as their admin password.
	PreSetUp            []string
	ServerAdminPassword string
	// BareArrayList makes GET /cdb/systems answer a bare array instead of {systems: [...]}.
	BareArrayList bool
	Faults        fault.Config
}

// CloudSystem is one cloud system.
type CloudSystem struct {
	ID, Name, Customization, Owner, Status, Organization string
	AuthKey                                              string `json:"-"`
	// Server is the key of the server bound to it ("" while notActivated).
	Server string
}

// Share is one user's access to a cloud system.
type Share struct {
	Email, AccessRole, UserRoleID, CustomPermissions, VMSUserID string
	Enabled                                                     bool
}

// Server is one fake Nx Witness server.
type Server struct {
	Key, Name, LocalID, CloudID, CloudOwner string
	SetUp                                   bool
	AdminPassword                           string `json:"-"`
	Settings                                map[string]any
	sessions                                map[string]time.Time
}

// Counters of state-changing calls.
type Counters struct {
	Binds, Setups, CloudBinds, SharesCreated, SharesUpdated, Deletes, TokensIssued, Logins int
}

// World is the fake cloud plus its servers. Safe for concurrent use.
type World struct {
	Faults *fault.Injector
	opts   Options

	mu       sync.Mutex
	tokens   map[string]tokenInfo
	refresh  map[string]string // refresh token -> email
	systems  map[string]*CloudSystem
	order    []string
	shares   map[string]map[string]*Share
	servers  map[string]*Server
	counters Counters

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
	w := &World{Faults: fault.New(o.Faults), opts: o, tokens: map[string]tokenInfo{}, refresh: map[string]string{},
		systems: map[string]*CloudSystem{}, shares: map[string]map[string]*Share{}, servers: map[string]*Server{}}
	for _, k := range o.PreSetUp {
		w.servers[k] = &Server{Key: k, Name: k, SetUp: true, LocalID: uuid(), AdminPassword: o.ServerAdminPassword, Settings: map[string]any{}, sessions: map[string]time.Time{}}
	}
	cm := http.NewServeMux()
	cm.HandleFunc("POST /cdb/oauth2/token", w.token)
	cm.HandleFunc("POST /cdb/systems/bind", w.authed(w.bind))
	cm.HandleFunc("POST /cdb/system/bind", w.authed(w.bind))
	cm.HandleFunc("POST /partners/api/v3/cloud_systems/", w.authed(w.orgBind))
	cm.HandleFunc("GET /partners/api/v2/organizations/{org}/cloud_systems/", w.authed(w.orgList))
	cm.HandleFunc("GET /cdb/systems", w.authed(w.list))
	cm.HandleFunc("GET /cdb/systems/{id}", w.authed(w.getSystem))
	cm.HandleFunc("DELETE /cdb/systems/{id}", w.authed(w.deleteSystem))
	for _, p := range []string{"/cdb/systems/{id}/users", "/cdb/v0/systems/{id}/users"} {
		cm.HandleFunc("GET "+p, w.authed(w.listShares))
		cm.HandleFunc("POST "+p, w.authed(w.share))
		cm.HandleFunc("DELETE "+p+"/{email}", w.authed(w.unshare))
	}
	w.cloud = w.Faults.Wrap(cm)
	w.farm = w.Faults.Wrap(http.HandlerFunc(w.serveFarm))
	return w
}

// Cloud is the Nx Cloud handler.
func (w *World) Cloud() http.Handler { return w.cloud }

// Farm is the handler of every fake server, under /{serverKey}/rest/v3/...
func (w *World) Farm() http.Handler { return w.farm }

// AddAccount adds (or resets) a cloud account.
func (w *World) AddAccount(email, password string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.opts.Accounts == nil {
		w.opts.Accounts = map[string]string{}
	}
	w.opts.Accounts[email] = password
}

// SetServerAdminPassword sets the admin password of pre-set-up servers created later.
func (w *World) SetServerAdminPassword(p string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.opts.ServerAdminPassword = p
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func randToken(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(v)
}

// cloudError writes the cdb error envelope.
func cloudError(rw http.ResponseWriter, status int, class, code, text string) {
	writeJSON(rw, status, map[string]any{"errorClass": class, "resultCode": code, "errorDetail": fmt.Sprint(status), "errorText": text})
}

func decode(r *http.Request, v any) error {
	return json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(v)
}

func (w *World) token(rw http.ResponseWriter, r *http.Request) {
	var req struct {
		GrantType    string `json:"grant_type"`
		Username     string `json:"username"`
		Password     string `json:"password"`
		RefreshToken string `json:"refresh_token"`
		ClientID     string `json:"client_id"`
	}
	if err := decode(r, &req); err != nil {
		cloudError(rw, 400, "badRequest", "invalidFormat", "request body is not JSON")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var email string
	switch req.GrantType {
	case "password":
		if pw, ok := w.opts.Accounts[req.Username]; !ok || pw != req.Password {
			cloudError(rw, 401, "unauthorized", "badUsername", "Wrong username or password")
			return
		}
		email = req.Username
	case "refresh_token":
		e, ok := w.refresh[req.RefreshToken]
		if !ok {
			cloudError(rw, 401, "unauthorized", "notAuthorized", "Unknown refresh token")
			return
		}
		email = e
	default:
		cloudError(rw, 400, "badRequest", "invalidFormat", "unsupported grant_type")
		return
	}
	tok := randToken("nxcdb-")
	ref := randToken("nxcdb-refresh-")
	exp := time.Now().Add(w.opts.TokenLifetime)
	w.tokens[tok] = tokenInfo{email: email, expiry: exp}
	w.refresh[ref] = email
	w.counters.TokensIssued++
	secs := int(w.opts.TokenLifetime / time.Second)
	var expiresIn any = secs
	if w.counters.TokensIssued%2 == 0 {
		expiresIn = fmt.Sprint(secs) // seen as a string in some answers
	}
	writeJSON(rw, 200, map[string]any{"access_token": tok, "refresh_token": ref, "expires_in": expiresIn,
		"expires_at": exp.UnixMilli(), "token_type": "bearer", "scope": "cloudSystemId=*"})
}

type handler func(rw http.ResponseWriter, r *http.Request, email string)

func (w *World) authed(h handler) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.mu.Lock()
		ti, known := w.tokens[tok]
		w.mu.Unlock()
		if !ok || !known || time.Now().After(ti.expiry) {
			cloudError(rw, 401, "unauthorized", "notAuthorized", "Token is missing, unknown or expired")
			return
		}
		h(rw, r, ti.email)
	}
}

func systemJSON(s *CloudSystem, withKey bool) map[string]any {
	m := map[string]any{"id": s.ID, "name": s.Name, "customization": s.Customization, "ownerAccountEmail": s.Owner,
		"status": s.Status, "stateOfHealth": map[bool]string{true: "online", false: "offline"}[s.Status == "activated"], "accessRole": "owner"}
	if s.Organization != "" {
		m["organizationId"] = s.Organization
	}
	if withKey {
		m["authKey"] = s.AuthKey
	}
	return m
}

func (w *World) newSystem(name, customization, owner, org string) *CloudSystem {
	s := &CloudSystem{ID: uuid(), Name: name, Customization: customization, Owner: owner, Status: "notActivated", AuthKey: uuid(), Organization: org}
	w.systems[s.ID] = s
	w.order = append(w.order, s.ID)
	w.counters.Binds++
	return s
}

func (w *World) bind(rw http.ResponseWriter, r *http.Request, email string) {
	var req struct{ Name, Customization, Opaque string }
	if err := decode(r, &req); err != nil || req.Name == "" {
		cloudError(rw, 400, "badRequest", "invalidFormat", "name is required")
		return
	}
	if req.Customization == "" {
		req.Customization = "default"
	}
	w.mu.Lock()
	s := w.newSystem(req.Name, req.Customization, email, "")
	out := systemJSON(s, true)
	w.mu.Unlock()
	writeJSON(rw, 200, out)
}

func (w *World) orgBind(rw http.ResponseWriter, r *http.Request, email string) {
	var req struct{ Name, Customization, Organization string }
	if err := decode(r, &req); err != nil || req.Name == "" || req.Organization == "" {
		cloudError(rw, 400, "badRequest", "invalidFormat", "name and organization are required")
		return
	}
	w.mu.Lock()
	s := w.newSystem(req.Name, req.Customization, email, req.Organization)
	out := systemJSON(s, true)
	w.mu.Unlock()
	writeJSON(rw, 201, out)
}

func (w *World) visible(email string) []map[string]any {
	var out []map[string]any
	for _, id := range w.order {
		if s, ok := w.systems[id]; ok && s.Owner == email {
			out = append(out, systemJSON(s, false))
		}
	}
	return out
}

func (w *World) list(rw http.ResponseWriter, r *http.Request, email string) {
	w.mu.Lock()
	out := w.visible(email)
	w.mu.Unlock()
	if out == nil {
		out = []map[string]any{}
	}
	if w.opts.BareArrayList {
		writeJSON(rw, 200, out)
		return
	}
	writeJSON(rw, 200, map[string]any{"systems": out})
}

func (w *World) orgList(rw http.ResponseWriter, r *http.Request, email string) {
	org := r.PathValue("org")
	w.mu.Lock()
	out := []map[string]any{}
	for _, id := range w.order {
		if s, ok := w.systems[id]; ok && s.Organization == org {
			out = append(out, systemJSON(s, false))
		}
	}
	w.mu.Unlock()
	writeJSON(rw, 200, map[string]any{"count": len(out), "results": out})
}

func (w *World) owned(rw http.ResponseWriter, id, email string) *CloudSystem {
	s, ok := w.systems[id]
	if !ok {
		cloudError(rw, 404, "logicError", "notFound", "System not found")
		return nil
	}
	if s.Owner != email {
		cloudError(rw, 403, "forbidden", "forbidden", "Not allowed")
		return nil
	}
	return s
}

func (w *World) getSystem(rw http.ResponseWriter, r *http.Request, email string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.owned(rw, r.PathValue("id"), email); s != nil {
		writeJSON(rw, 200, systemJSON(s, false))
	}
}

func (w *World) deleteSystem(rw http.ResponseWriter, r *http.Request, email string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.owned(rw, r.PathValue("id"), email)
	if s == nil {
		return
	}
	delete(w.systems, s.ID)
	delete(w.shares, s.ID)
	w.counters.Deletes++
	rw.WriteHeader(204)
}

// Roles are the documented access roles.
var Roles = map[string]bool{"none": true, "disabled": true, "custom": true, "liveViewer": true, "viewer": true, "advancedViewer": true,
	"localAdmin": true, "cloudAdmin": true, "maintenance": true, "owner": true, "system": true}

func shareJSON(sh *Share) map[string]any {
	return map[string]any{"accountEmail": sh.Email, "accessRole": sh.AccessRole, "userRoleId": sh.UserRoleID,
		"customPermissions": sh.CustomPermissions, "isEnabled": sh.Enabled, "vmsUserId": sh.VMSUserID}
}

func (w *World) listShares(rw http.ResponseWriter, r *http.Request, email string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.owned(rw, r.PathValue("id"), email)
	if s == nil {
		return
	}
	out := []map[string]any{}
	for _, e := range sortedKeys(w.shares[s.ID]) {
		out = append(out, shareJSON(w.shares[s.ID][e]))
	}
	writeJSON(rw, 200, out)
}

func (w *World) share(rw http.ResponseWriter, r *http.Request, email string) {
	var req struct {
		AccountEmail      string `json:"accountEmail"`
		AccessRole        string `json:"accessRole"`
		UserRoleID        string `json:"userRoleId"`
		CustomPermissions string `json:"customPermissions"`
		IsEnabled         *bool  `json:"isEnabled"`
		VMSUserID         string `json:"vmsUserId"`
	}
	if err := decode(r, &req); err != nil || !strings.Contains(req.AccountEmail, "@") {
		cloudError(rw, 400, "badRequest", "invalidFormat", "accountEmail must be an email address")
		return
	}
	if !Roles[req.AccessRole] {
		cloudError(rw, 400, "badRequest", "invalidFormat", "unknown accessRole "+req.AccessRole)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.owned(rw, r.PathValue("id"), email)
	if s == nil {
		return
	}
	if w.shares[s.ID] == nil {
		w.shares[s.ID] = map[string]*Share{}
	}
	key := strings.ToLower(req.AccountEmail)
	if req.AccessRole == "none" {
		delete(w.shares[s.ID], key)
		writeJSON(rw, 200, map[string]any{"accountEmail": req.AccountEmail, "accessRole": "none"})
		return
	}
	enabled := req.IsEnabled == nil || *req.IsEnabled
	sh := &Share{Email: key, AccessRole: req.AccessRole, UserRoleID: req.UserRoleID, CustomPermissions: req.CustomPermissions, VMSUserID: req.VMSUserID, Enabled: enabled}
	if _, ok := w.shares[s.ID][key]; ok {
		w.counters.SharesUpdated++
	} else {
		w.counters.SharesCreated++
	}
	w.shares[s.ID][key] = sh
	writeJSON(rw, 200, shareJSON(sh))
}

func (w *World) unshare(rw http.ResponseWriter, r *http.Request, email string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.owned(rw, r.PathValue("id"), email)
	if s == nil {
		return
	}
	delete(w.shares[s.ID], strings.ToLower(r.PathValue("email")))
	rw.WriteHeader(204)
}

// server farm

// serverError writes the mediaserver error envelope.
func serverError(rw http.ResponseWriter, status int, id, text string) {
	writeJSON(rw, status, map[string]any{"error": fmt.Sprint(status), "errorId": id, "errorString": text})
}

func (w *World) serveFarm(rw http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	key, rest, ok := strings.Cut(p, "/")
	if !ok || key == "" {
		serverError(rw, 404, "notFound", "no server in path")
		return
	}
	rest = "/" + rest
	w.mu.Lock()
	srv, exists := w.servers[key]
	if !exists {
		srv = &Server{Key: key, AdminPassword: "admin", Settings: map[string]any{}, sessions: map[string]time.Time{}}
		w.servers[key] = srv
	}
	w.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && rest == "/rest/v3/login/sessions":
		w.login(rw, r, srv)
		return
	case strings.HasPrefix(rest, "/rest/v3/login/sessions/") && r.Method == http.MethodDelete:
		w.mu.Lock()
		delete(srv.sessions, strings.TrimPrefix(rest, "/rest/v3/login/sessions/"))
		w.mu.Unlock()
		rw.WriteHeader(204)
		return
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	w.mu.Lock()
	exp, known := srv.sessions[tok]
	w.mu.Unlock()
	switch {
	case tok == "" || !known:
		serverError(rw, 401, "unauthorized", "Authentication required")
		return
	case time.Now().After(exp):
		// Real servers answer an expired session with 403 and this header.
		rw.Header().Set("x-auth-result", "Auth_WrongSessionToken")
		serverError(rw, 403, "sessionExpired", "Session is expired; log in again")
		return
	}
	switch {
	case r.Method == http.MethodGet && rest == "/rest/v3/system/info":
		w.info(rw, srv)
	case r.Method == http.MethodPost && rest == "/rest/v3/system/setup":
		w.setup(rw, r, srv)
	case r.Method == http.MethodPost && rest == "/rest/v3/system/cloud/bind":
		w.serverBind(rw, r, srv)
	case r.Method == http.MethodPost && rest == "/rest/v3/system/cloud/unbind":
		w.mu.Lock()
		srv.CloudID, srv.CloudOwner = "", ""
		w.mu.Unlock()
		rw.WriteHeader(204)
	case rest == "/rest/v3/system/settings" && (r.Method == http.MethodGet || r.Method == http.MethodPatch):
		w.settings(rw, r, srv)
	default:
		serverError(rw, 404, "notFound", "no such API: "+r.Method+" "+rest)
	}
}

func (w *World) login(rw http.ResponseWriter, r *http.Request, srv *Server) {
	var req struct{ Username, Password string }
	if err := decode(r, &req); err != nil {
		serverError(rw, 400, "badRequest", "body must be JSON")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if req.Username != "admin" || req.Password != srv.AdminPassword {
		serverError(rw, 401, "unauthorized", "Wrong password")
		return
	}
	tok := randToken("vms-")
	srv.sessions[tok] = time.Now().Add(w.opts.SessionLifetime)
	w.counters.Logins++
	secs := int(w.opts.SessionLifetime / time.Second)
	writeJSON(rw, 200, map[string]any{"id": tok, "username": "admin", "token": tok, "ageS": 0, "expiresInS": secs})
}

func (w *World) info(rw http.ResponseWriter, srv *Server) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]any{"name": srv.Name, "customization": "default", "version": "6.0.1.39873", "servers": []string{srv.Key}}
	if srv.SetUp {
		m["localId"] = srv.LocalID
	} else {
		m["localId"] = "00000000-0000-0000-0000-000000000000"
	}
	if srv.CloudID != "" {
		m["cloudId"] = srv.CloudID
		m["cloudOwnerId"] = srv.CloudOwner
	}
	writeJSON(rw, 200, m)
}

type cloudCreds struct {
	SystemID       string `json:"systemId"`
	AuthKey        string `json:"authKey"`
	Owner          string `json:"owner"`
	OrganizationID string `json:"organizationId"`
}

// activate checks cloud credentials against the cloud and binds srv (w.mu held).
func (w *World) activate(rw http.ResponseWriter, srv *Server, c cloudCreds) bool {
	cs, ok := w.systems[c.SystemID]
	if !ok || cs.AuthKey != c.AuthKey {
		serverError(rw, 422, "cantProcessRequest", "Cloud rejected the system id or auth key")
		return false
	}
	if cs.Server != "" && cs.Server != srv.Key {
		serverError(rw, 422, "cantProcessRequest", "Cloud system is already bound to another server")
		return false
	}
	if srv.CloudID != "" && srv.CloudID != c.SystemID {
		serverError(rw, 422, "cantProcessRequest", "System is already bound to the cloud")
		return false
	}
	cs.Status, cs.Server = "activated", srv.Key
	srv.CloudID, srv.CloudOwner = cs.ID, cs.Owner
	return true
}

func (w *World) setup(rw http.ResponseWriter, r *http.Request, srv *Server) {
	var req struct {
		Name     string         `json:"name"`
		Settings map[string]any `json:"settings"`
		Local    *struct {
			Password string `json:"password"`
		} `json:"local"`
		Cloud *cloudCreds `json:"cloud"`
	}
	if err := decode(r, &req); err != nil || req.Name == "" {
		serverError(rw, 422, "missingParameter", "Missing required parameter: name")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if srv.SetUp {
		serverError(rw, 403, "forbidden", "System is already set up")
		return
	}
	if req.Cloud != nil && !w.activate(rw, srv, *req.Cloud) {
		return
	}
	srv.SetUp, srv.Name, srv.LocalID = true, req.Name, uuid()
	for k, v := range req.Settings {
		srv.Settings[k] = v
	}
	if req.Local != nil && req.Local.Password != "" {
		srv.AdminPassword = req.Local.Password
	}
	w.counters.Setups++
	writeJSON(rw, 200, map[string]any{"name": srv.Name, "localId": srv.LocalID})
}

func (w *World) serverBind(rw http.ResponseWriter, r *http.Request, srv *Server) {
	var c cloudCreds
	if err := decode(r, &c); err != nil || c.SystemID == "" || c.AuthKey == "" {
		serverError(rw, 422, "missingParameter", "Missing required parameter: systemId or authKey")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !srv.SetUp {
		serverError(rw, 403, "forbidden", "System is not set up yet")
		return
	}
	if !w.activate(rw, srv, c) {
		return
	}
	w.counters.CloudBinds++
	rw.WriteHeader(204)
}

func (w *World) settings(rw http.ResponseWriter, r *http.Request, srv *Server) {
	if r.Method == http.MethodPatch {
		var m map[string]any
		if err := decode(r, &m); err != nil {
			serverError(rw, 400, "badRequest", "body must be a JSON object")
			return
		}
		w.mu.Lock()
		for k, v := range m {
			srv.Settings[k] = v
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	out := map[string]any{"systemName": srv.Name, "cloudSystemID": srv.CloudID}
	for k, v := range srv.Settings {
		out[k] = v
	}
	w.mu.Unlock()
	writeJSON(rw, 200, out)
}

// Snapshot is a copy of everything the world holds.
type Snapshot struct {
	Systems  []CloudSystem
	Shares   map[string][]Share // by cloud system id
	Servers  []Server
	Counters Counters
}

// Snapshot returns a deep copy.
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
		for _, e := range sortedKeys(m) {
			s.Shares[id] = append(s.Shares[id], *m[e])
		}
	}
	for _, k := range sortedKeys(w.servers) {
		srv := *w.servers[k]
		srv.sessions = nil
		srv.Settings = nil
		s.Servers = append(s.Servers, srv)
	}
	return s
}

// Check compares the world with what a plan wanted: system name -> server key.
// duplicates: names with more than one cloud system; orphans: cloud systems bound to
// no server; missing: wanted systems not bound to their server.
func (w *World) Check(want map[string]string) (duplicates, orphans, missing []string) {
	snap := w.Snapshot()
	byName := map[string][]CloudSystem{}
	for _, cs := range snap.Systems {
		byName[cs.Name] = append(byName[cs.Name], cs)
		if cs.Server == "" {
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
	setUp := 0
	for _, s := range snap.Servers {
		if s.SetUp {
			setUp++
		}
	}
	return map[string]any{"cloud_systems": len(snap.Systems), "servers": len(snap.Servers), "servers_set_up": setUp,
		"shares": shares, "duplicates": dups, "orphans": orphans, "counters": snap.Counters}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
