package openvcloud

import (
	"bytes"
	"context"
	"encoding/base64"
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

// Auth types of an openvcloud endpoint.
const (
	AuthItsYouOnline = "itsyouonline"
	AuthSession      = "session"
)

// DefaultTokenURL is ItsYou.online's token endpoint.
const DefaultTokenURL = "https://itsyou.online/v1/oauth/access_token"

// Poll defaults (public clients poll every 2 s and give up after 10 min).
const (
	DefaultPollEvery = 2 * time.Second
	DefaultPollFor   = 10 * time.Minute
)

// StatusKeyExpired is OpenvCloud's answer to an unknown or expired session key.
const StatusKeyExpired = 419

// Client talks to one OpenvCloud endpoint. It is safe for concurrent use; all tasks of
// an endpoint share one Client (one JWT or session key, one rate limit).
type Client struct {
	rc   *rest.Client
	auth *rest.TokenAuth
	// PollEvery is the longest wait between two polls of an async task or of a
	// deploying space (the first polls come sooner); PollFor bounds one wait.
	PollEvery, PollFor time.Duration

	// sessionUser is the session login's user name ("" with itsyouonline auth);
	// jwtUser is the username claim of the last JWT fetched.
	sessionUser string
	mu          sync.Mutex
	jwtUser     string
}

// AuthType returns the endpoint's auth type: the explicit type, else itsyouonline when
// client_id is set, else session when username is set.
func AuthType(a plan.Auth) string {
	switch {
	case a.Type != "":
		return a.Type
	case a.ClientID != "":
		return AuthItsYouOnline
	case a.Username != "":
		return AuthSession
	}
	return AuthItsYouOnline
}

// checkAuth validates the endpoint's auth fields (all problems at once).
func checkAuth(a plan.Auth) error {
	var errs []error
	switch AuthType(a) {
	case AuthItsYouOnline:
		if a.ClientID == "" {
			errs = append(errs, errors.New("auth.client_id: required for itsyouonline auth (the ItsYou.online application id)"))
		}
		if a.ClientSecret.IsZero() {
			errs = append(errs, errors.New("auth.client_secret: required for itsyouonline auth"))
		}
		if a.TokenURL != "" && !strings.HasPrefix(a.TokenURL, "/") {
			if u, err := url.Parse(a.TokenURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				errs = append(errs, fmt.Errorf("auth.token_url: %q is not an http(s) URL or a path on the endpoint", a.TokenURL))
			}
		}
	case AuthSession:
		if a.Username == "" {
			errs = append(errs, errors.New("auth.username: required for session auth"))
		}
		if a.Password.IsZero() {
			errs = append(errs, errors.New("auth.password: required for session auth"))
		}
	default:
		errs = append(errs, fmt.Errorf("auth.type: %q is not supported by openvcloud endpoints (want itsyouonline or session)", a.Type))
	}
	return errors.Join(errs...)
}

// NewClient builds the client of an openvcloud endpoint. Credentials are fetched at
// the first call.
func NewClient(ep *plan.Endpoint, red *plan.Redactor) (*Client, error) {
	a := ep.Auth
	if err := checkAuth(a); err != nil {
		return nil, err
	}
	auth := &rest.TokenAuth{Redactor: red}
	client := &Client{auth: auth, PollEvery: DefaultPollEvery, PollFor: DefaultPollFor}
	expired := func(status int, _ http.Header, _ []byte) bool { return status == http.StatusUnauthorized }
	switch AuthType(a) {
	case AuthItsYouOnline:
		fetch, err := itsYouOnline(ep, client.setJWTUser)
		if err != nil {
			return nil, err
		}
		auth.Fetch = fetch
		auth.Apply = func(req *http.Request, jwt string) { req.Header.Set("Authorization", "bearer "+jwt) }
	case AuthSession:
		user, pw := a.Username, a.Password
		auth.Fetch = func(ctx context.Context, c *rest.Client) (rest.Token, error) {
			resp, err := c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/restmachine/cloudapi/users/authenticate", NoAuth: true, Idempotent: true,
				Op: "session login as " + user, JSON: map[string]string{"username": user, "password": pw.Reveal()}})
			if err != nil {
				return rest.Token{}, err
			}
			key, err := decodeSessionKey(resp.Body)
			if err != nil {
				return rest.Token{}, &providers.Error{Op: "session login as " + user, Status: resp.Status, Message: err.Error()}
			}
			// The key's lifetime is not announced: it is renewed on 419.
			return rest.Token{Value: key}, nil
		}
		auth.Apply = func(req *http.Request, key string) {
			q := req.URL.Query()
			q.Set("authkey", key)
			req.URL.RawQuery = q.Encode()
		}
		expired = func(status int, _ http.Header, _ []byte) bool {
			return status == StatusKeyExpired || status == http.StatusUnauthorized
		}
		client.sessionUser = user
	}
	rc, err := rest.New(rest.Config{Name: ep.Name, BaseURL: ep.URL, TLS: ep.TLS, Limits: ep.Limits, Timeout: ep.Timeout.D(),
		Auth: auth, DecodeError: DecodeError, Expired: expired})
	if err != nil {
		return nil, err
	}
	client.rc = rc
	return client, nil
}

