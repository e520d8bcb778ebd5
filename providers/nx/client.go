package nx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
)

// Cloud is an Nx Cloud (cdb) client for one nx-cloud endpoint. It holds the one
// access token all tasks of the endpoint share (fetched lazily, renewed before it
// expires and after a 401, with the refresh token first, then the password). Safe
// for concurrent use.
type Cloud struct {
	c    *rest.Client
	auth *rest.TokenAuth
	// Email is the account the endpoint logs in with (owner of the systems it binds).
	Email string

	mu      sync.Mutex
	refresh string
	// shares caches each system's share list for the run: read at most once,
	// updated as shares are written (a system bound in this run starts empty).
	shares map[string]*shareList
}

// shareList is one system's cached share list; mu is held while it is read, so
// the share tasks of one system wait for one read instead of each making one.
type shareList struct {
	mu     sync.Mutex
	loaded bool
	list   []Share
}

func (cl *Cloud) shareEntry(systemID string) *shareList {
	key := strings.ToLower(strings.Trim(systemID, "{}"))
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.shares == nil {
		cl.shares = map[string]*shareList{}
	}
	e := cl.shares[key]
	if e == nil {
		e = &shareList{}
		cl.shares[key] = e
	}
	return e
}

// CachedShares returns a system's shares, reading the list from the cloud at most
// once per client (per run) and sharing it among the system's share tasks.
func (cl *Cloud) CachedShares(ctx context.Context, systemID string) ([]Share, error) {
	e := cl.shareEntry(systemID)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.loaded {
		list, err := cl.Shares(ctx, systemID)
		if err != nil {
			return nil, err
		}
		e.list, e.loaded = list, true
	}
	return append([]Share(nil), e.list...), nil
}

// noteShare records a share written to the cloud in the cached list (accessRole
// none removes it); a list not read yet stays unread.
func (cl *Cloud) noteShare(systemID string, s Share) {
	e := cl.shareEntry(systemID)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.loaded {
		return
	}
	out := e.list[:0:0]
	for _, c := range e.list {
		if !strings.EqualFold(c.AccountEmail, s.AccountEmail) {
			out = append(out, c)
		}
	}
	if s.AccessRole != "none" {
		out = append(out, s)
	}
	e.list = out
}

// forgetShares drops a system's cached list (after a write whose outcome is
// unknown), so that the next look reads it again.
func (cl *Cloud) forgetShares(systemID string) {
	e := cl.shareEntry(systemID)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list, e.loaded = nil, false
}

// replaceShares sets a system's cached list to what the cloud just answered.
func (cl *Cloud) replaceShares(systemID string, list []Share) {
	e := cl.shareEntry(systemID)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list, e.loaded = append([]Share(nil), list...), true
}

// noteNewSystem records that a system was just bound in this run: it is shared
// with its owner only, so its share tasks need not read the list.
func (cl *Cloud) noteNewSystem(systemID, owner string) {
	cl.replaceShares(systemID, []Share{{AccountEmail: owner, AccessRole: "owner", IsEnabled: true}})
}

