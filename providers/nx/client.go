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
	resp, err := c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/cdb/oauth2/token", JSON: body, NoAuth: true, Idempotent: true, Op: op})
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
	AuthKey       flexString `json:"authKey"`
}

func (s systemJSON) system() System {
	return System{ID: string(s.ID), Name: string(s.Name), Customization: string(s.Customization), Owner: string(s.Owner), Status: string(s.Status), AuthKey: string(s.AuthKey)}
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
	resp, err := cl.c.Do(ctx, req)
	if org == "" && providers.StatusOf(err) == http.StatusNotFound {
		// Older clouds know only the singular form; a 404 created nothing.
		req.Path, req.Op = "/cdb/system/bind", ""
		resp, err = cl.c.Do(ctx, req)
	}
	if err != nil {
		return nil, classify(err)
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
// answers 403, as it does for a removed system (API-NOTES section 6).
func (cl *Cloud) System(ctx context.Context, id string) (*System, error) {
	resp, err := cl.c.Do(ctx, &rest.Request{Method: http.MethodGet, Path: "/cdb/systems/" + url.PathEscape(id), Op: "GET /cdb/systems/{id}"})
	if st := providers.StatusOf(err); st == http.StatusNotFound || st == http.StatusForbidden {
		return nil, nil
	}
	if err != nil {
		return nil, classify(err)
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

// Systems lists the account's (or the organization's) cloud systems.
func (cl *Cloud) Systems(ctx context.Context, org string) ([]System, error) {
	path, op := "/cdb/systems", "GET /cdb/systems"
	if org != "" {
		path, op = "/partners/api/v2/organizations/"+url.PathEscape(org)+"/cloud_systems/", "GET /partners/api/v2/organizations/{org}/cloud_systems/"
	}
	resp, err := cl.c.Do(ctx, &rest.Request{Method: http.MethodGet, Path: path, Op: op})
	if err != nil {
		return nil, classify(err)
	}
	list, err := decodeSystems(resp.Body)
	if err != nil {
		return nil, &providers.Error{Op: op, Status: resp.Status, Message: err.Error()}
	}
	return list, nil
}

// decodeSystems accepts {systems:[...]}, {results:[...]} (partners) and a bare array.
func decodeSystems(b []byte) ([]System, error) {
	var raw []systemJSON
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("unexpected cloud system list: %v", err)
		}
	} else {
		var wrapped struct {
			Systems *[]systemJSON `json:"systems"`
			Results *[]systemJSON `json:"results"`
		}
		if err := json.Unmarshal(b, &wrapped); err != nil {
			return nil, fmt.Errorf("unexpected cloud system list: %v", err)
		}
		switch {
		case wrapped.Systems != nil:
			raw = *wrapped.Systems
		case wrapped.Results != nil:
			raw = *wrapped.Results
		default:
			return nil, errors.New("unexpected cloud system list: neither an array nor {systems} nor {results}")
		}
	}
	out := make([]System, len(raw))
	for i, s := range raw {
		out[i] = s.system()
	}
	return out, nil
}

// Delete removes (unbinds) a cloud system; one the cloud does not know counts as removed.
func (cl *Cloud) Delete(ctx context.Context, id string) error {
	_, err := cl.c.Do(ctx, &rest.Request{Method: http.MethodDelete, Path: "/cdb/systems/" + url.PathEscape(id), Op: "DELETE /cdb/systems/{id}",
		Idempotent: true, OK: []int{200, 202, 204, 404}})
	return classify(err)
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

// Same reports whether two shares grant the same access.
func (s Share) Same(o Share) bool {
	return strings.EqualFold(s.AccountEmail, o.AccountEmail) && s.AccessRole == o.AccessRole && s.IsEnabled == o.IsEnabled &&
		s.UserRoleID == o.UserRoleID && s.CustomPermissions == o.CustomPermissions && s.VMSUserID == o.VMSUserID
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
	resp, err := cl.c.Do(ctx, r)
	if providers.StatusOf(err) == http.StatusNotFound {
		r.Path = "/cdb/v0/systems/" + url.PathEscape(systemID) + "/users"
		r.Op = r.Method + " /cdb/v0/systems/{id}/users"
		resp, err = cl.c.Do(ctx, r)
	}
	return resp, r.Op, classify(err)
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

// NewServer builds a client for the server at baseURL that logs in as username with
// the first credential the server accepts (the one that worked last is tried
// first): a resumed run meets servers whose password an earlier setup changed.
func NewServer(name, baseURL string, tls plan.TLS, username string, creds []Credential, red *plan.Redactor) (*Server, error) {
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
	c, err := rest.New(rest.Config{Name: name, BaseURL: baseURL, TLS: tls, Auth: auth, DecodeError: serverErrorDecoder, Expired: sessionExpired})
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
// carries cloud credentials). Not idempotent: a repeated setup is refused.
func (s *Server) Setup(ctx context.Context, body map[string]any) error {
	resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/rest/v3/system/setup", JSON: body})
	if err != nil {
		return err
	}
	return decodeReply(resp, "POST /rest/v3/system/setup", nil)
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
