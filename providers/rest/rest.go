// Package rest is the HTTP client every provider uses: one Client per endpoint, shared
// by all tasks. It applies the endpoint's TLS options, concurrency cap and rate limit
// around each request (never around waiting), pauses the whole endpoint when the API
// answers 429, renews credentials once on an expired-session answer, refuses redirects
// to another host, caps response bodies, and classifies failures as *providers.Error.
//
// A Client is safe for concurrent use. It never retries a request by itself except
// once after renewing credentials; retrying is the runner's job (it knows whether a
// task may repeat its call).
package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
)

// DefaultTimeout is the per-request timeout when the endpoint sets none.
const DefaultTimeout = 30 * time.Second

// DefaultMaxRetryAfter caps the pause a 429's Retry-After imposes on a whole
// endpoint, unless the endpoint's limits.max_retry_after says otherwise. The
// runner caps each task's own wait by --backoff-max.
const DefaultMaxRetryAfter = 30 * time.Second

// DefaultMaxBody caps how much of a response body is read.
const DefaultMaxBody = 8 << 20

// Config describes one endpoint client.
type Config struct {
	// Name of the endpoint (for messages).
	Name string
	// BaseURL, may include a path prefix.
	BaseURL string
	TLS     plan.TLS
	Limits  plan.Limits
	Timeout time.Duration
	// Auth sets credentials on requests that name none of their own
	// (Request.Auth); nil means none. Endpoints whose calls act as different
	// users (edge) leave it nil and set Request.Auth on each call.
	Auth Authenticator
	// DecodeError turns a non-success answer into the API's code and message.
	// nil uses DefaultErrorDecoder.
	DecodeError func(status int, header http.Header, body []byte) (code, message string)
	// Expired reports whether an answer means "credentials expired": the client then
	// invalidates them and sends the request once more. nil means status 401.
	Expired func(status int, header http.Header, body []byte) bool
	// MaxBody caps response bodies; 0 means DefaultMaxBody.
	MaxBody int64
	// Transport replaces the default transport (one shared by many clients, see
	// Transports, or a test's); TLS options are then ignored.
	Transport http.RoundTripper
	// UserAgent header; default "provision".
	UserAgent string
}

func newTransport(t plan.TLS, timeout time.Duration) (*http.Transport, error) {
	tc, err := TLSConfig(t)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.MaxIdleConns = 0 // per host only: a rollout talks to thousands of servers
	// Every connection a host had in use at once may stay idle for the next
	// request: a cap below the requests in flight to one host (up to --parallel
	// to a cloud endpoint) closes the surplus after each answer and dials it again,
	// a TLS handshake each time (64 against --parallel 100: 702 dials instead of
	// 201 in BenchmarkLimits_Latency1000Stores). Idle connections still close after
	// IdleConnTimeout.
	tr.MaxIdleConnsPerHost = 4096
	tr.ResponseHeaderTimeout = timeout
	return tr, nil
}

// Transports hands out one transport per TLS configuration and timeout, for the
// clients of many servers of one kind (an Nx server per store): their connections
// share one pool (by host), so a run does not hold a transport, and its idle
// connections, per server. Safe for concurrent use.
type Transports struct {
	mu sync.Mutex
	m  map[string]*http.Transport
}

// Get returns the transport for t and timeout (0: DefaultTimeout), making it on
// first use.
func (ts *Transports) Get(t plan.TLS, timeout time.Duration) (http.RoundTripper, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	key := fmt.Sprintf("%q %q %t %q %q %d", t.CAFile, t.Fingerprint, t.Insecure, t.ServerName, t.CAPEM, timeout)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if tr, ok := ts.m[key]; ok {
		return tr, nil
	}
	tr, err := newTransport(t, timeout)
	if err != nil {
		return nil, err
	}
	if ts.m == nil {
		ts.m = map[string]*http.Transport{}
	}
	ts.m[key] = tr
	return tr, nil
}