// NewCloud builds the client for an nx-cloud endpoint. Auth type "" or
// "oauth2-password" with username (the account's email) and password.
func NewCloud(ep *plan.Endpoint, red *plan.Redactor) (*Cloud, error) {
	a := ep.Auth
	if a.Type != "" && a.Type != "oauth2-password" {
		return nil, fmt.Errorf("auth.type %q: nx-cloud endpoints use oauth2-password (username and password of the cloud account)", a.Type)
	}
	var errs []error
	if a.Username == "" {
		errs = append(errs, errors.New("auth.username: required (the cloud account's email)"))
	}
	if a.Password.IsZero() {
		errs = append(errs, errors.New("auth.password: required (the cloud account's password)"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cl := &Cloud{Email: a.Username}
	scope := strings.TrimRight(ep.URL, "/") + " cloudSystemId=*"
	if a.Scope != "" {
		scope = a.Scope
	}
	cl.auth = &rest.TokenAuth{Redactor: red, Fetch: func(ctx context.Context, c *rest.Client) (rest.Token, error) {
		cl.mu.Lock()
		ref := cl.refresh
		cl.mu.Unlock()
		if ref != "" {
			t, err := cl.grant(ctx, c, red, map[string]string{"grant_type": "refresh_token", "response_type": "token", "client_id": "3rdParty",
				"scope": scope, "refresh_token": ref})
			if err == nil || ctx.Err() != nil {
				return t, err
			}
			// The refresh token expired or was revoked: log in again with the password.
		}
		return cl.grant(ctx, c, red, map[string]string{"grant_type": "password", "response_type": "token", "client_id": "3rdParty",
			"scope": scope, "username": a.Username, "password": a.Password.Reveal()})
	}}
	c, err := rest.New(rest.Config{Name: ep.Name, BaseURL: ep.URL, TLS: ep.TLS, Limits: ep.Limits, Timeout: ep.Timeout.D(),
		Auth: cl.auth, DecodeError: cloudErrorDecoder})
	if err != nil {
		return nil, err
	}
	cl.c = c
	return cl, nil
}

// grant asks /cdb/oauth2/token for a token (a JSON body, not a form).
func (cl *Cloud) grant(ctx context.Context, c *rest.Client, red *plan.Redactor, body map[string]string) (rest.Token, error) {
	op := "cloud token request (" + body["grant_type"] + ")"
	req := &rest.Request{Method: http.MethodPost, Path: "/cdb/oauth2/token", JSON: body, NoAuth: true, Idempotent: true, Op: op}
	resp, err := c.Do(ctx, req)
	if err == nil {
		err = resultCodeError(req, resp)
	}
	if err != nil {
		return rest.Token{}, classify(err)
	}
	ta, err := decodeToken(resp.Body)
	if err != nil {
		return rest.Token{}, &providers.Error{Op: op, Status: resp.Status, Message: err.Error()}
	}
	red.Add(ta.Refresh)
	cl.mu.Lock()
	cl.refresh = ta.Refresh
	cl.mu.Unlock()
	return ta.Token(time.Now()), nil
}

// decodeToken reads {access_token, refresh_token, expires_in (number or string), expires_at (ms)}.
func decodeToken(b []byte) (rest.TokenAnswer, error) {
	var ta rest.TokenAnswer
	if err := json.Unmarshal(b, &ta); err != nil {
		return ta, fmt.Errorf("unexpected token answer: %v", err)
	}
	if ta.AccessToken == "" {
		return ta, errors.New("token answer holds no access_token")
	}
	return ta, nil
}

// cloudErrorDecoder reads {errorClass, resultCode, errorDetail (number or string), errorText}.
func cloudErrorDecoder(status int, h http.Header, body []byte) (string, string) {
	var e struct {
		ErrorClass flexString `json:"errorClass"`
		ResultCode flexString `json:"resultCode"`
		ErrorText  flexString `json:"errorText"`
	}
	if json.Unmarshal(body, &e) == nil && (e.ResultCode != "" || e.ErrorText != "" || e.ErrorClass != "") {
		code := string(e.ResultCode)
		if code == "" {
			code = string(e.ErrorClass)
		}
		msg := string(e.ErrorText)
		if msg == "" {
			msg = http.StatusText(status)
		}
		return clip(code, 80), clip(msg, 300)
	}
	return rest.DefaultErrorDecoder(status, h, body)
}

// do sends a cloud request. A 2xx answer whose body is an object with a resultCode
// other than "ok" is an error with that code (nx_system_tests _raise_for_status
// treats every code but "ok"/"OK" as a failure, whatever the status).
func (cl *Cloud) do(ctx context.Context, r *rest.Request) (*rest.Response, error) {
	resp, err := cl.c.Do(ctx, r)
	if err != nil {
		return nil, classify(err)
	}
	if err := resultCodeError(r, resp); err != nil {
		return nil, classify(err)
	}
	return resp, nil
}

// resultCodeError reads the resultCode of a 2xx answer; nil when absent or ok.
func resultCodeError(r *rest.Request, resp *rest.Response) error {
	b := bytes.TrimSpace(resp.Body)
	if resp.Status < 200 || resp.Status > 299 || len(b) == 0 || b[0] != '{' || !bytes.Contains(b, []byte(`"resultCode"`)) {
		return nil
	}
	var e struct {
		ResultCode flexString `json:"resultCode"`
		ErrorText  flexString `json:"errorText"`
	}
	if json.Unmarshal(b, &e) != nil {
		return nil // not an envelope; the caller's decoding will say what is wrong
	}
	code := string(e.ResultCode)
	if code == "" || strings.EqualFold(code, "ok") {
		return nil
	}
	op := r.Op
	if op == "" {
		op = r.Method + " " + r.Path
	}
	msg := string(e.ErrorText)
	if msg == "" {
		msg = "the answer's resultCode is not ok"
	}
	// A create that answered 2xx with an error code is taken as possibly applied
	// (the outcome is the server's word only): the next attempt looks it up.
	return &providers.Error{Op: op, Status: resp.Status, Code: clip(code, 80), Message: clip(msg, 300), MaybeApplied: !r.Idempotent && r.Method != http.MethodGet}
}

// retryableCodes are result codes that say "try again later" whatever the status.
var retryableCodes = map[string]bool{"tooManyRequests": true, "retryLater": true, "serviceUnavailable": true}

// classify marks cloud answers that name a transient condition as retryable.
func classify(err error) error {
	var e *providers.Error
	if errors.As(err, &e) && retryableCodes[e.Code] {
		e.Retryable = true
	}
	return err
}

// System is a cloud system as the cloud shows it (authKey only in a bind answer).
// Status is the cdb's status or, in partners lists, system_state.
type System struct {
	ID            string
	Name          string
	Customization string
	Owner         string
	Status        string
	AuthKey       string
}

type systemJSON struct {
	ID            flexString `json:"id"`
	Name          flexString `json:"name"`
	Customization flexString `json:"customization"`
	Owner         flexString `json:"ownerAccountEmail"`
	Status        flexString `json:"status"`
	SystemState   flexString `json:"system_state"`
	AuthKey       flexString `json:"authKey"`
}

func (s systemJSON) system() System {
	st := s.Status
	if st == "" {
		st = s.SystemState // the partners API's name (nx_system_tests _CloudSystem)
	}
	return System{ID: string(s.ID), Name: string(s.Name), Customization: string(s.Customization), Owner: string(s.Owner), Status: string(st), AuthKey: string(s.AuthKey)}
}

// StatusNotActivated is the status of a cloud system no server has bound yet.
const StatusNotActivated = "notActivated"

// Bind creates a NEW cloud system and returns it with its auth key. It is not
// idempotent: every call creates another system, so it is never repeated blindly.
func (cl *Cloud) Bind(ctx context.Context, name, customization, org string) (*System, error) {
	var req *rest.Request
	if org != "" {
		req = &rest.Request{Method: http.MethodPost, Path: "/partners/api/v3/cloud_systems/", Op: "POST /partners/api/v3/cloud_systems/",
			JSON: map[string]string{"name": name, "customization": customization, "organization": org}}
	} else {
		req = &rest.Request{Method: http.MethodPost, Path: "/cdb/systems/bind", JSON: map[string]string{"name": name, "customization": customization}}
	}
	resp, err := cl.do(ctx, req)
	if org == "" && providers.StatusOf(err) == http.StatusNotFound {
		// Older clouds know only the singular form; a 404 created nothing.
		req.Path, req.Op = "/cdb/system/bind", ""
		resp, err = cl.do(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	s, err := decodeSystem(resp.Body)
	if err != nil {
		// The system was created but the answer is unusable: the outcome is in doubt.
		return nil, &providers.Error{Op: req.Op, Status: resp.Status, Message: err.Error(), MaybeApplied: true}
	}
	if s.ID == "" || s.AuthKey == "" {
		return nil, &providers.Error{Op: req.Op, Status: resp.Status, Message: "bind answer holds no id or authKey", MaybeApplied: true}
	}
	return &s, nil
}

func decodeSystem(b []byte) (System, error) {
	var s systemJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return System{}, fmt.Errorf("unexpected cloud system answer: %v", err)
	}
	return s.system(), nil
}

// System reads one cloud system; nil when the cloud does not know it (404) or
// answers 403, which is how it answers for a removed system ("inaccessible or
// removed": nx_system_tests cloud_api/_cloud.py remove_system), and for a system of
// another account, which this account cannot use either.
func (cl *Cloud) System(ctx context.Context, id string) (*System, error) {
	resp, err := cl.do(ctx, &rest.Request{Method: http.MethodGet, Path: "/cdb/systems/" + url.PathEscape(id), Op: "GET /cdb/systems/{id}"})
	if st := providers.StatusOf(err); st == http.StatusNotFound || st == http.StatusForbidden {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := decodeSystem(resp.Body)
	if err != nil {
		return nil, &providers.Error{Op: "GET /cdb/systems/{id}", Status: resp.Status, Message: err.Error()}
	}
	if s.ID == "" {
		s.ID = id
	}
	return &s, nil
}

// maxPages bounds how many pages of a partners list are followed.
const maxPages = 10_000

// Systems lists the account's (or the organization's) cloud systems. The partners
// list is paginated ({count, next, previous, results}): every page is read, following
// next (an absolute URL) to the end (nx_system_tests _get_paginated_result).
func (cl *Cloud) Systems(ctx context.Context, org string) ([]System, error) {
	if org == "" {
		resp, err := cl.do(ctx, &rest.Request{Method: http.MethodGet, Path: "/cdb/systems", Op: "GET /cdb/systems"})
		if err != nil {
			return nil, err
		}
		list, _, err := decodeSystems(resp.Body)
		if err != nil {
			return nil, &providers.Error{Op: "GET /cdb/systems", Status: resp.Status, Message: err.Error()}
		}
		return list, nil
	}
	op := "GET /partners/api/v2/organizations/{org}/cloud_systems/"
	path := "/partners/api/v2/organizations/" + url.PathEscape(org) + "/cloud_systems/"
	var all []System
	seen := map[string]bool{}
	for page := 1; path != ""; page++ {
		if page > maxPages || seen[path] {
			return nil, &providers.Error{Op: op, Message: fmt.Sprintf("the list's next links do not end (page %d)", page)}
		}
		seen[path] = true
		resp, err := cl.do(ctx, &rest.Request{Method: http.MethodGet, Path: path, Op: op})
		if err != nil {
			return nil, err
		}
		list, next, err := decodeSystems(resp.Body)
		if err != nil {
			return nil, &providers.Error{Op: op, Status: resp.Status, Message: fmt.Sprintf("page %d: %v", page, err)}
		}
		all = append(all, list...)
		path, err = cl.nextPath(next)
		if err != nil {
			return nil, &providers.Error{Op: op, Status: resp.Status, Message: fmt.Sprintf("page %d: %v", page, err)}
		}
	}
	return all, nil
}

// nextPath turns a list's next link (absolute, or a path) into a request path
// relative to the endpoint: a link to another host is refused (the token is never
// sent elsewhere).
func (cl *Cloud) nextPath(next string) (string, error) {
	if next == "" {
		return "", nil
	}
	u, err := url.Parse(next)
	if err != nil {
		return "", fmt.Errorf("next link %q is not a URL", clip(next, 100))
	}
	base := cl.c.BaseURL()
	if u.Host != "" && !strings.EqualFold(u.Host, base.Host) {
		return "", fmt.Errorf("next link points to another host (%s)", clip(u.Host, 100))
	}
	p := u.Path
	// The link carries the endpoint's own path prefix, if any: strip it.
	if pre := strings.TrimRight(base.Path, "/"); pre != "" && strings.HasPrefix(p, pre+"/") {
		p = strings.TrimPrefix(p, pre)
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p, nil
}

// decodeSystems accepts {systems:[...]}, {results:[...], next} (partners) and a bare
// array; next is the partners' link to the next page ("" on the last).
func decodeSystems(b []byte) ([]System, string, error) {
	var raw []systemJSON
	next := ""
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, "", fmt.Errorf("unexpected cloud system list: %v", err)
		}
	} else {
		var wrapped struct {
			Systems *[]systemJSON `json:"systems"`
			Results *[]systemJSON `json:"results"`
			Next    flexString    `json:"next"`
		}
		if err := json.Unmarshal(b, &wrapped); err != nil {
			return nil, "", fmt.Errorf("unexpected cloud system list: %v", err)
		}
		switch {
		case wrapped.Systems != nil:
			raw = *wrapped.Systems
		case wrapped.Results != nil:
			raw = *wrapped.Results
			next = string(wrapped.Next)
		default:
			return nil, "", errors.New("unexpected cloud system list: neither an array nor {systems} nor {results}")
		}
	}
	out := make([]System, len(raw))
	for i, s := range raw {
		out[i] = s.system()
	}
	return out, next, nil
}

// Delete removes (unbinds) a cloud system; one the cloud does not know (404) or
// answers 403 for (removed already: nx_system_tests remove_system) counts as removed.
func (cl *Cloud) Delete(ctx context.Context, id string) error {
	_, err := cl.do(ctx, &rest.Request{Method: http.MethodDelete, Path: "/cdb/systems/" + url.PathEscape(id), Op: "DELETE /cdb/systems/{id}",
		Idempotent: true, OK: []int{200, 202, 204, 403, 404}})
	return err
}

// Share is one account's access to a cloud system.
type Share struct {
	AccountEmail      string `json:"accountEmail"`
	AccessRole        string `json:"accessRole"`
	UserRoleID        string `json:"userRoleId"`
	CustomPermissions string `json:"customPermissions"`
	IsEnabled         bool   `json:"isEnabled"`
	VMSUserID         string `json:"vmsUserId"`
}

// Satisfies reports whether the share the cloud lists (s) grants what want asks
// for. The cloud echoes back ids the VMS assigns (userRoleId, vmsUserId, roleIds),
// so those count only when want names them; customPermissions only for role custom.
func (s Share) Satisfies(want Share) bool {
	return strings.EqualFold(s.AccountEmail, want.AccountEmail) && s.AccessRole == want.AccessRole && s.IsEnabled == want.IsEnabled &&
		(want.UserRoleID == "" || strings.EqualFold(s.UserRoleID, want.UserRoleID)) &&
		(want.VMSUserID == "" || strings.EqualFold(strings.Trim(s.VMSUserID, "{}"), strings.Trim(want.VMSUserID, "{}"))) &&
		(want.AccessRole != "custom" || s.CustomPermissions == want.CustomPermissions)
}

type shareJSON struct {
	AccountEmail      flexString `json:"accountEmail"`
	AccessRole        flexString `json:"accessRole"`
	UserRoleID        flexString `json:"userRoleId"`
	CustomPermissions flexString `json:"customPermissions"`
	IsEnabled         *flexBool  `json:"isEnabled"`
	VMSUserID         flexString `json:"vmsUserId"`
}

// Shares lists the accounts a system is shared with.
func (cl *Cloud) Shares(ctx context.Context, systemID string) ([]Share, error) {
	resp, op, err := cl.sharesCall(ctx, &rest.Request{Method: http.MethodGet}, systemID)
	if err != nil {
		return nil, err
	}
	list, err := decodeShares(resp.Body)
	if err != nil {
		return nil, &providers.Error{Op: op, Status: resp.Status, Message: err.Error()}
	}
	return list, nil
}

// decodeShares accepts a bare array or {users:[...]}; isEnabled absent means enabled.
func decodeShares(b []byte) ([]Share, error) {
	var raw []shareJSON
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("unexpected share list: %v", err)
		}
	} else {
		var wrapped struct {
			Users *[]shareJSON `json:"users"`
		}
		if err := json.Unmarshal(b, &wrapped); err != nil {
			return nil, fmt.Errorf("unexpected share list: %v", err)
		}
		if wrapped.Users == nil {
			return nil, errors.New("unexpected share list: neither an array nor {users}")
		}
		raw = *wrapped.Users
	}
	out := make([]Share, len(raw))
	for i, s := range raw {
		out[i] = Share{AccountEmail: string(s.AccountEmail), AccessRole: string(s.AccessRole), UserRoleID: string(s.UserRoleID),
			CustomPermissions: string(s.CustomPermissions), IsEnabled: s.IsEnabled == nil || bool(*s.IsEnabled), VMSUserID: string(s.VMSUserID)}
	}
	return out, nil
}

// PutShare shares a system with an account: an upsert on the cloud's side, so it may
// be repeated freely (accessRole "none" removes the share).
func (cl *Cloud) PutShare(ctx context.Context, systemID string, s Share) error {
	_, _, err := cl.sharesCall(ctx, &rest.Request{Method: http.MethodPost, JSON: s, Idempotent: true}, systemID)
	return err
}

// sharesCall tries /cdb/systems/{id}/users, then /cdb/v0/systems/{id}/users on 404.
func (cl *Cloud) sharesCall(ctx context.Context, r *rest.Request, systemID string) (*rest.Response, string, error) {
	r.Path = "/cdb/systems/" + url.PathEscape(systemID) + "/users"
	r.Op = r.Method + " /cdb/systems/{id}/users"
	resp, err := cl.do(ctx, r)
	if providers.StatusOf(err) == http.StatusNotFound {
		r.Path = "/cdb/v0/systems/" + url.PathEscape(systemID) + "/users"
		r.Op = r.Method + " /cdb/v0/systems/{id}/users"
		resp, err = cl.do(ctx, r)
	}
	return resp, r.Op, err
}

// Server is a client for one Nx Witness server (REST v3). Safe for concurrent use.
type Server struct {
	c *rest.Client
}

// Credential is one password to try when logging in to a server; Label names the
// plan field it comes from (never the value) for error messages.
type Credential struct {
	Label    string
	Password plan.Secret
}

// serverErrorDecoder reads {error, errorId, errorString}.
func serverErrorDecoder(status int, h http.Header, body []byte) (string, string) {
	var e struct {
		ErrorID     flexString `json:"errorId"`
		ErrorString flexString `json:"errorString"`
	}
	if json.Unmarshal(body, &e) == nil && (e.ErrorID != "" || e.ErrorString != "") {
		msg := string(e.ErrorString)
		if msg == "" {
			msg = http.StatusText(status)
		}
		return clip(string(e.ErrorID), 80), clip(msg, 300)
	}
	return rest.DefaultErrorDecoder(status, h, body)
}

// sessionExpired: 401, or 403 with x-auth-result: Auth_WrongSessionToken.
func sessionExpired(status int, h http.Header, _ []byte) bool {
	return status == http.StatusUnauthorized ||
		(status == http.StatusForbidden && strings.Contains(h.Get("x-auth-result"), "Auth_WrongSessionToken"))
}

// NewServer builds a client for the server at baseURL (over rt, a transport shared
// with other servers' clients: see rest.Transports) that logs in as username with
// the first credential the server accepts (the one that worked last is tried
// first): a resumed run meets servers whose password an earlier setup changed.
func NewServer(name, baseURL string, rt http.RoundTripper, username string, creds []Credential, red *plan.Redactor) (*Server, error) {
	var mu sync.Mutex
	last := 0
	auth := &rest.TokenAuth{Redactor: red, Fetch: func(ctx context.Context, c *rest.Client) (rest.Token, error) {
		mu.Lock()
		start := last
		mu.Unlock()
		var tried []string
		var lastErr error
		for n := 0; n < len(creds); n++ {
			i := (start + n) % len(creds)
			cr := creds[i]
			if cr.Password.IsZero() {
				continue
			}
			tried = append(tried, cr.Label)
			resp, err := c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/rest/v3/login/sessions", NoAuth: true, Idempotent: true, Op: "server login",
				JSON: map[string]string{"username": username, "password": cr.Password.Reveal()}})
			if st := providers.StatusOf(err); err != nil && (st == http.StatusUnauthorized || st == http.StatusUnprocessableEntity) {
				lastErr = err
				continue // wrong password: try the next one
			}
			if err != nil {
				return rest.Token{}, err // locked out, unreachable, 5xx: do not try more passwords
			}
			var s struct {
				Token      flexString   `json:"token"`
				ExpiresInS rest.FlexInt `json:"expiresInS"`
			}
			if err := decodeReply(resp, "server login", &s); err != nil {
				return rest.Token{}, err
			}
			mu.Lock()
			last = i
			mu.Unlock()
			t := rest.Token{Value: string(s.Token)}
			if s.ExpiresInS > 0 {
				t.Expiry = time.Now().Add(time.Duration(s.ExpiresInS) * time.Second)
			}
			return t, nil
		}
		if lastErr == nil {
			return rest.Token{}, errors.New("no password to log in with")
		}
		return rest.Token{}, fmt.Errorf("log in as %s: no password was accepted (tried %s): %w", username, strings.Join(tried, ", "), lastErr)
	}}
	c, err := rest.New(rest.Config{Name: name, BaseURL: baseURL, Transport: rt, Auth: auth, DecodeError: serverErrorDecoder, Expired: sessionExpired})
	if err != nil {
		return nil, err
	}
	return &Server{c: c}, nil
}

