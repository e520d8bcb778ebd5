package nxfake

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"provision/providers/fault"
)

// serverEnvelope writes the mediaserver error envelope.
func serverEnvelope(rw http.ResponseWriter, status int, id, text string) {
	fault.WriteJSON(rw, status, map[string]any{"error": strconv.Itoa(status), "errorId": id, "errorString": text})
}

// reply writes a success answer, in the old wrapped form when asked to.
func (w *World) reply(rw http.ResponseWriter, v any) {
	if w.opts.WrapReplies {
		fault.WriteJSON(rw, 200, map[string]any{"error": "0", "errorId": "ok", "errorString": "", "reply": v})
		return
	}
	fault.WriteJSON(rw, 200, v)
}

// noContent answers an empty success (or an empty wrapped reply).
func (w *World) noContent(rw http.ResponseWriter) {
	if w.opts.WrapReplies {
		w.reply(rw, map[string]any{})
		return
	}
	rw.WriteHeader(http.StatusNoContent)
}

// server returns the server with this key, creating it factory-new (w.mu held).
func (w *World) server(key string) *Server {
	srv, ok := w.servers[key]
	if !ok {
		srv = &Server{Key: key, AdminPassword: "admin", Settings: map[string]any{}, sessions: map[string]time.Time{}}
		w.servers[key] = srv
	}
	return srv
}

func (w *World) serveFarm(rw http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if strings.HasPrefix(p, ServersPrefix) {
		p = p[len(ServersPrefix)-1:]
	}
	key, rest, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if k, err := url.PathUnescape(key); err == nil {
		key = k
	}
	if !ok || key == "" {
		serverEnvelope(rw, 404, "notFound", "No server in the path")
		return
	}
	rest = "/" + rest
	if i := strings.Index(rest, "/rest/"); i > 0 {
		rest = rest[i:] // tolerate a path prefix in the server URL
	}
	w.mu.Lock()
	srv := w.server(key)
	w.mu.Unlock()
	switch {
	// Source: seed nx-connect-system-to-cloud step 3; API-NOTES 2 (401/422 wrong password, 403 lock-out).
	case r.Method == http.MethodPost && rest == "/rest/v3/login/sessions":
		w.login(rw, r, srv)
		return
	// Source: API-NOTES 2 (DELETE /rest/v3/login/sessions/{token} logs out).
	case r.Method == http.MethodDelete && strings.HasPrefix(rest, "/rest/v3/login/sessions/"):
		w.mu.Lock()
		delete(srv.sessions, strings.TrimPrefix(rest, "/rest/v3/login/sessions/"))
		w.mu.Unlock()
		w.noContent(rw)
		return
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	w.mu.Lock()
	exp, known := srv.sessions[tok]
	if known && w.opts.Now().After(exp) {
		delete(srv.sessions, tok)
		known = false
	}
	w.mu.Unlock()
	if !known {
		rw.Header().Set("x-auth-result", "Auth_WrongSessionToken")
		if w.opts.ExpiredSessionStatus == http.StatusForbidden {
			serverEnvelope(rw, 403, "sessionExpired", "Session is expired or unknown; log in again")
		} else {
			serverEnvelope(rw, 401, "unauthorized", "Session is expired or unknown; log in again")
		}
		return
	}
	switch {
	// Source: nx_open vms/libs/nx_vms_api/src/nx/vms/api/data/system_information.h (SystemInformation:
	// localId absent when new, cloudId when bound, version); the nil-UUID form is API-NOTES 2.
	case r.Method == http.MethodGet && rest == "/rest/v3/system/info":
		w.info(rw, srv)
	// Source: seed nx-connect-system-to-cloud step 4; nx_open system_information.h SetupSystemData
	// {name, settingsPreset, settings, local, cloud}; the refusal of a second setup (403) is an inference.
	case r.Method == http.MethodPost && rest == "/rest/v3/system/setup":
		w.setup(rw, r, srv)
	// Source: seed nx-connect-system-to-cloud ("existing System"); organizationId from 6.1 (API-NOTES 6, CloudAuthBase).
	case r.Method == http.MethodPost && rest == "/rest/v3/system/cloud/bind":
		w.serverBind(rw, r, srv)
	// Source: API-NOTES 2 (cloud/unbind {password}); that it removes the cloud system is an inference.
	case r.Method == http.MethodPost && rest == "/rest/v3/system/cloud/unbind":
		w.serverUnbind(rw, r, srv)
	// Source: API-NOTES 2 (GET|PATCH /rest/v3/system/settings, keys systemName, cloudSystemID, ...).
	case rest == "/rest/v3/system/settings" && (r.Method == http.MethodGet || r.Method == http.MethodPatch):
		w.settings(rw, r, srv)
	default:
		serverEnvelope(rw, 404, "notFound", "No such API: "+r.Method+" "+rest)
	}
}

func (w *World) login(rw http.ResponseWriter, r *http.Request, srv *Server) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := decode(rw, r, &req); err != nil {
		serverEnvelope(rw, 400, "badRequest", "Request body is not a JSON object")
		return
	}
	if req.Username == "" || req.Password == "" {
		serverEnvelope(rw, 422, "missingParameter", "Missing required parameter: username or password")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.opts.LockoutAfter > 0 && srv.failures >= w.opts.LockoutAfter {
		serverEnvelope(rw, 403, "forbidden", "Too many attempts, try again later")
		return
	}
	if !strings.EqualFold(req.Username, "admin") || req.Password != srv.AdminPassword {
		srv.failures++
		w.counters.FailedLogins++
		serverEnvelope(rw, 401, "unauthorized", "Wrong user name or password")
		return
	}
	srv.failures = 0
	tok := "vms-" + fault.RandomHex(20)
	srv.sessions[tok] = w.opts.Now().Add(w.opts.SessionLifetime)
	w.counters.Logins++
	w.reply(rw, map[string]any{"id": tok, "username": "admin", "token": tok, "ageS": 0,
		"expiresInS": int(w.opts.SessionLifetime / time.Second)})
}

func (w *World) info(rw http.ResponseWriter, srv *Server) {
	w.mu.Lock()
	m := map[string]any{"name": srv.Name, "customization": "default", "version": w.version(srv), "servers": []string{srv.Key}}
	if srv.SetUp {
		m["localId"] = srv.LocalID
	} else {
		m["localId"] = "{00000000-0000-0000-0000-000000000000}"
	}
	if srv.CloudID != "" {
		m["cloudId"] = srv.CloudID
		m["cloudOwnerId"] = srv.CloudOwner
	}
	w.mu.Unlock()
	w.reply(rw, m)
}

// version is what srv reports (w.mu held).
func (w *World) version(srv *Server) string {
	if srv.Version != "" {
		return srv.Version
	}
	return w.opts.ServerVersion
}

// takesOrganizationID reports whether a server of version v reads organizationId in
// its cloud credentials (CloudAuthBase of VMS 6.1; API-NOTES 6).
func takesOrganizationID(v string) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return err1 == nil && err2 == nil && (major > 6 || (major == 6 && minor >= 1))
}

