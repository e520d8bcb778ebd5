package cloudneeti

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
)

// KeyHeader carries the API-portal subscription key on every call.
const KeyHeader = "Ocp-Apim-Subscription-Key"

// Poll defaults for jobs.
const (
	DefaultPollEvery = 5 * time.Second
	DefaultPollFor   = 30 * time.Minute
)

// Client talks to one Cloudneeti endpoint (one license). It is safe for concurrent
// use; all tasks of an endpoint share it and its tokens: one license token for
// onboarding, the account list and the API scope, and one account token per account
// for its rescans and job status (Cloudneeti_SaaS_Docs tokenAPI.md, initiateScanAPI.md).
type Client struct {
	rc      *rest.Client
	tokens  *tokenSet
	license string
	// PollEvery is the longest wait between two polls of a job (the first polls come
	// sooner); PollFor bounds one wait.
	PollEvery, PollFor time.Duration
}

// checkAuth validates the endpoint's auth fields (all problems at once).
func checkAuth(a plan.Auth) error {
	apiKey, license, account := a.ExtraSecrets[AuthAPIKey], a.Extra[AuthLicenseID], a.Extra[AuthAccountID]
	var errs []error
	if a.Type != "" && a.Type != "cloudneeti" && a.Type != "license-token" {
		errs = append(errs, fmt.Errorf("auth.type: %q is not supported by cloudneeti endpoints (leave it out)", a.Type))
	}
	if apiKey.IsZero() {
		errs = append(errs, errors.New("auth.api_key: required (the API portal subscription key, sent as Ocp-Apim-Subscription-Key)"))
	}
	if license == "" {
		errs = append(errs, errors.New("auth.license_id: required (the Cloudneeti license id)"))
	} else if strings.ContainsAny(license, "/?#% ") {
		errs = append(errs, fmt.Errorf("auth.license_id: %q is not a license id", license))
	}
	if a.ClientID == "" {
		errs = append(errs, errors.New("auth.client_id: required (the API application id)"))
	}
	if a.ClientSecret.IsZero() {
		errs = append(errs, errors.New("auth.client_secret: required (the API application secret)"))
	}
	if account != "" {
		// An endpoint-wide account token would be refused by onboarding, the account
		// list and the API scope, which take the license token.
		errs = append(errs, errors.New("auth.account_id: not allowed: the client asks for the license token and for one account token per account itself; remove it"))
	}
	return errors.Join(errs...)
}

// NewClient builds the client of a cloudneeti endpoint; the token is fetched at the
// first call and re-issued after a 401 (its lifetime is chosen per API application
// and not announced).
func NewClient(ep *plan.Endpoint, red *plan.Redactor) (*Client, error) {
	a := ep.Auth
	if err := checkAuth(a); err != nil {
		return nil, err
	}
	license := a.Extra[AuthLicenseID]
	ts := &tokenSet{red: red, key: a.ExtraSecrets[AuthAPIKey], license: license, appID: a.ClientID, secret: a.ClientSecret, m: map[string]*rest.TokenAuth{}}
	rc, err := rest.New(rest.Config{Name: ep.Name, BaseURL: ep.URL, TLS: ep.TLS, Limits: ep.Limits, Timeout: ep.Timeout.D(),
		DecodeError: DecodeError, Expired: expired})
	if err != nil {
		return nil, err
	}
	return &Client{rc: rc, tokens: ts, license: license, PollEvery: DefaultPollEvery, PollFor: DefaultPollFor}, nil
}

// tokenSet holds the token sources of a Cloudneeti client: one token per (license,
// account), the license token under account "". Each request names the one it needs
// (Client.doAs sets rest.Request.Auth); each token is fetched lazily, shared by every
// request that needs it, and re-issued after a 401 (its lifetime is chosen per API
// application and not announced).
type tokenSet struct {
	red            *plan.Redactor
	key, secret    plan.Secret
	license, appID string
	now            func() time.Time // tests; nil: time.Now
	mu             sync.Mutex
	m              map[string]*rest.TokenAuth
}