// decodeReply decodes a v3 answer into v (nil: only check it), unwrapping the old
// {error:"0", reply:{...}} form; an old-style body with a non-zero error is an error.
func decodeReply(resp *rest.Response, op string, v any) error {
	body := bytes.TrimSpace(resp.Body)
	var old struct {
		Error       *flexString     `json:"error"`
		ErrorID     flexString      `json:"errorId"`
		ErrorString flexString      `json:"errorString"`
		Reply       json.RawMessage `json:"reply"`
	}
	if len(body) > 0 && body[0] == '{' && json.Unmarshal(body, &old) == nil && old.Error != nil {
		if e := string(*old.Error); e != "0" && e != "" {
			return &providers.Error{Op: op, Status: resp.Status, Code: clip(string(old.ErrorID), 80), Message: clip(string(old.ErrorString), 300)}
		}
		if len(old.Reply) > 0 {
			body = old.Reply
		}
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &providers.Error{Op: op, Status: resp.Status, Message: "unexpected answer: " + clip(string(body), 200), Err: err}
	}
	return nil
}

// Info is what GET /rest/v3/system/info tells.
type Info struct {
	Name    string
	LocalID string
	CloudID string
	Version string
}

// nilUUID is how a server that is not set up reports its localId.
const nilUUID = "00000000-0000-0000-0000-000000000000"