type cloudCreds struct {
	SystemID       string `json:"systemId"`
	AuthKey        string `json:"authKey"`
	Owner          string `json:"owner"`
	OrganizationID string `json:"organizationId"`
}

// activate checks cloud credentials against the cloud (as the real server does) and
// binds srv. It answers and returns false on a refusal (w.mu held). A server from
// 6.1 on passes organizationId to the cloud, which refuses a missing or wrong one for
// an organization's system (inference); a 6.0 server ignores the field.
func (w *World) activate(rw http.ResponseWriter, srv *Server, c cloudCreds) bool {
	cs, ok := w.systems[c.SystemID]
	orgAware := takesOrganizationID(w.version(srv))
	if !orgAware {
		c.OrganizationID = ""
	}
	switch {
	case !ok:
		serverEnvelope(rw, 422, "cantProcessRequest", "Cloud does not know system "+c.SystemID)
		return false
	case cs.AuthKey != c.AuthKey:
		serverEnvelope(rw, 422, "cantProcessRequest", "Cloud rejected the auth key of system "+c.SystemID)
		return false
	case c.Owner != "" && !strings.EqualFold(c.Owner, cs.Owner):
		serverEnvelope(rw, 422, "invalidParameter", "owner does not own cloud system "+c.SystemID)
		return false
	case orgAware && cs.Organization != "" && c.OrganizationID != cs.Organization:
		serverEnvelope(rw, 422, "invalidParameter", "organizationId does not match the cloud system's organization")
		return false
	case srv.CloudID != "" && srv.CloudID != cs.ID:
		serverEnvelope(rw, 422, "cantProcessRequest", "System is already bound to cloud system "+srv.CloudID)
		return false
	case cs.Server != "" && cs.Server != srv.Key:
		serverEnvelope(rw, 422, "cantProcessRequest", "Cloud system "+cs.ID+" is already bound to another server")
		return false
	}
	cs.Status, cs.Server = "activated", srv.Key
	srv.CloudID, srv.CloudOwner, srv.CloudOrganization = cs.ID, cs.Owner, c.OrganizationID
	return true
}

func scalar(v any) bool {
	switch v.(type) {
	case string, bool, float64, nil:
		return true
	}
	return false
}

