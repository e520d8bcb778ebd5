package nxfake

import (
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"provision/providers/fault"
)

// Roles are the documented cloud access roles.
var Roles = map[string]bool{"none": true, "disabled": true, "custom": true, "liveViewer": true, "viewer": true, "advancedViewer": true,
	"localAdmin": true, "cloudAdmin": true, "maintenance": true, "owner": true, "system": true}

func (w *World) cloudMux() http.Handler {
	m := http.NewServeMux()
	// Source: seed nx-connect-system-to-cloud step 1; API-NOTES 1 (refresh_token grant, expires_in as a string).
	m.HandleFunc("POST /cdb/oauth2/token", w.token)
	if !w.opts.FallbackPaths {
		// Source: nx_system_tests cloud_api/_cloud.py bind_only (cdb/systems/bind); seed nx-connect-system-to-cloud.
		m.HandleFunc("POST /cdb/systems/bind", w.authed(w.bind))
	}
	// Source: seed nx-connect-system-to-cloud sample script (the older singular form).
	m.HandleFunc("POST /cdb/system/bind", w.authed(w.bind))
	// Source: nx_system_tests cloud_api/_cloud.py bind_cloud_system_to_organization (partners/api/v2/cloud_systems/).
	m.HandleFunc("POST /partners/api/v2/cloud_systems/", w.authed(w.orgBind))
	// Source: seed nx-connect-system-to-cloud ("connected to an organization - POST /partners/api/v3/cloud_systems/").
	m.HandleFunc("POST /partners/api/v3/cloud_systems/", w.authed(w.orgBind))
	// Source: API-NOTES 6 (nx_open_integrations api_sample: the current samples create under /partners/api/v4/); same shape as v2/v3 is an inference.
	m.HandleFunc("POST /partners/api/v4/cloud_systems/", w.authed(w.orgBind))
	// Source: nx_system_tests cloud_api/_cloud.py list_systems_in_organization and _get_paginated_result
	// ({count, next, previous, results}, items with system_state); v3 served alike is API-NOTES 6.
	m.HandleFunc("GET /partners/api/v2/organizations/{org}/cloud_systems/", w.authed(w.orgList))
	m.HandleFunc("GET /partners/api/v3/organizations/{org}/cloud_systems/", w.authed(w.orgList))
	// Source: API-NOTES 1 ({systems:[...]} or a bare array); nx_system_tests get_systems reads response['systems'].
	m.HandleFunc("GET /cdb/systems", w.authed(w.list))
	// Source: nx_system_tests cloud_api/_cloud.py get_system; a removed system answers 403 (remove_system: "inaccessible or removed").
	m.HandleFunc("GET /cdb/systems/{id}", w.authed(w.getSystem))
	// Source: nx_system_tests cloud_api/_cloud.py remove_system (DELETE cdb/systems/{id}; 403 when removed already).
	m.HandleFunc("DELETE /cdb/systems/{id}", w.authed(w.deleteSystem))
	paths := []string{"/cdb/v0/systems/{id}/users"}
	if !w.opts.FallbackPaths {
		paths = append(paths, "/cdb/systems/{id}/users")
	}
	for _, p := range paths {
		// Source: seed nx-cloud-add-users (POST .../users, an upsert); nx_system_tests list_system_users,
		// share_system (cdb/v0 with roleIds), stop_sharing_system (DELETE .../users/{email}).
		m.HandleFunc("GET "+p, w.authed(w.listShares))
		m.HandleFunc("POST "+p, w.authed(w.share))
		m.HandleFunc("DELETE "+p+"/{email}", w.authed(w.unshare))
	}
	// Source: API-NOTES 1 (the error envelope; 404 notFound).
	m.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		cloudEnvelope(rw, http.StatusNotFound, "notFound", "No such API: "+r.Method+" "+r.URL.Path)
	})
	return m
}