// Authenticator adds credentials to a request. Implementations are safe for
// concurrent use and share one credential among all requests.
type Authenticator interface {
	// Authorize adds credentials to req, fetching them first if needed (using c for
	// the token request, with Request.NoAuth set).
	Authorize(ctx context.Context, c *Client, req *http.Request) error
	// Invalidate drops the credential that was used on req, so the next Authorize renews it.
	Invalidate(req *http.Request)
}

// ErrRedirectRefused is the cause of a failed call whose answer redirected to
// another scheme or host: the client does not follow it (the request's credentials
// would go there). The error is permanent and nothing was applied by the redirect.
var ErrRedirectRefused = errors.New("refused redirect to another host")

// Client talks to one endpoint.
type Client struct {
	cfg   Config
	base  *url.URL
	hc    *http.Client
	sem   chan struct{}
	rate  *adaptive
	pause pauser
}

// New builds a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %s: url %q: want an absolute http(s) URL", cfg.Name, cfg.BaseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "provision"
	}
	rt := cfg.Transport
	if rt == nil {
		tr, err := newTransport(cfg.TLS, cfg.Timeout)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: %w", cfg.Name, err)
		}
		rt = tr
	}
	c := &Client{cfg: cfg, base: u}
	c.hc = &http.Client{
		Transport: rt,
		Timeout:   cfg.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("stopped after 5 redirects")
			}
			if req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
				return fmt.Errorf("%w (%s): credentials are never sent there", ErrRedirectRefused, req.URL.Host)
			}
			return nil
		},
	}
	if cfg.Limits.Concurrency > 0 {
		c.sem = make(chan struct{}, cfg.Limits.Concurrency)
	}
	// The plan's rate is a ceiling; without one the rate is found at run time
	// (adaptive.go).
	c.rate = newAdaptive(cfg.Name, cfg.Limits.RatePerSecond, cfg.Limits.Burst, nil)
	return c, nil
}

// Name returns the endpoint name.
func (c *Client) Name() string { return c.cfg.Name }

// BaseURL returns the endpoint's base URL.
func (c *Client) BaseURL() *url.URL { u := *c.base; return &u }

// Request is one API call.
type Request struct {
	Method string
	// Path is joined to the base URL's path prefix; an absolute URL is used as is
	// when it has the base URL's scheme, host and port, and refused (nothing sent,
	// a permanent error) otherwise.
	Path  string
	Query url.Values
	// JSON is marshalled as the body (Content-Type application/json); Form is sent
	// url-encoded; Body is sent as is with ContentType.
	JSON        any
	Form        url.Values
	Body        []byte
	ContentType string
	Header      http.Header
	// Auth is the credential of this call (the acting user's token source); nil
	// means the endpoint's Config.Auth.
	Auth Authenticator
	// NoAuth skips the authenticator (token requests themselves).
	NoAuth bool
	// OK lists the statuses that count as success; empty means any 2xx.
	OK []int
	// Idempotent marks calls that may be repeated freely (GET, PUT, DELETE and
	// upserts); a failed non-idempotent call that may have reached the server is
	// reported with MaybeApplied.
	Idempotent bool
	// Op names the call in errors; default "METHOD PATH".
	Op string
}

// Response is a successful answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v; a decoding failure is a permanent *providers.Error
// that quotes the start of the body.
func (r *Response) JSON(op string, v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return &providers.Error{Op: op, Status: r.Status, Message: "unexpected answer: " + snippet(r.Header, r.Body), Err: err}
	}
	return nil
}

// Do sends the request and returns the answer if its status is a success. Failures
// are *providers.Error, or ctx.Err() when the context ended.
func (c *Client) Do(ctx context.Context, r *Request) (*Response, error) {
	if r.Op == "" {
		r.Op = r.Method + " " + r.Path
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		r.Idempotent = true
	}
	resp, err := c.do(ctx, r, true)
	return resp, err
}