func (t *tokenSet) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// source returns the token source of account ("": the license token).
func (t *tokenSet) source(account string) *rest.TokenAuth {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a, ok := t.m[account]; ok {
		return a
	}
	op := "license token request"
	q := url.Values{}
	if account != "" {
		op = "account token request for account " + account
		q.Set("accountId", account)
	}
	a := &rest.TokenAuth{Redactor: t.red, Now: t.now}
	a.Fetch = func(ctx context.Context, c *rest.Client) (rest.Token, error) {
		resp, err := c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: "/authorize/license/" + url.PathEscape(t.license) + "/token", Query: q,
			NoAuth: true, Idempotent: true, Op: op, Header: http.Header{KeyHeader: {t.key.Reveal()}},
			JSON: map[string]string{"APIApplicationId": t.appID, "Secret": t.secret.Reveal()}})
		if err != nil {
			return rest.Token{}, err
		}
		tok, err := DecodeToken(resp.Body)
		if err != nil {
			var pe *providers.Error
			if errors.As(err, &pe) {
				pe.Op = op
				return rest.Token{}, pe
			}
			return rest.Token{}, &providers.Error{Op: op, Status: resp.Status, Message: err.Error()}
		}
		// An exp claim that is already (nearly) past on this clock is a skewed clock,
		// not a dead token: renew on 401 only then, not on every call.
		exp := TokenExpiry(tok)
		if now := t.clock(); !exp.After(now.Add(time.Minute)) {
			exp = time.Time{}
		}
		return rest.Token{Value: tok, Expiry: exp}, nil
	}
	a.Apply = func(req *http.Request, tok string) {
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set(KeyHeader, t.key.Reveal())
	}
	t.m[account] = a
	return a
}

// TokenExpiry reads the exp claim when a token is a JWT (not documented: an
// inference that costs nothing when wrong); zero otherwise, and the token is then
// renewed after a 401 only.
func TokenExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp <= 0 || c.Exp > 1e11 {
		return time.Time{}
	}
	return time.Unix(int64(c.Exp), 0)
}

// Fetches returns how many tokens were fetched for account ("": license tokens).
func (c *Client) Fetches(account string) int { return c.tokens.source(account).Fetches() }

// Envelope is the answer shape of every call: {result, statusCode, message}; the token
// call may also put the token at top level (the seed's shape).
type Envelope struct {
	Result     json.RawMessage `json:"result"`
	StatusCode rest.FlexInt    `json:"statusCode"`
	Message    string          `json:"message"`
	Token      string          `json:"token"`
}

func clip(s string) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "?")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// keyDenied reports the API gateway's answer to a missing or wrong subscription key
// (renewing the token cannot fix it).
func keyDenied(body []byte) bool {
	return bytes.Contains(body, []byte("subscription key"))
}

// expired: a 401 (also one carried in a 200 envelope) that is not about the
// subscription key means the token is missing or expired.
func expired(status int, _ http.Header, body []byte) bool {
	if keyDenied(body) {
		return false
	}
	if status == http.StatusUnauthorized {
		return true
	}
	if status == http.StatusOK && bytes.Contains(body, []byte("401")) {
		var e Envelope
		return json.Unmarshal(body, &e) == nil && e.StatusCode == http.StatusUnauthorized
	}
	return false
}

// DecodeError reads the envelope's message (and statusCode as the code when it
// differs from the HTTP status); other shapes go through rest.DefaultErrorDecoder.
func DecodeError(status int, h http.Header, body []byte) (code, message string) {
	var e Envelope
	if json.Unmarshal(body, &e) == nil && strings.TrimSpace(e.Message) != "" {
		if e.StatusCode != 0 && int(e.StatusCode) != status {
			code = fmt.Sprintf("statusCode %d", e.StatusCode)
		}
		return code, clip(e.Message)
	}
	return rest.DefaultErrorDecoder(status, h, body)
}

