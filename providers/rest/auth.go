package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"provision/plan"
)

// Token is a fetched credential.
type Token struct {
	Value string
	// Expiry is when the API stops accepting it; zero means unknown (renewed on the
	// API's expired answer only).
	Expiry time.Time
}

// TokenAuth shares one token among all requests of an endpoint. The token is
// fetched lazily by Fetch (one fetch at a time), renewed shortly before Expiry and
// after Invalidate. Apply puts it on a request (default: "Authorization: Bearer").
type TokenAuth struct {
	Fetch func(ctx context.Context, c *Client) (Token, error)
	Apply func(req *http.Request, token string)
	// Redactor learns every token so that none reaches a log line.
	Redactor *plan.Redactor
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	tok     Token
	fetches int
}

// Fetches returns how many tokens were fetched (tests and reports).
func (a *TokenAuth) Fetches() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fetches
}

func (a *TokenAuth) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Authorize implements Authenticator.
func (a *TokenAuth) Authorize(ctx context.Context, c *Client, req *http.Request) error {
	tok, err := a.token(ctx, c)
	if err != nil {
		return err
	}
	if a.Apply != nil {
		a.Apply(req, tok)
	} else {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

func (a *TokenAuth) token(ctx context.Context, c *Client) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok.Value != "" && !a.expiring(a.tok) {
		return a.tok.Value, nil
	}
	// Holding the lock while fetching makes concurrent callers wait for this one fetch.
	t, err := a.Fetch(ctx, c)
	if err != nil {
		return "", err
	}
	if t.Value == "" {
		return "", errors.New("token answer holds no token")
	}
	a.Redactor.Add(t.Value)
	a.tok = t
	a.fetches++
	return t.Value, nil
}

// expiring: renew when less than a tenth of a minute-scale lifetime is left, at most 60 s early.
func (a *TokenAuth) expiring(t Token) bool {
	if t.Expiry.IsZero() {
		return false
	}
	return a.now().Add(renewMargin).After(t.Expiry)
}

const renewMargin = 5 * time.Second

// Invalidate implements Authenticator: the token on req is dropped (if it is still
// the current one), so the next request fetches a new one.
func (a *TokenAuth) Invalidate(req *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok.Value != "" && requestCarries(req, a.tok.Value) {
		a.tok = Token{}
	}
}

func requestCarries(req *http.Request, tok string) bool {
	if strings.Contains(req.Header.Get("Authorization"), tok) {
		return true
	}
	for _, vs := range req.URL.Query() {
		for _, v := range vs {
			if v == tok {
				return true
			}
		}
	}
	for _, vs := range req.Header {
		for _, v := range vs {
			if v == tok {
				return true
			}
		}
	}
	return false
}

// BasicAuth sends HTTP basic credentials.
type BasicAuth struct {
	Username string
	Password plan.Secret
}

func (b BasicAuth) Authorize(_ context.Context, _ *Client, req *http.Request) error {
	req.SetBasicAuth(b.Username, b.Password.Reveal())
	return nil
}
func (BasicAuth) Invalidate(*http.Request) {}

// BearerAuth sends a fixed bearer token.
type BearerAuth struct{ Token plan.Secret }

func (b BearerAuth) Authorize(_ context.Context, _ *Client, req *http.Request) error {
	req.Header.Set("Authorization", "Bearer "+b.Token.Reveal())
	return nil
}
func (BearerAuth) Invalidate(*http.Request) {}

// OAuth2 returns a TokenAuth for a standard OAuth2 token endpoint (RFC 6749 form
// post): grant "password" or "client_credentials". tokenURL may be relative to the
// endpoint's base URL. A token URL on the endpoint's own scheme, host and port is
// asked through the endpoint's client (its TLS options, limits and timeout); one on
// another host gets a client of its own with default TLS verification: the
// endpoint's insecure, ca_file and fingerprint options never apply to it.
func OAuth2(a plan.Auth, grant string, red *plan.Redactor) (*TokenAuth, error) {
	if a.TokenURL == "" {
		return nil, errors.New("auth: token_url is required for " + a.Type)
	}
	var (
		once    sync.Once
		foreign *Client
		ferr    error
	)
	tokenClient := func(c *Client) (*Client, error) {
		if !IsAbsoluteURL(a.TokenURL) {
			return c, nil
		}
		u, err := url.Parse(a.TokenURL)
		if err != nil || u.Host == "" {
			return nil, errors.New("auth: token_url is not a valid URL")
		}
		if SameOrigin(u, c.base) {
			return c, nil
		}
		once.Do(func() {
			foreign, ferr = New(Config{Name: c.cfg.Name + " token", BaseURL: origin(u), Timeout: c.cfg.Timeout, UserAgent: c.cfg.UserAgent})
		})
		return foreign, ferr
	}
	return &TokenAuth{Redactor: red, Fetch: func(ctx context.Context, c *Client) (Token, error) {
		c, err := tokenClient(c)
		if err != nil {
			return Token{}, err
		}
		form := map[string][]string{"grant_type": {grant}}
		switch grant {
		case "password":
			form["username"] = []string{a.Username}
			form["password"] = []string{a.Password.Reveal()}
			if a.ClientID != "" {
				form["client_id"] = []string{a.ClientID}
			}
		case "client_credentials":
			form["client_id"] = []string{a.ClientID}
			form["client_secret"] = []string{a.ClientSecret.Reveal()}
		}
		if a.Scope != "" {
			form["scope"] = []string{a.Scope}
		}
		resp, err := c.Do(ctx, &Request{Method: http.MethodPost, Path: a.TokenURL, Form: form, NoAuth: true, Idempotent: true, Op: "token request"})
		if err != nil {
			return Token{}, err
		}
		var tr TokenAnswer
		if err := resp.JSON("token request", &tr); err != nil {
			return Token{}, err
		}
		return tr.Token(time.Now()), nil
	}}, nil
}

// TokenAnswer is the usual token response; expires_in may be a number or a string.
type TokenAnswer struct {
	AccessToken string  `json:"access_token"`
	TokenType   string  `json:"token_type"`
	ExpiresIn   FlexInt `json:"expires_in"`
	ExpiresAt   FlexInt `json:"expires_at"` // milliseconds since the epoch (Nx Cloud)
	Refresh     string  `json:"refresh_token"`
}

// Token converts the answer, preferring expires_in.
func (t TokenAnswer) Token(now time.Time) Token {
	tok := Token{Value: t.AccessToken}
	switch {
	case t.ExpiresIn > 0:
		tok.Expiry = now.Add(time.Duration(t.ExpiresIn) * time.Second)
	case t.ExpiresAt > 0:
		tok.Expiry = time.UnixMilli(int64(t.ExpiresAt))
	}
	return tok
}

// FlexInt decodes a JSON number or a string holding one.
type FlexInt int64

func (f *FlexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	var n float64
	if _, err := fmt.Sscan(s, &n); err != nil {
		return fmt.Errorf("not a number: %q", clip(s))
	}
	*f = FlexInt(n)
	return nil
}

// ForEndpoint builds the generic authenticator for auth types none, basic, bearer,
// oauth2-password and oauth2-client-credentials.
func ForEndpoint(ep *plan.Endpoint, red *plan.Redactor) (Authenticator, error) {
	a := ep.Auth
	switch a.Type {
	case "", "none":
		return nil, nil
	case "basic":
		if a.Username == "" {
			return nil, errors.New("auth basic: username is required")
		}
		return BasicAuth{Username: a.Username, Password: a.Password}, nil
	case "bearer":
		if a.Token.IsZero() {
			return nil, errors.New("auth bearer: token is required")
		}
		return BearerAuth{Token: a.Token}, nil
	case "oauth2-password":
		if a.Username == "" || a.Password.IsZero() {
			return nil, errors.New("auth oauth2-password: username and password are required")
		}
		return OAuth2(a, "password", red)
	case "oauth2-client-credentials":
		if a.ClientID == "" || a.ClientSecret.IsZero() {
			return nil, errors.New("auth oauth2-client-credentials: client_id and client_secret are required")
		}
		return OAuth2(a, "client_credentials", red)
	}
	return nil, fmt.Errorf("auth type %q: want none, basic, bearer, oauth2-password or oauth2-client-credentials", a.Type)
}

// FromEndpoint builds a client for a plan endpoint with the given authenticator.
func FromEndpoint(ep *plan.Endpoint, auth Authenticator) (*Client, error) {
	return New(Config{
		Name:    ep.Name,
		BaseURL: ep.URL,
		TLS:     ep.TLS,
		Limits:  ep.Limits,
		Timeout: ep.Timeout.D(),
		Auth:    auth,
	})
}