func (c *Client) setJWTUser(u string) {
	c.mu.Lock()
	c.jwtUser = u
	c.mu.Unlock()
}

// ErrNoAccessUser means the credential names no user to grant a new space to.
var ErrNoAccessUser = errors.New("the JWT carries no username claim, so no default access user is known: set access on the item")

// DefaultAccess is the user a new space grants full access to when the item names
// none (cloudspaces/create requires access): with itsyouonline auth
// "<username>@itsyouonline" from the JWT's username claim (as gig-tech's ovc-sdk-go
// does), fetching the JWT if there is none yet; with session auth the session's user.
func (c *Client) DefaultAccess(ctx context.Context) (string, error) {
	if c.sessionUser != "" {
		return c.sessionUser, nil
	}
	// Authorize fetches the JWT (or reuses the current one) without sending anything.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.rc.BaseURL().String(), nil)
	if err != nil {
		return "", err
	}
	if err := c.auth.Authorize(ctx, c.rc, req); err != nil {
		return "", fmt.Errorf("default access user: %w", err)
	}
	c.mu.Lock()
	u := c.jwtUser
	c.mu.Unlock()
	if u == "" {
		return "", ErrNoAccessUser
	}
	return u + "@itsyouonline", nil
}

// itsYouOnline returns the JWT fetcher. The token URL is usually on another host
// (itsyou.online): it gets its own rest.Client, with the endpoint's TLS options only
// when it is on the endpoint's host. A relative token_url is a path on the endpoint.
// setUser learns the username claim of every JWT fetched.
func itsYouOnline(ep *plan.Endpoint, setUser func(string)) (func(context.Context, *rest.Client) (rest.Token, error), error) {
	a := ep.Auth
	tokenURL := a.TokenURL
	if tokenURL == "" {
		tokenURL = DefaultTokenURL
	}
	if strings.HasPrefix(tokenURL, "/") {
		tokenURL = strings.TrimRight(ep.URL, "/") + tokenURL
	}
	u, err := url.Parse(tokenURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("auth.token_url: %q is not an absolute URL", tokenURL)
	}
	tlsOpts := plan.TLS{}
	if eu, err := url.Parse(ep.URL); err == nil && strings.EqualFold(eu.Host, u.Host) {
		tlsOpts = ep.TLS
	}
	tc, err := rest.New(rest.Config{Name: ep.Name + " token", BaseURL: u.Scheme + "://" + u.Host, TLS: tlsOpts, Timeout: ep.Timeout.D()})
	if err != nil {
		return nil, err
	}
	path := u.EscapedPath()
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	id, secret := a.ClientID, a.ClientSecret
	const op = "ItsYou.online token request"
	return func(ctx context.Context, _ *rest.Client) (rest.Token, error) {
		resp, err := tc.Do(ctx, &rest.Request{Method: http.MethodPost, Path: path, NoAuth: true, Idempotent: true, Op: op,
			Header: http.Header{"Accept": {"application/jwt, application/json;q=0.9"}},
			Form: url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret.Reveal()},
				"response_type": {"id_token"}, "validity": {"3600"}}})
		if err != nil {
			return rest.Token{}, err
		}
		jwt, err := DecodeTokenAnswer(resp.Body)
		if err != nil {
			return rest.Token{}, &providers.Error{Op: op, Status: resp.Status, Message: err.Error()}
		}
		setUser(JWTUsername(jwt))
		return rest.Token{Value: jwt, Expiry: JWTExpiry(jwt)}, nil
	}, nil
}