// DecodeEnvelope reads a successful answer: the envelope's result, or an error when
// the envelope carries a statusCode other than 200 (a *providers.Error with that
// status, retryable for 429 and 5xx).
func DecodeEnvelope(op string, status int, body []byte) (json.RawMessage, error) {
	var e Envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, &providers.Error{Op: op, Status: status, Message: "answer is not the {result, statusCode, message} envelope"}
	}
	if sc := int(e.StatusCode); sc != 0 && sc != http.StatusOK {
		msg := clip(e.Message)
		if msg == "" {
			msg = "no message"
		}
		return nil, &providers.Error{Op: op, Status: sc, Message: msg, Retryable: sc == http.StatusTooManyRequests || sc >= 500}
	}
	return e.Result, nil
}

// DecodeToken reads the token answer: {token, statusCode, message} (the seed) or
// {result: {token}, statusCode, message}.
func DecodeToken(body []byte) (string, error) {
	res, err := DecodeEnvelope("token", http.StatusOK, body)
	if err != nil {
		return "", err
	}
	var e Envelope
	_ = json.Unmarshal(body, &e)
	tok := e.Token
	if tok == "" && len(res) > 0 {
		var r struct {
			Token string `json:"token"`
		}
		if json.Unmarshal(res, &r) != nil {
			// Some builds may answer the bare token as the result.
			_ = json.Unmarshal(res, &r.Token)
		}
		tok = r.Token
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || len(tok) > 16<<10 || strings.ContainsAny(tok, " \t\r\n\"") {
		return "", errors.New("token answer holds no token")
	}
	return tok, nil
}

// do sends one call and decodes the envelope's result into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, body any, idempotent bool, op string, out any) error {
	return c.doAs(ctx, "", method, path, body, idempotent, op, out)
}

// doAs is do with the token of account ("": the license token).
func (c *Client) doAs(ctx context.Context, account, method, path string, body any, idempotent bool, op string, out any) error {
	resp, err := c.rc.Do(ctx, &rest.Request{Method: method, Path: path, JSON: body, Idempotent: idempotent, Op: op,
		Auth: c.tokens.source(account)})
	if err != nil {
		return err
	}
	res, err := DecodeEnvelope(op, resp.Status, resp.Body)
	if err != nil {
		return err
	}
	if out == nil || len(bytes.TrimSpace(res)) == 0 || string(bytes.TrimSpace(res)) == "null" {
		if out != nil {
			return &providers.Error{Op: op, Status: resp.Status, Message: "answer holds no result"}
		}
		return nil
	}
	if err := json.Unmarshal(res, out); err != nil {
		return &providers.Error{Op: op, Status: resp.Status, Message: "unexpected result: " + clip(string(res))}
	}
	return nil
}

func (c *Client) lic() string { return "/onboarding/license/" + url.PathEscape(c.license) }

// Account is a license account as licenseAccounts lists it.
type Account struct {
	ID        string `json:"accountId"`
	Name      string `json:"accountName"`
	InScope   bool   `json:"isInApiScope"`
	Connector string `json:"connectorType"`
}

// DecodeAccounts reads the licenseAccounts result: {accounts: [...]} (a bare list is
// accepted too).
func DecodeAccounts(res []byte) ([]Account, error) {
	var r struct {
		Accounts []Account `json:"accounts"`
	}
	if err := json.Unmarshal(res, &r); err == nil {
		return r.Accounts, nil
	}
	var list []Account
	if err := json.Unmarshal(res, &list); err != nil {
		return nil, errors.New("licenseAccounts result is not a list of accounts")
	}
	return list, nil
}

// Accounts lists the license's accounts.
func (c *Client) Accounts(ctx context.Context) ([]Account, error) {
	const op = "list license accounts"
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, c.lic()+"/licenseAccounts", nil, true, op, &raw); err != nil {
		return nil, err
	}
	list, err := DecodeAccounts(raw)
	if err != nil {
		return nil, &providers.Error{Op: op, Message: err.Error()}
	}
	return list, nil
}

