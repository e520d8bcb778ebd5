package nxfake

import (
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// Roles are the documented cloud access roles.
var Roles = map[string]bool{"none": true, "disabled": true, "custom": true, "liveViewer": true, "viewer": true, "advancedViewer": true,
	"localAdmin": true, "cloudAdmin": true, "maintenance": true, "owner": true, "system": true}

func (w *World) cloudMux() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /cdb/oauth2/token", w.token)
	if !w.opts.FallbackPaths {
		m.HandleFunc("POST /cdb/systems/bind", w.authed(w.bind))
	}
	m.HandleFunc("POST /cdb/system/bind", w.authed(w.bind))
	m.HandleFunc("POST /partners/api/v3/cloud_systems/", w.authed(w.orgBind))
	m.HandleFunc("GET /partners/api/v2/organizations/{org}/cloud_systems/", w.authed(w.orgList))
	m.HandleFunc("GET /cdb/systems", w.authed(w.list))
	m.HandleFunc("GET /cdb/systems/{id}", w.authed(w.getSystem))
	// DELETE is unbind; a removed system answers 403 after (API-NOTES sections 1 and 6, nx_system_tests cloud_api/_cloud.py).
	m.HandleFunc("DELETE /cdb/systems/{id}", w.authed(w.deleteSystem))
	paths := []string{"/cdb/v0/systems/{id}/users"}
	if !w.opts.FallbackPaths {
		paths = append(paths, "/cdb/systems/{id}/users")
	}
	for _, p := range paths {
		m.HandleFunc("GET "+p, w.authed(w.listShares))
		m.HandleFunc("POST "+p, w.authed(w.share))
		m.HandleFunc("DELETE "+p+"/{email}", w.authed(w.unshare))
	}
	m.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		cloudEnvelope(rw, http.StatusNotFound, "notFound", "No such API: "+r.Method+" "+r.URL.Path)
	})
	return m
}

// cloudEnvelope writes the cdb error envelope. errorDetail is a number in some
// answers and a string in others, like the real service's.
func cloudEnvelope(rw http.ResponseWriter, status int, code, text string) {
	class := "logicError"
	switch status {
	case 400:
		class = "badRequest"
	case 401:
		class = "unauthorized"
	case 500:
		class = "internalError"
	case 503:
		class = "ioError"
	}
	var detail any = status
	if status%2 == 1 {
		detail = http.StatusText(status)
	}
	writeJSON(rw, status, map[string]any{"errorClass": class, "resultCode": code, "errorDetail": detail, "errorText": text})
}

