package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
)

// Client talks to the edge API as one user; safe for concurrent use.
type Client struct {
	c    *rest.Client
	User string
}

// errorDecoder reads the {code, msg} envelope.
func errorDecoder(status int, h http.Header, body []byte) (string, string) {
	var e struct {
		Msg     string `json:"msg"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && (e.Msg != "" || e.Message != "") {
		if e.Msg == "" {
			e.Msg = e.Message
		}
		return "", e.Msg
	}
	return rest.DefaultErrorDecoder(status, h, body)
}

// data returns the payload of an answer: the "data" of a {code, msg, data}
// envelope, or the whole body.
func data(b []byte) []byte {
	var env map[string]json.RawMessage
	if json.Unmarshal(b, &env) == nil {
		if d, ok := env["data"]; ok {
			if _, hasCode := env["code"]; hasCode {
				return d
			}
		}
	}
	return b
}

// decodeInto decodes an answer's payload.
func decodeInto(resp *rest.Response, op string, v any) error {
	d := data(resp.Body)
	if len(bytes.TrimSpace(d)) == 0 || string(bytes.TrimSpace(d)) == "null" {
		return nil
	}
	if err := json.Unmarshal(d, v); err != nil {
		return &providers.Error{Op: op, Status: resp.Status, Message: "unexpected answer", Err: err}
	}
	return nil
}

// newClient logs in as user (tokens last an hour and are refreshed with
// PUT /v1/authorization while the refresh window lasts; otherwise a new login).
func newClient(ep *plan.Endpoint, user string, password plan.Secret, red *plan.Redactor) (*Client, error) {
	var mu sync.Mutex
	var last string
	var refreshUntil time.Time
	auth := &rest.TokenAuth{Redactor: red}
	auth.Fetch = func(ctx context.Context, c *rest.Client) (rest.Token, error) {
		mu.Lock()
		old, until := last, refreshUntil
		mu.Unlock()
		var resp *rest.Response
		var err error
		if old != "" && time.Now().Before(until) {
			resp, err = c.Do(ctx, &rest.Request{Method: http.MethodPut, Path: "/v1/authorization", NoAuth: true, Idempotent: true, Op: "token refresh",
				Header: http.Header{"Authorization": {old}}})
		}
		if old == "" || err != nil {
			resp, err = c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/v1/authorization", NoAuth: true, Idempotent: true, Op: "login as " + user,
				JSON: map[string]string{"user": user, "password": password.Reveal()}})
			until = time.Now().Add(5 * time.Hour)
		}
		if err != nil {
			return rest.Token{}, err
		}
		var t struct {
			Token  string       `json:"token"`
			Expire rest.FlexInt `json:"expire"`
		}
		if err := decodeInto(resp, "login", &t); err != nil {
			return rest.Token{}, err
		}
		tok := rest.Token{Value: t.Token}
		if t.Expire > 0 {
			tok.Expiry = time.Now().Add(time.Duration(t.Expire) * time.Second)
		}
		mu.Lock()
		last, refreshUntil = t.Token, until
		mu.Unlock()
		return tok, nil
	}
	auth.Apply = func(req *http.Request, token string) { req.Header.Set("Authorization", token) }
	c, err := rest.New(rest.Config{Name: ep.Name, BaseURL: ep.URL, TLS: ep.TLS, Limits: ep.Limits, Timeout: ep.Timeout.D(), Auth: auth, DecodeError: errorDecoder})
	if err != nil {
		return nil, err
	}
	return &Client{c: c, User: user}, nil
}

// anonymous is a client without credentials (self-registration).
func anonymous(ep *plan.Endpoint) (*Client, error) {
	c, err := rest.New(rest.Config{Name: ep.Name, BaseURL: ep.URL, TLS: ep.TLS, Limits: ep.Limits, Timeout: ep.Timeout.D(), DecodeError: errorDecoder})
	if err != nil {
		return nil, err
	}
	return &Client{c: c}, nil
}

func (c *Client) do(ctx context.Context, r *rest.Request, out any) (*rest.Response, error) {
	resp, err := c.c.Do(ctx, r)
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := decodeInto(resp, r.Op, out); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// listAll pages through a list endpoint ({total, list}) and returns every element.
func listAll[T any](ctx context.Context, c *Client, path string, q url.Values) ([]T, error) {
	var all []T
	for page := 1; page <= 10_000; page++ {
		qq := url.Values{}
		for k, v := range q {
			qq[k] = v
		}
		qq.Set("page", strconv.Itoa(page))
		qq.Set("pageSize", "100")
		var p struct {
			Total int `json:"total"`
			List  []T `json:"list"`
		}
		if _, err := c.do(ctx, &rest.Request{Method: http.MethodGet, Path: path, Query: qq, Op: "GET " + path}, &p); err != nil {
			return nil, err
		}
		all = append(all, p.List...)
		if len(p.List) == 0 || len(all) >= p.Total {
			return all, nil
		}
	}
	return nil, fmt.Errorf("GET %s: more than 10,000 pages", path)
}