// SetUp reports whether the server was set up: localId present and not the nil UUID.
func (i Info) SetUp() bool {
	id := strings.Trim(i.LocalID, "{} ")
	return id != "" && id != nilUUID
}

// TakesOrganizationID reports whether the server's version reads organizationId in
// the cloud part of setup and in cloud/bind: VMS 6.1 and later (CloudAuthBase; 6.0's
// CloudSystemAuth has no such field: nx_open nx_vms_api system_information.h).
// An unreadable version counts as older.
func (i Info) TakesOrganizationID() bool {
	parts := strings.SplitN(strings.TrimSpace(i.Version), ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return err1 == nil && err2 == nil && (major > 6 || (major == 6 && minor >= 1))
}

// Bound reports whether the server is bound to a cloud system.
func (i Info) Bound() bool {
	id := strings.Trim(i.CloudID, "{} ")
	return id != "" && id != nilUUID
}

func decodeInfo(resp *rest.Response) (Info, error) {
	var raw struct {
		Name    flexString `json:"name"`
		LocalID flexString `json:"localId"`
		CloudID flexString `json:"cloudId"`
		Version flexString `json:"version"`
	}
	if err := decodeReply(resp, "GET /rest/v3/system/info", &raw); err != nil {
		return Info{}, err
	}
	return Info{Name: string(raw.Name), LocalID: string(raw.LocalID), CloudID: strings.Trim(string(raw.CloudID), "{} "), Version: string(raw.Version)}, nil
}

// Info reads the system's state.
func (s *Server) Info(ctx context.Context) (Info, error) {
	resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodGet, Path: "/rest/v3/system/info"})
	if err != nil {
		return Info{}, err
	}
	return decodeInfo(resp)
}