func (w *World) token(rw http.ResponseWriter, r *http.Request) {
	var req struct {
		GrantType    string `json:"grant_type"`
		ResponseType string `json:"response_type"`
		ClientID     string `json:"client_id"`
		Scope        string `json:"scope"`
		Username     string `json:"username"`
		Password     string `json:"password"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := decode(rw, r, &req); err != nil {
		cloudEnvelope(rw, 400, "invalidFormat", "Request body is not a JSON object")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var email string
	switch req.GrantType {
	case "password":
		if req.Username == "" || req.Password == "" {
			cloudEnvelope(rw, 400, "invalidFormat", "username and password are required")
			return
		}
		if pw, ok := w.opts.Accounts[req.Username]; !ok || pw != req.Password {
			cloudEnvelope(rw, 401, "badUsername", "Wrong username or password")
			return
		}
		email = req.Username
	case "refresh_token":
		e, ok := w.refresh[req.RefreshToken]
		if !ok {
			cloudEnvelope(rw, 401, "notAuthorized", "Unknown or expired refresh token")
			return
		}
		delete(w.refresh, req.RefreshToken) // refresh tokens are single-use
		email = e
	default:
		cloudEnvelope(rw, 400, "invalidFormat", "Unsupported grant_type")
		return
	}
	tok := randToken("nxcdb-")
	ref := randToken("nxcdb-")
	exp := time.Now().Add(w.opts.TokenLifetime)
	w.tokens[tok] = tokenInfo{email: email, expiry: exp}
	w.refresh[ref] = email
	w.counters.TokensIssued++
	secs := int(w.opts.TokenLifetime / time.Second)
	var expiresIn any = secs
	if w.counters.TokensIssued%2 == 0 {
		expiresIn = strconv.Itoa(secs) // seen as a string in some answers
	}
	writeJSON(rw, 200, map[string]any{"access_token": tok, "refresh_token": ref, "expires_in": expiresIn,
		"expires_at": exp.UnixMilli(), "token_type": "bearer", "scope": req.Scope})
}

type cloudHandler func(rw http.ResponseWriter, r *http.Request, email string)

func (w *World) authed(h cloudHandler) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.mu.Lock()
		ti, known := w.tokens[tok]
		if known && time.Now().After(ti.expiry) {
			delete(w.tokens, tok)
			known = false
		}
		w.mu.Unlock()
		if !ok || !known {
			cloudEnvelope(rw, 401, "notAuthorized", "Access token is missing, unknown or expired")
			return
		}
		h(rw, r, ti.email)
	}
}

func systemJSON(s *CloudSystem, withKey bool) map[string]any {
	health := "offline"
	if s.Status == "activated" {
		health = "online"
	}
	m := map[string]any{"id": s.ID, "name": s.Name, "customization": s.Customization, "ownerAccountEmail": s.Owner,
		"status": s.Status, "stateOfHealth": health, "accessRole": "owner"}
	if s.Organization != "" {
		m["organizationId"] = s.Organization
	}
	if withKey {
		m["authKey"] = s.AuthKey
	}
	return m
}

// newSystem creates a cloud system (w.mu held).
func (w *World) newSystem(name, customization, owner, org string) *CloudSystem {
	if customization == "" {
		customization = "default"
	}
	s := &CloudSystem{ID: uuid(), Name: name, Customization: customization, Owner: owner, Status: "notActivated", AuthKey: randToken(""), Organization: org}
	w.systems[s.ID] = s
	w.order = append(w.order, s.ID)
	w.counters.Binds++
	return s
}

func (w *World) bind(rw http.ResponseWriter, r *http.Request, email string) {
	var req struct {
		Name          string `json:"name"`
		Customization string `json:"customization"`
		Opaque        string `json:"opaque"`
	}
	if err := decode(rw, r, &req); err != nil {
		cloudEnvelope(rw, 400, "invalidFormat", "Request body is not a JSON object")
		return
	}
	if strings.TrimSpace(req.Name) == "" {
		cloudEnvelope(rw, 400, "invalidFormat", "Missing required parameter: name")
		return
	}
	w.mu.Lock()
	s := w.newSystem(req.Name, req.Customization, email, "")
	out := systemJSON(s, true)
	w.mu.Unlock()
	writeJSON(rw, 200, out)
}

func (w *World) knownOrg(org string) bool {
	if w.opts.Organizations == nil {
		return true
	}
	for _, o := range w.opts.Organizations {
		if o == org {
			return true
		}
	}
	return false
}

func (w *World) orgBind(rw http.ResponseWriter, r *http.Request, email string) {
	var req struct {
		Name          string `json:"name"`
		Customization string `json:"customization"`
		Organization  string `json:"organization"`
	}
	if err := decode(rw, r, &req); err != nil {
		cloudEnvelope(rw, 400, "invalidFormat", "Request body is not a JSON object")
		return
	}
	if strings.TrimSpace(req.Name) == "" || req.Organization == "" {
		cloudEnvelope(rw, 400, "invalidFormat", "Missing required parameter: name and organization")
		return
	}
	if !w.knownOrg(req.Organization) {
		cloudEnvelope(rw, 403, "forbidden", "Not a member of organization "+req.Organization)
		return
	}
	w.mu.Lock()
	s := w.newSystem(req.Name, req.Customization, email, req.Organization)
	out := systemJSON(s, true)
	w.mu.Unlock()
	writeJSON(rw, 201, out)
}

func (w *World) list(rw http.ResponseWriter, r *http.Request, email string) {
	w.mu.Lock()
	out := []map[string]any{}
	for _, id := range w.order {
		if s, ok := w.systems[id]; ok && s.Owner == email {
			out = append(out, systemJSON(s, false))
		}
	}
	w.mu.Unlock()
	if w.opts.BareArrayList {
		writeJSON(rw, 200, out)
		return
	}
	writeJSON(rw, 200, map[string]any{"systems": out})
}

func (w *World) orgList(rw http.ResponseWriter, r *http.Request, email string) {
	org := r.PathValue("org")
	if !w.knownOrg(org) {
		cloudEnvelope(rw, 404, "notFound", "Organization not found")
		return
	}
	w.mu.Lock()
	out := []map[string]any{}
	for _, id := range w.order {
		if s, ok := w.systems[id]; ok && s.Organization == org {
			out = append(out, systemJSON(s, false))
		}
	}
	w.mu.Unlock()
	writeJSON(rw, 200, map[string]any{"count": len(out), "next": nil, "previous": nil, "results": out})
}

// owned returns the system if email may manage it, else answers (w.mu held).
func (w *World) owned(rw http.ResponseWriter, id, email string) *CloudSystem {
	s, ok := w.systems[id]
	if !ok && w.removed[id] {
		// A removed system answers 403 to GET and DELETE (nx_system_tests cloud_api/_cloud.py).
		cloudEnvelope(rw, 403, "forbidden", "System is inaccessible or removed")
		return nil
	}
	if !ok {
		cloudEnvelope(rw, 404, "notFound", "System not found")
		return nil
	}
	if s.Owner != email {
		cloudEnvelope(rw, 403, "forbidden", "Not allowed to manage this system")
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

// removeSystem deletes a cloud system; its server loses the binding (w.mu held).
func (w *World) removeSystem(s *CloudSystem) {
	if srv, ok := w.servers[s.Server]; ok && srv.CloudID == s.ID {
		srv.CloudID, srv.CloudOwner = "", ""
	}
	delete(w.systems, s.ID)
	delete(w.shares, s.ID)
	w.removed[s.ID] = true
	for i, id := range w.order {
		if id == s.ID {
			w.order = append(w.order[:i], w.order[i+1:]...)
			break
		}
	}
	w.counters.Deletes++
}

func (w *World) deleteSystem(rw http.ResponseWriter, r *http.Request, email string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.owned(rw, r.PathValue("id"), email)
	if s == nil {
		return
	}
	w.removeSystem(s)
	rw.WriteHeader(http.StatusNoContent)
}

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
	// The owner is listed first, like the real cloud does.
	out := []map[string]any{{"accountEmail": s.Owner, "accessRole": "owner", "userRoleId": "", "customPermissions": "", "isEnabled": true, "vmsUserId": ""}}
	for _, e := range sortedKeys(w.shares[s.ID]) {
		out = append(out, shareJSON(w.shares[s.ID][e]))
	}
	w.answers++
	if w.answers%2 == 0 {
		writeJSON(rw, 200, map[string]any{"users": out})
		return
	}
	writeJSON(rw, 200, out)
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
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
	if err := decode(rw, r, &req); err != nil {
		cloudEnvelope(rw, 400, "invalidFormat", "Request body is not a valid share object")
		return
	}
	if req.AccountEmail == "" {
		cloudEnvelope(rw, 400, "invalidFormat", "Missing required parameter: accountEmail")
		return
	}
	if !validEmail(req.AccountEmail) {
		cloudEnvelope(rw, 400, "invalidFormat", "accountEmail is not a valid email address")
		return
	}
	if !Roles[req.AccessRole] {
		cloudEnvelope(rw, 400, "invalidFormat", "Unknown accessRole: "+req.AccessRole)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.owned(rw, r.PathValue("id"), email)
	if s == nil {
		return
	}
	key := strings.ToLower(req.AccountEmail)
	if key == strings.ToLower(s.Owner) {
		cloudEnvelope(rw, 403, "notAllowedInCurrentState", "The owner's access cannot be changed")
		return
	}
	if w.shares[s.ID] == nil {
		w.shares[s.ID] = map[string]*Share{}
	}
	if req.AccessRole == "none" {
		if _, ok := w.shares[s.ID][key]; ok {
			delete(w.shares[s.ID], key)
			w.counters.SharesRemoved++
		}
		writeJSON(rw, 200, map[string]any{"accountEmail": key, "accessRole": "none"})
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
	key := strings.ToLower(r.PathValue("email"))
	if _, ok := w.shares[s.ID][key]; !ok {
		cloudEnvelope(rw, 404, "notFound", "The system is not shared with "+key)
		return
	}
	delete(w.shares[s.ID], key)
	w.counters.SharesRemoved++
	rw.WriteHeader(http.StatusNoContent)
}
