package nx

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
)

// Cloud is an Nx Cloud (cdb) client for one endpoint; safe for concurrent use.
type Cloud struct {
	c    *rest.Client
	auth *rest.TokenAuth
	// Email is the account the endpoint logs in with (owner of the systems it binds).
	Email string
}

// cloudErrorDecoder reads {errorClass, resultCode, errorDetail, errorText}.
func cloudErrorDecoder(status int, h http.Header, body []byte) (string, string) {
	var e struct {
		ResultCode string `json:"resultCode"`
		ErrorText  string `json:"errorText"`
	}
	if json.Unmarshal(body, &e) == nil && (e.ResultCode != "" || e.ErrorText != "") {
		return e.ResultCode, e.ErrorText
	}
	return rest.DefaultErrorDecoder(status, h, body)
}

// NewCloud builds the client for an nx-cloud endpoint.
func NewCloud(ep *plan.Endpoint, red *plan.Redactor) (*Cloud, error) {
	a := ep.Auth
	if a.Type != "" && a.Type != "oauth2-password" {
		return nil, fmt.Errorf("auth type %q: nx-cloud endpoints use oauth2-password (username, password)", a.Type)
	}
	if a.Username == "" || a.Password.IsZero() {
		return nil, fmt.Errorf("auth: username and password of the cloud account are required")
	}
	cloudURL := strings.TrimRight(ep.URL, "/")
	auth := &rest.TokenAuth{Redactor: red, Fetch: func(ctx context.Context, c *rest.Client) (rest.Token, error) {
		resp, err := c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/cdb/oauth2/token", NoAuth: true, Idempotent: true, Op: "cloud token request",
			JSON: map[string]string{"grant_type": "password", "response_type": "token", "client_id": "3rdParty",
				"scope": cloudURL + " cloudSystemId=*", "username": a.Username, "password": a.Password.Reveal()}})
		if err != nil {
			return rest.Token{}, err
		}
		var tr rest.TokenAnswer
		if err := resp.JSON("cloud token request", &tr); err != nil {
			return rest.Token{}, err
		}
		return tr.Token(time.Now()), nil
	}}
	c, err := rest.New(rest.Config{Name: ep.Name, BaseURL: ep.URL, TLS: ep.TLS, Limits: ep.Limits, Timeout: ep.Timeout.D(), Auth: auth, DecodeError: cloudErrorDecoder})
	if err != nil {
		return nil, err
	}
	return &Cloud{c: c, auth: auth, Email: a.Username}, nil
}

// System is a cloud system as the cloud lists it.
type System struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Customization string `json:"customization"`
	Owner         string `json:"ownerAccountEmail"`
	Status        string `json:"status"`
	AuthKey       string `json:"authKey"`
}