// throttled answers a request over the cloud's rate limit in the shape of the part
// of the cloud it went to: the partners API is Django REST Framework (its paging is
// DRF's), whose throttle answer is {"detail": "Request was throttled. Expected
// available in N second(s)."}; the cdb has the tooManyRequests result code
// (API-NOTES 1 and 6; the limits themselves are an inference).
func throttled(rw http.ResponseWriter, r *http.Request, retryAfter time.Duration) {
	secs := int(retryAfter / time.Second)
	if strings.Contains(r.URL.Path, "/partners/") {
		unit := "seconds"
		if secs == 1 {
			unit = "second"
		}
		fault.WriteJSON(rw, http.StatusTooManyRequests, map[string]any{"detail": fmt.Sprintf("Request was throttled. Expected available in %d %s.", secs, unit)})
		return
	}
	cloudEnvelope(rw, http.StatusTooManyRequests, "tooManyRequests", "Too many requests, retry later")
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
	fault.WriteJSON(rw, status, map[string]any{"errorClass": class, "resultCode": code, "errorDetail": detail, "errorText": text})
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
	tok := "nxcdb-" + fault.RandomHex(20)
	ref := "nxcdb-" + fault.RandomHex(20)
	exp := w.opts.Now().Add(w.opts.TokenLifetime)
	w.tokens[tok] = tokenInfo{email: email, expiry: exp}
	w.refresh[ref] = email
	w.counters.TokensIssued++
	secs := int(w.opts.TokenLifetime / time.Second)
	var expiresIn any = secs
	if w.counters.TokensIssued%2 == 0 {
		expiresIn = strconv.Itoa(secs) // seen as a string in some answers
	}
	fault.WriteJSON(rw, 200, map[string]any{"access_token": tok, "refresh_token": ref, "expires_in": expiresIn,
		"expires_at": exp.UnixMilli(), "token_type": "bearer", "scope": req.Scope})
}

type cloudHandler func(rw http.ResponseWriter, r *http.Request, email string)

func (w *World) authed(h cloudHandler) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.mu.Lock()
		ti, known := w.tokens[tok]
		if known && w.opts.Now().After(ti.expiry) {
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
	s := &CloudSystem{ID: fault.UUID(), Name: name, Customization: customization, Owner: owner, Status: "notActivated", AuthKey: "" + fault.RandomHex(20), Organization: org}
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
	// Some cdb answers carry resultCode "ok" on success (nx_system_tests _raise_for_status
	// accepts "ok", "OK" or none; which answers carry it is an inference).
	out["resultCode"] = "ok"
	w.mu.Unlock()
	fault.WriteJSON(rw, 200, out)
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
	out := partnersJSON(s, true)
	w.mu.Unlock()
	fault.WriteJSON(rw, 201, out)
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
		fault.WriteJSON(rw, 200, out)
		return
	}
	fault.WriteJSON(rw, 200, map[string]any{"systems": out})
}

// partnersJSON is a cloud system as the partners API shows it: system_state, not
// status; organization; the channel partner's state (nx_system_tests _CloudSystem).
func partnersJSON(s *CloudSystem, withKey bool) map[string]any {
	m := map[string]any{"id": s.ID, "name": s.Name, "customization": s.Customization, "ownerAccountEmail": s.Owner,
		"organization": s.Organization, "system_state": s.Status, "state": "active"}
	if withKey {
		m["authKey"] = s.AuthKey
	}
	return m
}