func (c *Client) do(ctx context.Context, r *Request, mayRenew bool) (*Response, error) {
	req, err := c.newRequest(ctx, r)
	if err != nil {
		return nil, &providers.Error{Op: r.Op, Err: err}
	}
	auth := c.authOf(r)
	if auth != nil {
		if err := auth.Authorize(ctx, c, req); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%s: authenticate: %w", r.Op, err)
		}
	}
	status, header, body, err := c.send(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.transportError(r, err)
	}
	expired := status == http.StatusUnauthorized
	if c.cfg.Expired != nil {
		expired = c.cfg.Expired(status, header, body)
	}
	if expired && auth != nil && mayRenew {
		auth.Invalidate(req)
		zerolog.Ctx(ctx).Debug().Str("endpoint", c.cfg.Name).Str("op", r.Op).Msg("credentials expired, renewing once")
		return c.do(ctx, r, false)
	}
	if ok(status, r.OK) {
		return &Response{Status: status, Header: header, Body: body}, nil
	}
	return nil, c.statusError(r, status, header, body)
}

// authOf is the authenticator of a request: none with NoAuth, else its own, else
// the endpoint's.
func (c *Client) authOf(r *Request) Authenticator {
	switch {
	case r.NoAuth:
		return nil
	case r.Auth != nil:
		return r.Auth
	}
	return c.cfg.Auth
}

func (c *Client) newRequest(ctx context.Context, r *Request) (*http.Request, error) {
	u, err := c.resolve(r.Path)
	if err != nil {
		return nil, err
	}
	if len(r.Query) > 0 {
		q := u.Query()
		for k, vs := range r.Query {
			for _, v := range vs {
				q.Add(k, v)
			}
		}
		u.RawQuery = q.Encode()
	}
	var body []byte
	ct := r.ContentType
	switch {
	case r.JSON != nil:
		body, err = json.Marshal(r.JSON)
		if err != nil {
			return nil, fmt.Errorf("encode body: %w", err)
		}
		ct = "application/json"
	case r.Form != nil:
		body = []byte(r.Form.Encode())
		ct = "application/x-www-form-urlencoded"
	default:
		body = r.Body
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		b := body
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	return req, nil
}

// transportText is a transport error without the request URL (*url.Error quotes
// it whole, query string included).
func transportText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

func (c *Client) resolve(p string) (*url.URL, error) {
	if IsAbsoluteURL(p) {
		u, err := url.Parse(p)
		if err != nil {
			return nil, errors.New("the path is an absolute URL that cannot be parsed")
		}
		if !SameOrigin(u, c.base) {
			return nil, &OtherHostError{Endpoint: c.cfg.Name, Base: origin(c.base), Target: origin(u)}
		}
		return u, nil
	}
	u := *c.base
	ref, err := url.Parse(p)
	if err != nil {
		return nil, err
	}
	u.Path = c.base.Path + "/" + strings.TrimLeft(ref.Path, "/")
	u.RawPath = ""
	u.RawQuery = ref.RawQuery
	return &u, nil
}

// IsAbsoluteURL reports whether a request path is an absolute http(s) URL.
func IsAbsoluteURL(p string) bool {
	l := strings.ToLower(p[:min(len(p), 8)])
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// SameOrigin reports whether a and b have the same scheme, host and port (a
// missing port is the scheme's default).
func SameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// origin is scheme://host[:port], without credentials, path or query.
func origin(u *url.URL) string { return strings.ToLower(u.Scheme) + "://" + u.Host }

// OtherHostError is a request to an absolute URL on another scheme, host or port
// than its endpoint: it is never sent, so the endpoint's credentials stay with it.
type OtherHostError struct {
	Endpoint     string
	Base, Target string
}

func (e *OtherHostError) Error() string {
	return fmt.Sprintf("refused: %s is another host than endpoint %s (%s); its credentials are never sent to another host", e.Target, e.Endpoint, e.Base)
}

// send waits for the endpoint (429 pause, rate, slot), sends, and reads the body.
// The slot is held for the request itself, and for what is left of a pause that
// began while the request waited for its turn (nothing goes to the endpoint then
// anyway). Requests that passed the rate during a pause go out together when it
// ends: as many as the rate allowed over the pause, for which a server-side limit
// (a token bucket, or a window of requests as DRF's throttles count) has made room
// over the same time (an inference: the vendors do not publish theirs); a 429
// then cuts the rate again.
func (c *Client) send(ctx context.Context, req *http.Request) (int, http.Header, []byte, error) {
	if err := c.pause.wait(ctx); err != nil {
		return 0, nil, nil, err
	}
	if err := c.rate.wait(ctx); err != nil {
		return 0, nil, nil, err
	}
	if c.sem != nil {
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return 0, nil, nil, ctx.Err()
		}
		defer func() { <-c.sem }()
	}
	// A 429 may have paused the endpoint while this request waited for its turn
	// at the rate or for a slot: it goes only once the pause is over.
	if err := c.pause.wait(ctx); err != nil {
		return 0, nil, nil, err
	}
	c.rate.meter(metersFrom(ctx))
	start := c.rate.sent()
	resp, err := c.hc.Do(req)
	// Each request is logged at debug level with the task's logger from the context
	// (task, attempt): method, route (the URL path: no query string, which may
	// carry a session key), status and duration; never a header or a body.
	if err != nil {
		zerolog.Ctx(ctx).Debug().Str("endpoint", c.cfg.Name).Str("method", req.Method).Str("route", req.URL.Path).
			Int64("took_ms", time.Since(start).Milliseconds()).Str("error", transportText(err)).Msg("request failed")
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBody+1))
	zerolog.Ctx(ctx).Debug().Str("endpoint", c.cfg.Name).Str("method", req.Method).Str("route", req.URL.Path).
		Int("status", resp.StatusCode).Int64("took_ms", time.Since(start).Milliseconds()).Msg("request")
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read answer: %w", err)
	}
	c.rate.observe(start, Throttled(resp.StatusCode, resp.Header))
	if int64(len(body)) > c.cfg.MaxBody {
		return resp.StatusCode, resp.Header, nil, errBodyTooLarge{limit: c.cfg.MaxBody}
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		d := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		if d <= 0 {
			d = time.Second
		}
		if max := c.maxPause(); d > max {
			zerolog.Ctx(ctx).Warn().Str("endpoint", c.cfg.Name).Int64("retry_after_asked_ms", d.Milliseconds()).Int64("paused_ms", max.Milliseconds()).Msg("the server asked to pause longer than the endpoint's max_retry_after; pausing for that")
			d = max
		}
		c.pause.until(time.Now().Add(d))
	}
	return resp.StatusCode, resp.Header, body, nil
}

