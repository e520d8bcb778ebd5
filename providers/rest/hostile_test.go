package rest

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"provision/plan"
	"provision/providers"
)

// An absolute URL in a request path to another scheme, host or port is refused
// before anything is sent: the endpoint's credentials never go to another host.
func TestClient_Do_RefusesAbsoluteURLToOtherHost(t *testing.T) {
	var otherHits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherHits.Add(1) }))
	defer other.Close()
	var ownHits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ownHits.Add(1); w.WriteHeader(204) }))
	defer srv.Close()
	c, err := New(Config{Name: "t", BaseURL: srv.URL + "/api", Auth: BasicAuth{Username: "ops", Password: plan.NewSecret("basic-canary-password")}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	for _, p := range []string{
		other.URL + "/steal",                                               // another port
		"https://" + u.Host + "/steal",                                     // another scheme
		"http://localhost:" + u.Port() + "/steal",                          // another host name
		"http://ops:pw@" + strings.TrimPrefix(other.URL, "http://") + "/x", // credentials in the URL, another port
	} {
		_, err := c.Do(context.Background(), &Request{Method: "POST", Path: p, JSON: map[string]string{"a": "b"}})
		if err == nil || !strings.Contains(err.Error(), "another host") {
			t.Errorf("%s: err = %v, want a refusal", p, err)
		}
		if providers.IsRetryable(err) || providers.MaybeApplied(err) {
			t.Errorf("%s: a refusal must be permanent and not in doubt: %v", p, err)
		}
	}
	if n := otherHits.Load() + ownHits.Load(); n != 0 {
		t.Fatalf("%d requests were sent", n)
	}
	// The endpoint's own origin stays usable in absolute form (paging links).
	if _, err := c.Do(context.Background(), &Request{Method: "GET", Path: srv.URL + "/api/next?page=2"}); err != nil {
		t.Fatalf("same origin: %v", err)
	}
}

// The generic OAuth2 token request: the endpoint's TLS options (here insecure: true)
// apply to the endpoint's own host only; a token_url on another host gets default
// verification, so a client secret is never posted to an unverified host.
func TestOAuth2_TokenURLOnOtherHostGetsDefaultVerification(t *testing.T) {
	var posted atomic.Int64
	tokenSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "client_secret") {
			posted.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"tok-from-other-host","expires_in":3600}`)
	}))
	defer tokenSrv.Close()
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"access_token":"tok-same-host","expires_in":3600}`)
			return
		}
		w.WriteHeader(204)
	}))
	defer api.Close()

	ep := &plan.Endpoint{Name: "api", Kind: "http", URL: api.URL, TLS: plan.TLS{Insecure: true},
		Auth: plan.Auth{Type: "oauth2-client-credentials", TokenURL: tokenSrv.URL + "/oauth/token", ClientID: "id", ClientSecret: plan.NewSecret("client-secret-canary-77")}}
	auth, err := ForEndpoint(ep, plan.NewRedactor())
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromEndpoint(ep, auth)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do(context.Background(), &Request{Method: "GET", Path: "/thing"})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate error from the token host", err)
	}
	if posted.Load() != 0 {
		t.Fatal("the client secret was posted to a host whose certificate was not checked")
	}

	// A token URL on the endpoint's own host keeps the endpoint's TLS options.
	ep.Auth.TokenURL = "/token"
	auth, _ = ForEndpoint(ep, plan.NewRedactor())
	c, _ = FromEndpoint(ep, auth)
	if _, err := c.Do(context.Background(), &Request{Method: "GET", Path: "/thing"}); err != nil {
		t.Fatalf("same-host token URL: %v", err)
	}
	ep.Auth.TokenURL = api.URL + "/token"
	auth, _ = ForEndpoint(ep, plan.NewRedactor())
	c, _ = FromEndpoint(ep, auth)
	if _, err := c.Do(context.Background(), &Request{Method: "GET", Path: "/thing"}); err != nil {
		t.Fatalf("absolute token URL on the endpoint's host: %v", err)
	}
}

// A hostile Retry-After (999999999 s) pauses the endpoint for the endpoint's cap at
// most (limits.max_retry_after, default DefaultMaxRetryAfter), while the error still
// carries what the server asked for, so the task's log line can say so.
func TestClient_Do_RetryAfterPauseIsCapped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "999999999")
		w.WriteHeader(429)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		limits plan.Limits
		want   time.Duration
	}{
		{plan.Limits{}, DefaultMaxRetryAfter},
		{plan.Limits{MaxRetryAfter: plan.Duration{Duration: 2 * time.Second}}, 2 * time.Second},
	} {
		c, err := New(Config{Name: "t", BaseURL: srv.URL, Limits: tc.limits})
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		_, err = c.Do(context.Background(), &Request{Method: "GET", Path: "/"})
		if got := providers.RetryAfter(err); got != 999999999*time.Second {
			t.Errorf("error carries Retry-After %v, want what the server asked (999999999s)", got)
		}
		c.pause.mu.Lock()
		until := c.pause.t
		c.pause.mu.Unlock()
		if until.After(time.Now().Add(tc.want)) || until.Before(before.Add(tc.want)) {
			t.Errorf("endpoint paused until %v from now, want %v", until.Sub(before), tc.want)
		}
	}
}

// A session key sent in the query string (OpenvCloud's ?authkey=) is registered the
// moment it is obtained, so a server that echoes the query back cannot make it leak
// in any form: raw, query-escaped or base64.
func TestTokenAuth_QueryKeyIsMaskedWhenEchoed(t *testing.T) {
	const key = "sess+key/=canary&42"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		io.WriteString(w, `{"message":"bad call ?`+r.URL.RawQuery+` (`+base64.StdEncoding.EncodeToString([]byte(r.URL.RawQuery))+`)"}`)
	}))
	defer srv.Close()
	red := plan.NewRedactor()
	auth := &TokenAuth{Redactor: red,
		Fetch: func(context.Context, *Client) (Token, error) { return Token{Value: key}, nil },
		Apply: func(req *http.Request, k string) {
			q := req.URL.Query()
			q.Set("authkey", k)
			req.URL.RawQuery = q.Encode()
		}}
	c, _ := New(Config{Name: "ovc", BaseURL: srv.URL, Auth: auth})
	_, err := c.Do(context.Background(), &Request{Method: "POST", Path: "/restmachine/cloudapi/cloudspaces/list"})
	if err == nil || !strings.Contains(err.Error(), "authkey=") {
		t.Fatalf("err = %v, want the echo", err)
	}
	got := red.Redact(err.Error())
	// In base64 of "authkey=<escaped key>" the escaped key starts at byte 8: its
	// bytes from the second on fill whole 3-byte groups, which encode to a fixed text.
	esc := url.QueryEscape(key)
	frag := base64.RawStdEncoding.EncodeToString([]byte(esc[1 : 1+(len(esc)-1)/3*3]))
	if !strings.Contains(err.Error(), frag) {
		t.Fatalf("the echo lacks the base64 form %s: %v", frag, err)
	}
	for _, f := range []string{key, esc, frag} {
		if strings.Contains(got, f) {
			t.Errorf("%q still in %s", f, got)
		}
	}
}