// Bind creates a NEW cloud system (not idempotent: never repeat blindly).
func (c *Cloud) Bind(ctx context.Context, name, customization, org string) (*System, error) {
	var req *rest.Request
	if org != "" {
		req = &rest.Request{Method: http.MethodPost, Path: "/partners/api/v3/cloud_systems/", JSON: map[string]string{"name": name, "customization": customization, "organization": org}, Op: "POST /partners/api/v3/cloud_systems/"}
	} else {
		req = &rest.Request{Method: http.MethodPost, Path: "/cdb/systems/bind", JSON: map[string]string{"name": name, "customization": customization}}
	}
	resp, err := c.c.Do(ctx, req)
	if org == "" && providers.StatusOf(err) == http.StatusNotFound {
		// Older clouds only know the singular form (a 404 means nothing was created).
		req.Path, req.Op = "/cdb/system/bind", ""
		resp, err = c.c.Do(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	var s System
	if err := resp.JSON(req.Op, &s); err != nil {
		return nil, err
	}
	if s.ID == "" || s.AuthKey == "" {
		return nil, &providers.Error{Op: req.Op, Status: resp.Status, Message: "bind answer holds no id or authKey"}
	}
	return &s, nil
}

// Systems lists the account's (or organization's) cloud systems; both answer shapes
// ({systems: [...]} and a bare array) are accepted.
func (c *Cloud) Systems(ctx context.Context, org string) ([]System, error) {
	path := "/cdb/systems"
	if org != "" {
		path = "/partners/api/v2/organizations/" + url.PathEscape(org) + "/cloud_systems/"
	}
	resp, err := c.c.Do(ctx, &rest.Request{Method: http.MethodGet, Path: path})
	if err != nil {
		return nil, err
	}
	return decodeSystems(resp.Body)
}

func decodeSystems(b []byte) ([]System, error) {
	var list []System
	if err := json.Unmarshal(b, &list); err == nil {
		return list, nil
	}
	var wrapped struct {
		Systems []System `json:"systems"`
		Results []System `json:"results"`
	}
	if err := json.Unmarshal(b, &wrapped); err != nil {
		return nil, &providers.Error{Op: "list cloud systems", Message: "unexpected answer shape", Err: err}
	}
	if wrapped.Systems != nil {
		return wrapped.Systems, nil
	}
	return wrapped.Results, nil
}

// Delete unbinds (removes) a cloud system; a missing one counts as removed.
func (c *Cloud) Delete(ctx context.Context, id string) error {
	_, err := c.c.Do(ctx, &rest.Request{Method: http.MethodDelete, Path: "/cdb/systems/" + url.PathEscape(id), Idempotent: true, OK: []int{200, 204, 404}})
	return err
}

// ShareSpec is one user's access to a cloud system.
type ShareSpec struct {
	AccountEmail      string `json:"accountEmail"`
	AccessRole        string `json:"accessRole"`
	UserRoleID        string `json:"userRoleId"`
	CustomPermissions string `json:"customPermissions"`
	IsEnabled         bool   `json:"isEnabled"`
	VMSUserID         string `json:"vmsUserId"`
}

// Shares lists a system's shares.
func (c *Cloud) Shares(ctx context.Context, systemID string) ([]ShareSpec, error) {
	resp, err := c.sharesCall(ctx, &rest.Request{Method: http.MethodGet}, systemID)
	if err != nil {
		return nil, err
	}
	var list []ShareSpec
	if err := json.Unmarshal(resp.Body, &list); err == nil {
		return list, nil
	}
	var wrapped struct {
		Users []ShareSpec `json:"users"`
	}
	if err := resp.JSON("list shares", &wrapped); err != nil {
		return nil, err
	}
	return wrapped.Users, nil
}

// Share upserts a share (idempotent on the server side).
func (c *Cloud) Share(ctx context.Context, systemID string, s ShareSpec) error {
	_, err := c.sharesCall(ctx, &rest.Request{Method: http.MethodPost, JSON: s, Idempotent: true}, systemID)
	return err
}

// sharesCall tries /cdb/systems/{id}/users, then the /cdb/v0/ form on 404.
func (c *Cloud) sharesCall(ctx context.Context, r *rest.Request, systemID string) (*rest.Response, error) {
	r.Path = "/cdb/systems/" + url.PathEscape(systemID) + "/users"
	r.Op = r.Method + " /cdb/systems/{id}/users"
	resp, err := c.c.Do(ctx, r)
	if providers.StatusOf(err) == http.StatusNotFound {
		r.Path = "/cdb/v0/systems/" + url.PathEscape(systemID) + "/users"
		r.Op = r.Method + " /cdb/v0/systems/{id}/users"
		resp, err = c.c.Do(ctx, r)
	}
	return resp, err
}

// Server is a client for one Nx Witness server.
type Server struct {
	c *rest.Client
}

// serverErrorDecoder reads {error, errorId, errorString}.
func serverErrorDecoder(status int, h http.Header, body []byte) (string, string) {
	var e struct {
		ErrorID     string `json:"errorId"`
		ErrorString string `json:"errorString"`
	}
	if json.Unmarshal(body, &e) == nil && (e.ErrorID != "" || e.ErrorString != "") {
		return e.ErrorID, e.ErrorString
	}
	return rest.DefaultErrorDecoder(status, h, body)
}

// sessionExpired: 401, or 403 with x-auth-result: Auth_WrongSessionToken.
func sessionExpired(status int, h http.Header, _ []byte) bool {
	return status == http.StatusUnauthorized || (status == http.StatusForbidden && strings.Contains(h.Get("x-auth-result"), "Auth_WrongSessionToken"))
}

// NewServer builds a client for the server at baseURL, logging in as username with
// the first of passwords the server accepts (the current one, then the one a setup
// sets: a resumed run meets servers set up by an earlier attempt).
func NewServer(name, baseURL string, tls plan.TLS, username string, passwords []plan.Secret, red *plan.Redactor) (*Server, error) {
	auth := &rest.TokenAuth{Redactor: red, Fetch: func(ctx context.Context, c *rest.Client) (rest.Token, error) {
		var resp *rest.Response
		var err error
		for _, pw := range passwords {
			if pw.IsZero() {
				continue
			}
			resp, err = c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/rest/v3/login/sessions", NoAuth: true, Idempotent: true, Op: "server login",
				JSON: map[string]string{"username": username, "password": pw.Reveal()}})
			if st := providers.StatusOf(err); st != http.StatusUnauthorized && st != http.StatusUnprocessableEntity {
				break
			}
		}
		if err != nil {
			return rest.Token{}, err
		}
		var s struct {
			Token      string       `json:"token"`
			ExpiresInS rest.FlexInt `json:"expiresInS"`
		}
		if err := unwrapReply(resp, "server login", &s); err != nil {
			return rest.Token{}, err
		}
		t := rest.Token{Value: s.Token}
		if s.ExpiresInS > 0 {
			t.Expiry = time.Now().Add(time.Duration(s.ExpiresInS) * time.Second)
		}
		return t, nil
	}}
	c, err := rest.New(rest.Config{Name: name, BaseURL: baseURL, TLS: tls, Auth: auth, DecodeError: serverErrorDecoder, Expired: sessionExpired})
	if err != nil {
		return nil, err
	}
	return &Server{c: c}, nil
}