// Throttled reports whether an answer says "too many requests": 429, or 503 with a
// Retry-After header. Such a request was not processed; it slows the endpoint
// (adaptive.go) and costs the task no attempt.
func Throttled(status int, header http.Header) bool {
	return status == http.StatusTooManyRequests || (status == http.StatusServiceUnavailable && header.Get("Retry-After") != "")
}

func (c *Client) maxPause() time.Duration {
	if d := c.cfg.Limits.MaxRetryAfter.D(); d > 0 {
		return d
	}
	return DefaultMaxRetryAfter
}

type errBodyTooLarge struct{ limit int64 }

func (e errBodyTooLarge) Error() string {
	return fmt.Sprintf("answer body larger than %d bytes, not read", e.limit)
}

func (c *Client) transportError(r *Request, err error) *providers.Error {
	// net/http's *url.Error quotes the whole URL, query included (where some APIs
	// carry session keys): keep only the cause; Op already names the call.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	e := &providers.Error{Op: r.Op, Err: err, Retryable: true}
	var big errBodyTooLarge
	if errors.As(err, &big) {
		e.Retryable = false
	}
	var op *net.OpError
	notSent := errors.As(err, &op) && op.Op == "dial"
	var dns *net.DNSError
	if errors.As(err, &dns) {
		notSent = true
	}
	if errors.Is(err, ErrRedirectRefused) || IsTLSFailure(err) {
		// TLS verification and redirect refusals will not fix themselves. A refused
		// redirect was not sent to where it pointed.
		e.Retryable = false
		notSent = true
	}
	e.MaybeApplied = !notSent && !r.Idempotent
	return e
}

func (c *Client) statusError(r *Request, status int, header http.Header, body []byte) *providers.Error {
	dec := c.cfg.DecodeError
	if dec == nil {
		dec = DefaultErrorDecoder
	}
	code, msg := dec(status, header, body)
	return StatusError(r, status, header, code, msg)
}