func (w *World) setup(rw http.ResponseWriter, r *http.Request, srv *Server) {
	var req struct {
		Name           string         `json:"name"`
		SettingsPreset string         `json:"settingsPreset"`
		Settings       map[string]any `json:"settings"`
		Local          *struct {
			Password string `json:"password"`
		} `json:"local"`
		Cloud *cloudCreds `json:"cloud"`
	}
	if err := decode(rw, r, &req); err != nil {
		serverEnvelope(rw, 400, "badRequest", "Request body is not a valid setup object")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if srv.SetUp {
		serverEnvelope(rw, 403, "forbidden", "System is already set up")
		return
	}
	if strings.TrimSpace(req.Name) == "" {
		serverEnvelope(rw, 422, "missingParameter", "Missing required parameter: name")
		return
	}
	for k, v := range req.Settings {
		if !scalar(v) {
			serverEnvelope(rw, 422, "invalidParameter", "Invalid value of setting "+k)
			return
		}
	}
	if req.Local != nil && len(req.Local.Password) < 8 {
		serverEnvelope(rw, 422, "invalidParameter", "local.password is too short (8 characters at least)")
		return
	}
	if (req.Local == nil || req.Local.Password == "") && req.Cloud == nil {
		serverEnvelope(rw, 422, "missingParameter", "Missing required parameter: local or cloud")
		return
	}
	if req.Cloud != nil {
		if req.Cloud.SystemID == "" || req.Cloud.AuthKey == "" {
			serverEnvelope(rw, 422, "missingParameter", "Missing required parameter: cloud.systemId or cloud.authKey")
			return
		}
		if !w.activate(rw, srv, *req.Cloud) {
			return
		}
	}
	srv.SetUp, srv.Name, srv.LocalID = true, req.Name, fault.UUID()
	for k, v := range req.Settings {
		srv.Settings[k] = v
	}
	if req.Local != nil && req.Local.Password != "" {
		srv.AdminPassword = req.Local.Password
	}
	w.counters.Setups++
	w.reply(rw, map[string]any{"name": srv.Name, "localId": srv.LocalID})
}

func (w *World) serverBind(rw http.ResponseWriter, r *http.Request, srv *Server) {
	var c cloudCreds
	if err := decode(rw, r, &c); err != nil {
		serverEnvelope(rw, 400, "badRequest", "Request body is not a JSON object")
		return
	}
	if c.SystemID == "" || c.AuthKey == "" || c.Owner == "" {
		serverEnvelope(rw, 422, "missingParameter", "Missing required parameter: systemId, authKey or owner")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !srv.SetUp {
		serverEnvelope(rw, 403, "forbidden", "System is not set up yet")
		return
	}
	again := srv.CloudID == c.SystemID
	if !w.activate(rw, srv, c) {
		return
	}
	if !again {
		w.counters.CloudBinds++
	}
	w.noContent(rw)
}

func (w *World) serverUnbind(rw http.ResponseWriter, r *http.Request, srv *Server) {
	var req struct {
		Password string `json:"password"`
	}
	if err := decode(rw, r, &req); err != nil {
		serverEnvelope(rw, 400, "badRequest", "Request body is not a JSON object")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if req.Password != srv.AdminPassword {
		serverEnvelope(rw, 403, "forbidden", "Wrong password")
		return
	}
	if srv.CloudID == "" {
		serverEnvelope(rw, 422, "cantProcessRequest", "System is not bound to the cloud")
		return
	}
	// Disconnecting a system removes it from the cloud.
	if cs, ok := w.systems[srv.CloudID]; ok {
		w.removeSystem(cs)
	}
	srv.CloudID, srv.CloudOwner, srv.CloudOrganization = "", "", ""
	w.counters.Unbinds++
	w.noContent(rw)
}

func (w *World) settings(rw http.ResponseWriter, r *http.Request, srv *Server) {
	if r.Method == http.MethodPatch {
		var m map[string]any
		if err := decode(rw, r, &m); err != nil {
			serverEnvelope(rw, 400, "badRequest", "Request body is not a JSON object")
			return
		}
		for k, v := range m {
			if !scalar(v) {
				serverEnvelope(rw, 422, "invalidParameter", "Invalid value of setting "+k)
				return
			}
			if k == "cloudSystemID" {
				serverEnvelope(rw, 422, "invalidParameter", "cloudSystemID is read-only")
				return
			}
		}
		w.mu.Lock()
		for k, v := range m {
			if k == "systemName" {
				srv.Name, _ = v.(string)
				continue
			}
			srv.Settings[k] = v
		}
		w.counters.SettingsPatches++
		w.mu.Unlock()
	}
	w.mu.Lock()
	out := map[string]any{"systemName": srv.Name, "cloudSystemID": srv.CloudID}
	for k, v := range srv.Settings {
		out[k] = v
	}
	w.mu.Unlock()
	w.reply(rw, out)
}