// unwrapReply decodes a v3 answer, unwrapping the old {error:"0", reply:{...}} form.
func unwrapReply(resp *rest.Response, op string, v any) error {
	var old struct {
		Error string          `json:"error"`
		Reply json.RawMessage `json:"reply"`
	}
	if json.Unmarshal(resp.Body, &old) == nil && old.Error == "0" && len(old.Reply) > 0 {
		return (&rest.Response{Status: resp.Status, Header: resp.Header, Body: old.Reply}).JSON(op, v)
	}
	return resp.JSON(op, v)
}

// Info is what GET /rest/v3/system/info tells.
type Info struct {
	Name    string `json:"name"`
	LocalID string `json:"localId"`
	CloudID string `json:"cloudId"`
	Version string `json:"version"`
}

// SetUp reports whether the server was set up (localId present and not nil).
func (i Info) SetUp() bool {
	return i.LocalID != "" && strings.Trim(i.LocalID, "0-{}") != ""
}

// Info reads the system state.
func (s *Server) Info(ctx context.Context) (Info, error) {
	resp, err := s.c.Do(ctx, &rest.Request{Method: http.MethodGet, Path: "/rest/v3/system/info"})
	if err != nil {
		return Info{}, err
	}
	var i Info
	err = unwrapReply(resp, "GET /rest/v3/system/info", &i)
	return i, err
}

// Setup sets up a new server and connects it to the cloud in one call.
func (s *Server) Setup(ctx context.Context, body map[string]any) error {
	_, err := s.c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/rest/v3/system/setup", JSON: body})
	return err
}

// CloudBind connects an existing server to a cloud system.
func (s *Server) CloudBind(ctx context.Context, body map[string]string) error {
	_, err := s.c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/rest/v3/system/cloud/bind", JSON: body})
	return err
}

// PatchSettings updates system settings (idempotent).
func (s *Server) PatchSettings(ctx context.Context, settings map[string]any) error {
	_, err := s.c.Do(ctx, &rest.Request{Method: http.MethodPatch, Path: "/rest/v3/system/settings", JSON: settings, Idempotent: true})
	return err
}