// Onboarded is the answer to an onboarding call.
type Onboarded struct {
	AccountID string `json:"accountId"`
	JobID     string `json:"jobId"`
}

// Onboard onboards a cloud account (not idempotent: look it up first).
func (c *Client) Onboard(ctx context.Context, cloud, name string, body map[string]string) (*Onboarded, error) {
	var r Onboarded
	op := fmt.Sprintf("onboard %s account %q", cloud, name)
	if err := c.do(ctx, http.MethodPost, c.lic()+"/account/"+cloud, body, false, op, &r); err != nil {
		return nil, err
	}
	if r.AccountID == "" {
		return nil, &providers.Error{Op: op, Message: "the answer holds no accountId", MaybeApplied: true, Retryable: true}
	}
	return &r, nil
}

// AddToScope puts an account in the API application's scope (idempotent).
func (c *Client) AddToScope(ctx context.Context, accountID string) error {
	return c.do(ctx, http.MethodPut, c.lic()+"/config", map[string]string{"accountId": accountID}, true, "add account "+accountID+" to the API scope", nil)
}

func (c *Client) compliance(account string) string {
	return "/compliance/license/" + url.PathEscape(c.license) + "/account/" + url.PathEscape(account)
}

// Rescan starts a rescan and returns its job id. It needs the account's token.
func (c *Client) Rescan(ctx context.Context, account string) (string, error) {
	op := "start rescan of account " + account
	var r struct {
		JobID string `json:"jobId"`
	}
	if err := c.doAs(ctx, account, http.MethodGet, c.compliance(account)+"/rescan", nil, false, op, &r); err != nil {
		return "", err
	}
	if r.JobID == "" {
		return "", &providers.Error{Op: op, Message: "the answer holds no jobId"}
	}
	return r.JobID, nil
}

// Job outcomes.
var (
	// ErrJobFailed: the job ended Failed.
	ErrJobFailed = errors.New("job failed")
	// ErrJobGone: the API does not know the job.
	ErrJobGone = errors.New("job unknown")
)

// JobStatus reads a job's status. It needs the account's token.
func (c *Client) JobStatus(ctx context.Context, account, job string) (string, error) {
	var r struct {
		JobStatus string `json:"jobStatus"`
		Status    string `json:"status"`
	}
	err := c.doAs(ctx, account, http.MethodGet, c.compliance(account)+"/job/"+url.PathEscape(job)+"/status", nil, true, "job "+job+" status", &r)
	if err != nil {
		return "", err
	}
	if r.JobStatus == "" {
		r.JobStatus = r.Status
	}
	return r.JobStatus, nil
}

// Wait polls a job until Success. Failed is ErrJobFailed; unknown is ErrJobGone; still
// running after PollFor is a retryable error. A 429 or 503 answer to a poll is waited
// out (the rest client holds requests back for its Retry-After) and polled again.
func (c *Client) Wait(ctx context.Context, account, job string) (string, error) {
	deadline := time.Now().Add(c.PollFor)
	wait := min(250*time.Millisecond, c.PollEvery)
	for {
		st, err := c.JobStatus(ctx, account, job)
		code := providers.StatusOf(err)
		switch {
		case code == http.StatusNotFound:
			return "", fmt.Errorf("job %s of account %s: %w", job, account, ErrJobGone)
		case (code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable) && time.Now().Before(deadline):
			st = "throttled"
		case err != nil:
			return "", err
		}
		switch strings.ToLower(st) {
		case "success", "succeeded", "completed":
			return st, nil
		case "failed", "failure", "error":
			return st, fmt.Errorf("job %s of account %s: %w", job, account, ErrJobFailed)
		}
		if !time.Now().Before(deadline) {
			return st, &providers.Error{Op: "wait for job " + job, Message: fmt.Sprintf("still %s after %s; a rerun keeps waiting", st, c.PollFor), Retryable: true}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, c.PollEvery)
	}
}