// DecodeTokenAnswer reads ItsYou.online's answer: a raw JWT, a JSON string, or a JSON
// object with access_token (or id_token). The JWT is checked for shape only.
func DecodeTokenAnswer(body []byte) (string, error) {
	b := bytes.TrimSpace(body)
	jwt := string(b)
	switch {
	case len(b) > 0 && b[0] == '{':
		var m struct {
			AccessToken string `json:"access_token"`
			IDToken     string `json:"id_token"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return "", errors.New("token answer is not valid JSON")
		}
		jwt = m.AccessToken
		if jwt == "" {
			jwt = m.IDToken
		}
	case len(b) > 0 && b[0] == '"':
		if err := json.Unmarshal(b, &jwt); err != nil {
			return "", errors.New("token answer is not valid JSON")
		}
	}
	jwt = strings.TrimSpace(jwt)
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || len(jwt) > 16<<10 {
		return "", errors.New("token answer is not a JWT")
	}
	for _, p := range parts {
		if strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=") != "" {
			return "", errors.New("token answer is not a JWT")
		}
	}
	return jwt, nil
}

// jwtClaims reads the claims of a JWT this client uses, without checking its
// signature (the API does).
type jwtClaims struct {
	Exp      json.Number `json:"exp"`
	Username string      `json:"username"`
}

func readClaims(jwt string) (jwtClaims, bool) {
	var c jwtClaims
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return c, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return c, false
	}
	return c, json.Unmarshal(b, &c) == nil
}

// JWTUsername reads the username claim of an ItsYou.online JWT ("" when absent or
// not a plain user name).
func JWTUsername(jwt string) string {
	c, ok := readClaims(jwt)
	u := strings.TrimSpace(c.Username)
	if !ok || u == "" || len(u) > 256 || strings.ContainsAny(u, " \t\r\n\"@/") {
		return ""
	}
	return u
}

// JWTExpiry reads the exp claim of a JWT without checking its signature (the API
// does); zero when absent or unreadable (the token is then renewed on 401).
func JWTExpiry(jwt string) time.Time {
	c, ok := readClaims(jwt)
	if !ok || c.Exp == "" {
		return time.Time{}
	}
	f, err := c.Exp.Float64()
	if err != nil || f <= 0 || f > 1e11 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}

// decodeSessionKey reads the session key answer: a JSON string (a bare word is accepted).
func decodeSessionKey(body []byte) (string, error) {
	b := bytes.TrimSpace(body)
	var key string
	if json.Unmarshal(b, &key) != nil {
		key = string(b)
	}
	key = strings.TrimSpace(key)
	if key == "" || len(key) > 1024 || strings.ContainsAny(key, " \t\r\n{}[]<>\"") {
		return "", errors.New("session login answer is not a session key")
	}
	return key, nil
}

// DecodeError reads OpenvCloud's error body: the message as a JSON string; other
// shapes go through rest.DefaultErrorDecoder.
func DecodeError(status int, h http.Header, body []byte) (code, message string) {
	var s string
	if json.Unmarshal(bytes.TrimSpace(body), &s) == nil && strings.TrimSpace(s) != "" {
		s = strings.ToValidUTF8(strings.TrimSpace(s), "?")
		if len(s) > 300 {
			s = s[:300] + "..."
		}
		return "", s
	}
	return rest.DefaultErrorDecoder(status, h, body)
}

// call invokes cloudapi actor/method with JSON parameters and decodes the answer
// into out (if not nil).
func (c *Client) call(ctx context.Context, method string, params map[string]any, idempotent bool, out any) error {
	resp, err := c.rc.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/restmachine/cloudapi/" + method, JSON: params, Idempotent: idempotent, Op: method})
	if err != nil {
		return err
	}
	if out != nil {
		return resp.JSON(method, out)
	}
	return nil
}

// Space is a cloud space as cloudspaces/list and cloudspaces/get describe it.
type Space struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	AccountID int    `json:"accountId"`
	Location  string `json:"location"`
	Status    string `json:"status"`
	// ResourceLimits (get only): CU_M, CU_D, CU_C, CU_NP, CU_I; null or absent is unknown.
	ResourceLimits map[string]*float64 `json:"resourceLimits"`
}

// DecodeSpaces reads a cloudspaces/list answer.
func DecodeSpaces(body []byte) ([]Space, error) {
	var out []Space
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, errors.New("cloudspaces/list answer is not a list of cloud spaces")
	}
	return out, nil
}

// Gone reports whether a space's status means it no longer exists for a plan:
// DELETED (soft-deleted, restorable) and DESTROYED (0-complexity/openvcloud
// cloudbrokerlib resourcestatus: both are invalid states), and the way there.
func Gone(status string) bool {
	switch strings.ToUpper(status) {
	case "DELETED", "DESTROYED", "DELETING", "DESTROYING":
		return true
	}
	return false
}

// Spaces lists the cloud spaces the caller can see: DELETED and DESTROYED ones are
// left out by the API, unless includeDeleted (then DELETED ones are listed).
func (c *Client) Spaces(ctx context.Context, includeDeleted bool) ([]Space, error) {
	const op = "cloudspaces/list"
	resp, err := c.rc.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/restmachine/cloudapi/" + op, JSON: map[string]any{"includedeleted": includeDeleted}, Idempotent: true, Op: op})
	if err != nil {
		return nil, err
	}
	out, err := DecodeSpaces(resp.Body)
	if err != nil {
		return nil, &providers.Error{Op: op, Status: resp.Status, Message: err.Error()}
	}
	return out, nil
}

// Get reads one cloud space.
func (c *Client) Get(ctx context.Context, id int) (*Space, error) {
	var sp Space
	if err := c.call(ctx, "cloudspaces/get", map[string]any{"cloudspaceId": id}, true, &sp); err != nil {
		return nil, err
	}
	return &sp, nil
}

// ErrTaskGone means system/task/get does not know the task (never existed, or its
// result expired after 600 s).
var ErrTaskGone = errors.New("async task unknown or its result expired")

// TaskError is an async task that ended with [false, "error text"].
type TaskError struct{ Message string }

func (e *TaskError) Error() string { return "async task failed: " + e.Message }

// DecodeTaskAnswer reads a system/task/get answer: 202 (any body), or a 200 with an
// empty body, null or [] means still running (ovc-sdk-go v3 client.go polls on in
// all three cases); 200 [true, result] is done with result; 200 [false, message] is
// a failed task (*TaskError).
func DecodeTaskAnswer(status int, body []byte) (done bool, result json.RawMessage, err error) {
	b := bytes.TrimSpace(body)
	if status == http.StatusAccepted || len(b) == 0 || string(b) == "null" {
		return false, nil, nil
	}
	var pair []json.RawMessage
	if json.Unmarshal(b, &pair) == nil && len(pair) == 0 {
		return false, nil, nil
	}
	if json.Unmarshal(b, &pair) != nil || len(pair) != 2 {
		return false, nil, errors.New("task answer is not [ok, result]")
	}
	var ok bool
	if json.Unmarshal(pair[0], &ok) != nil {
		return false, nil, errors.New("task answer is not [ok, result]")
	}
	if !ok {
		var msg string
		if json.Unmarshal(pair[1], &msg) != nil {
			msg = string(pair[1])
		}
		msg = strings.ToValidUTF8(strings.TrimSpace(msg), "?")
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		if msg == "" {
			msg = "no error text"
		}
		return true, nil, &TaskError{Message: msg}
	}
	return true, pair[1], nil
}

// Await polls an async task until it ends and returns its result. As ovc-sdk-go v3
// client.go does, one 404 is taken for "still running" (servers before 2.5.6 answer
// it right after the create), and a 400, 429 or 503 while polling is waited out
// (the 429's Retry-After is honoured); a second 404 is ErrTaskGone. Errors:
// ErrTaskGone, *TaskError, a retryable *providers.Error when the task still runs
// after PollFor, ctx.Err(), or the poll call's own error.
func (c *Client) Await(ctx context.Context, guid string) (json.RawMessage, error) {
	const op = "system/task/get"
	deadline := time.Now().Add(c.PollFor)
	wait := min(250*time.Millisecond, c.PollEvery)
	notFound, badRequests := 0, 0
	for {
		resp, err := c.rc.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/restmachine/system/task/get", JSON: map[string]string{"taskguid": guid},
			Idempotent: true, OK: []int{http.StatusOK, http.StatusAccepted}, Op: op})
		st := providers.StatusOf(err)
		pollAgain := false
		switch {
		case st == http.StatusNotFound:
			if notFound++; notFound > 1 {
				return nil, ErrTaskGone
			}
			pollAgain = true
		case st == http.StatusBadRequest:
			// A proxy's stray 400 (ovc-sdk-go); three in a row are the API's own.
			if badRequests++; badRequests > 3 {
				return nil, err
			}
			pollAgain = true
		case st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable:
			pollAgain = true
		case err != nil:
			return nil, err
		}
		if pollAgain {
			if !time.Now().Before(deadline) {
				return nil, &providers.Error{Op: op, Message: fmt.Sprintf("task %s still unanswered after %s; a rerun keeps polling it", guid, c.PollFor), Retryable: true, Err: err}
			}
			// The rest client already holds every request back for a 429's Retry-After.
			if err := sleep(ctx, wait); err != nil {
				return nil, err
			}
			wait = min(2*wait, c.PollEvery)
			continue
		}
		badRequests = 0
		done, res, err := DecodeTaskAnswer(resp.Status, resp.Body)
		if done || err != nil {
			var te *TaskError
			if err != nil && !errors.As(err, &te) {
				return nil, &providers.Error{Op: op, Status: resp.Status, Message: err.Error()}
			}
			return res, err
		}
		if !time.Now().Before(deadline) {
			return nil, &providers.Error{Op: op, Message: fmt.Sprintf("task %s still running after %s; a rerun keeps polling it", guid, c.PollFor), Retryable: true}
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		wait = min(2*wait, c.PollEvery)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// decodeID reads a cloud space id: a JSON number or a string holding one.
func decodeID(raw json.RawMessage) (int, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, errors.New("answer is not a cloud space id")
	}
	id, err := strconv.Atoi(n.String())
	if err != nil || id < 0 {
		return 0, errors.New("answer is not a cloud space id")
	}
	return id, nil
}