// Setup sets up a factory-new server (and connects it to the cloud when the body
// carries cloud credentials). Not idempotent: a repeated setup is refused. It returns
// the localId the answer names, "" when it names none (the answer's shape is not
// documented: inference).
func (s *Server) Setup(ctx context.Context, body map[string]any) (string, error) {
	resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/rest/v3/system/setup", JSON: body})
	if err != nil {
		return "", err
	}
	var a struct {
		LocalID flexString `json:"localId"`
	}
	if len(bytes.TrimSpace(resp.Body)) == 0 {
		return "", decodeReply(resp, "POST /rest/v3/system/setup", nil)
	}
	if err := decodeReply(resp, "POST /rest/v3/system/setup", &a); err != nil {
		// A success answer that is not an object still means set up.
		var pe *providers.Error
		if errors.As(err, &pe) && pe.Code == "" && resp.Status >= 200 && resp.Status < 300 {
			return "", nil
		}
		return "", err
	}
	id := strings.Trim(string(a.LocalID), "{} ")
	if id == nilUUID {
		id = ""
	}
	return id, nil
}

// CloudBind connects a set-up server to a cloud system.
func (s *Server) CloudBind(ctx context.Context, body map[string]string) error {
	resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/rest/v3/system/cloud/bind", JSON: body})
	if err != nil {
		return err
	}
	return decodeReply(resp, "POST /rest/v3/system/cloud/bind", nil)
}

// PatchSettings updates system settings (idempotent).
func (s *Server) PatchSettings(ctx context.Context, settings map[string]any) error {
	resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodPatch, Path: "/rest/v3/system/settings", JSON: settings, Idempotent: true})
	if err != nil {
		return err
	}
	return decodeReply(resp, "PATCH /rest/v3/system/settings", nil)
}

// flexString decodes a JSON string, number or boolean as a string (null as "").
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*f = ""
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case b[0] == '{' || b[0] == '[':
		return fmt.Errorf("want a string, got %s", clip(string(b), 40))
	default:
		*f = flexString(b)
	}
	return nil
}

// flexBool decodes true/false, "true"/"false", 1/0.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "" || s == "null" {
		*f = false
		return nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want a boolean, got %s", clip(s, 40))
	}
	*f = flexBool(v)
	return nil
}

func clip(s string, n int) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "?")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