// orgList answers one page of an organization's systems in DRF's page-number form:
// {count, next, previous, results}, next and previous absolute URLs or null.
func (w *World) orgList(rw http.ResponseWriter, r *http.Request, email string) {
	org := r.PathValue("org")
	if !w.knownOrg(org) {
		cloudEnvelope(rw, 404, "notFound", "Organization not found")
		return
	}
	page := 1
	if v := r.URL.Query().Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			// DRF answers an invalid page with 404 {"detail": "Invalid page."}.
			fault.WriteJSON(rw, 404, map[string]any{"detail": "Invalid page."})
			return
		}
		page = n
	}
	w.mu.Lock()
	all := []map[string]any{}
	for _, id := range w.order {
		if s, ok := w.systems[id]; ok && s.Organization == org {
			all = append(all, partnersJSON(s, false))
		}
	}
	w.mu.Unlock()
	size := w.opts.PageSize
	from := (page - 1) * size
	if from > 0 && from >= len(all) {
		fault.WriteJSON(rw, 404, map[string]any{"detail": "Invalid page."})
		return
	}
	to := min(from+size, len(all))
	// The links are absolute, built from the URL the client asked for (a path prefix
	// stripped in front of the fake stays in them).
	link := func(p int) any {
		if p < 1 || (p-1)*size >= len(all) {
			return nil
		}
		u, _ := url.Parse(r.RequestURI)
		q := u.Query()
		q.Set("page", strconv.Itoa(p))
		u.RawQuery = q.Encode()
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		u.Scheme, u.Host = scheme, r.Host
		return u.String()
	}
	var prev any
	if page > 1 {
		prev = link(page - 1)
	}
	fault.WriteJSON(rw, 200, map[string]any{"count": len(all), "next": link(page + 1), "previous": prev, "results": all[from:to]})
}

// owned returns the system if email may manage it, else answers (w.mu held). A
// removed system answers 403, like the real cloud (nx_system_tests remove_system).
func (w *World) owned(rw http.ResponseWriter, id, email string) *CloudSystem {
	s, ok := w.systems[id]
	if !ok && w.removed[id] {
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
		fault.WriteJSON(rw, 200, systemJSON(s, false))
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

// shareJSON is a share as the cloud lists it. VMS 6.x shares also carry roleIds
// (nx_system_tests share_system; API-NOTES 6).
func shareJSON(sh *Share) map[string]any {
	roles := []string{}
	if sh.UserRoleID != "" {
		roles = append(roles, sh.UserRoleID)
	}
	return map[string]any{"accountEmail": sh.Email, "accessRole": sh.AccessRole, "userRoleId": sh.UserRoleID,
		"customPermissions": sh.CustomPermissions, "isEnabled": sh.Enabled, "vmsUserId": sh.VMSUserID, "roleIds": roles}
}

// roleGroupID is the id of the VMS user group the cloud assigns for an access role
// when a share names none (inference: the cloud echoes ids the VMS chose; the ids
// here are the fake's own).
func roleGroupID(role string) string {
	h := 0
	for _, c := range role {
		h = h*31 + int(c)
	}
	return fmt.Sprintf("00000000-0000-0000-0000-1%011d", h%100000000000)
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
	for _, e := range fault.SortedKeys(w.shares[s.ID]) {
		out = append(out, shareJSON(w.shares[s.ID][e]))
	}
	w.answers++
	if w.answers%2 == 0 {
		fault.WriteJSON(rw, 200, map[string]any{"users": out})
		return
	}
	fault.WriteJSON(rw, 200, out)
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
		fault.WriteJSON(rw, 200, map[string]any{"accountEmail": key, "accessRole": "none"})
		return
	}
	enabled := req.IsEnabled == nil || *req.IsEnabled
	sh := &Share{Email: key, AccessRole: req.AccessRole, UserRoleID: req.UserRoleID, CustomPermissions: req.CustomPermissions, VMSUserID: req.VMSUserID, Enabled: enabled}
	// The cloud fills in what the VMS assigns: the user's id on the server and its
	// role group, and echoes them back from then on (inference).
	old := w.shares[s.ID][key]
	if sh.VMSUserID == "" {
		if old != nil && old.VMSUserID != "" {
			sh.VMSUserID = old.VMSUserID
		} else {
			sh.VMSUserID = fault.UUID()
		}
	}
	if sh.UserRoleID == "" {
		sh.UserRoleID = roleGroupID(sh.AccessRole)
	}
	if _, ok := w.shares[s.ID][key]; ok {
		w.counters.SharesUpdated++
	} else {
		w.counters.SharesCreated++
	}
	w.shares[s.ID][key] = sh
	fault.WriteJSON(rw, 200, shareJSON(sh))
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