// StatusError classifies a failed answer of r: its status (HTTP, or the status an
// API reports in a 2xx envelope), headers and the API's code and message. 429 and
// 503 are retryable and nothing was applied (Throttled when Retry-After says so for
// a 503); 408 and other 5xx are retryable and may have applied a non-idempotent
// call; everything else is permanent.
func StatusError(r *Request, status int, header http.Header, code, msg string) *providers.Error {
	e := &providers.Error{Op: r.Op, Status: status, Code: code, Message: msg, Throttled: Throttled(status, header)}
	switch {
	case status == http.StatusTooManyRequests:
		e.Retryable = true
		e.RetryAfter = ParseRetryAfter(header.Get("Retry-After"), time.Now())
	case status == http.StatusServiceUnavailable:
		// The service refused the request before processing it.
		e.Retryable = true
		e.RetryAfter = ParseRetryAfter(header.Get("Retry-After"), time.Now())
	case status == http.StatusRequestTimeout:
		e.Retryable = true
		e.MaybeApplied = !r.Idempotent
	case status >= 500:
		e.Retryable = true
		e.MaybeApplied = !r.Idempotent
	}
	return e
}

func ok(status int, want []int) bool {
	if len(want) == 0 {
		return status >= 200 && status < 300
	}
	for _, w := range want {
		if w == status {
			return true
		}
	}
	return false
}

// ParseRetryAfter reads a Retry-After value (seconds or HTTP date); 0 if absent or bad.
// Values are capped at a century only so that they fit a time.Duration: callers cap
// the wait itself (the endpoint's pause, the task's backoff) and report what the
// server asked for.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n < 0 || n != n { // negative or NaN
			return 0
		}
		if n >= maxRetryAfterParsed.Seconds() {
			return maxRetryAfterParsed
		}
		d = time.Duration(n * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, maxRetryAfterParsed)
}

const maxRetryAfterParsed = 100 * 365 * 24 * time.Hour

var titleRE = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// DefaultErrorDecoder reads common JSON error shapes ({"message"}, {"error"},
// {"errorText"}, {"msg"}, a JSON string) and falls back to a short text snippet; an
// HTML page is reported by its title.
func DefaultErrorDecoder(status int, header http.Header, body []byte) (code, message string) {
	var s string
	if json.Unmarshal(body, &s) == nil && s != "" {
		return "", clip(s)
	}
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		for _, k := range []string{"errorText", "errorString", "message", "msg", "error_description", "error", "detail"} {
			if v, ok := m[k].(string); ok && v != "" {
				code, _ = firstString(m, "resultCode", "errorId", "code", "error")
				if code == v {
					code = ""
				}
				return code, clip(v)
			}
		}
	}
	return "", snippet(header, body)
}

func firstString(m map[string]any, keys ...string) (string, bool) {
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			if v != "" {
				return v, true
			}
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64), true
		}
	}
	return "", false
}

func snippet(header http.Header, body []byte) string {
	if len(bytes.TrimSpace(body)) == 0 {
		return "empty body"
	}
	ct := ""
	if header != nil {
		ct = header.Get("Content-Type")
	}
	if strings.Contains(ct, "html") || bytes.Contains(bytes.ToLower(body[:min(len(body), 512)]), []byte("<html")) {
		if m := titleRE.FindSubmatch(body); m != nil {
			return fmt.Sprintf("HTML page %q (%d bytes)", clip(strings.TrimSpace(string(m[1]))), len(body))
		}
		return fmt.Sprintf("HTML page (%d bytes)", len(body))
	}
	return clip(string(body))
}

func clip(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// pauser holds back every request of an endpoint until a time (after a 429).
type pauser struct {
	mu sync.Mutex
	t  time.Time
}

func (p *pauser) until(t time.Time) {
	p.mu.Lock()
	if t.After(p.t) {
		p.t = t
	}
	p.mu.Unlock()
}

func (p *pauser) wait(ctx context.Context) error {
	for {
		p.mu.Lock()
		d := time.Until(p.t)
		p.mu.Unlock()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}
