package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// echoServer is a hostile REST server for the canary test: every error answer
// echoes the request back (method, escaped path and query, every header, the raw
// body, the body in base64), one part per item so that each part fits the 300
// bytes of an API message that the client keeps. It is not a vendor API: it plays
// the server of an outside audit (issue 12) that tries to make secrets leak.
type echoServer struct {
	key, token string

	mu      sync.Mutex
	calls   map[string]int
	echoes  strings.Builder // every error body sent
	tokenN  int
	issued  int
	handler http.Handler
}

func newEchoServer(key, token string) *echoServer {
	s := &echoServer{key: key, token: token, calls: map[string]int{}}
	mux := http.NewServeMux()
	// RFC 6749 section 4.4 (client credentials, form post), as rest.OAuth2 sends it;
	// the first answer is a 503 that echoes the form (client_secret included).
	mux.HandleFunc("POST /o/token", s.tokenRoute)
	// Issues a secret (the item's secret output); inference: any REST create.
	mux.HandleFunc("POST /keys", s.issue)
	// Everything else: an error that echoes the request (hostile, issue 12).
	mux.HandleFunc("/", s.echo)
	s.handler = mux
	return s
}

func (s *echoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *echoServer) tokenRoute(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.tokenN++
	first := s.tokenN == 1
	s.mu.Unlock()
	if first {
		s.fail(w, 503, "text/plain", "token service busy; you sent "+string(body))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": s.token, "token_type": "bearer", "expires_in": 3600})
}

func (s *echoServer) issue(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.issued++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"key": s.key})
}

func (s *echoServer) echo(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	// The part to echo: /use/<n>/... picks part n; the oauth item echoes headers.
	part := 2
	if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/use/"); ok {
		fmt.Sscanf(rest, "%d", &part)
	}
	var text string
	switch part {
	case 1:
		text = "you sent " + r.Method + " " + r.URL.RequestURI()
	case 2:
		text = "your Authorization: " + r.Header.Get("Authorization")
	case 3:
		text = "your headers: X-Api-Key=" + r.Header.Get("X-Api-Key") + " X-Extra=" + r.Header.Get("X-Extra")
	case 4:
		text = "your body: " + string(body)
	case 5:
		text = "your body in base64: " + base64.StdEncoding.EncodeToString(body)
	case 6:
		text = "your query in base64url: " + base64.URLEncoding.EncodeToString([]byte(r.URL.RawQuery)) + " and raw: " + r.URL.RawQuery
	default:
		q, _ := url.QueryUnescape(r.URL.RawQuery)
		text = "your query decoded: " + q
	}
	key := r.URL.Path
	s.mu.Lock()
	s.calls[key]++
	n := s.calls[key]
	s.mu.Unlock()
	switch {
	case n == 1: // retryable: the runner logs the error and retries
		s.fail(w, 503, "application/json", mustJSON(map[string]string{"message": text}))
	case n%2 == 0:
		s.fail(w, 400, "application/json", mustJSON(map[string]string{"errorText": text, "resultCode": "echo"}))
	default:
		s.fail(w, 422, "text/plain", text)
	}
}

func (s *echoServer) fail(w http.ResponseWriter, status int, ct, body string) {
	s.mu.Lock()
	s.echoes.WriteString(body + "\n")
	s.mu.Unlock()
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// Issued returns how many keys the server issued.
func (s *echoServer) Issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// Echoed returns every error body the server sent.
func (s *echoServer) Echoed() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.echoes.String()
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// echoPlan runs against the echo server: a Basic endpoint and an OAuth2 one, secrets
// in the path, query, headers and JSON body, and a secret output (a key issued by
// the server) that six items use; each of them makes the server echo one part of
// its request.
const echoPlan = `version: 1
name: hostile
vars: {api: "http://127.0.0.1:1"}
endpoints:
  echo:
    kind: http
    url: ${var.api}
    auth: {type: basic, username: ops@example.com, password: "${env.ECHO_BASIC_PASSWORD}"}
  echo_oauth:
    kind: http
    url: ${var.api}/o
    auth: {type: oauth2-client-credentials, token_url: /token, client_id: app, client_secret: "${env.ECHO_CLIENT_SECRET}"}
http:
  items:
    - name: issue-key
      endpoint: echo
      path: /keys
      body: {seed: "${env.ECHO_BODY_SECRET}"}
      outputs: {key: {path: key, secret: true}}
    - name: use-key-${row.value}
      foreach: {range: {from: 1, to: 7}}
      endpoint: echo
      method: PUT
      path: /use/${row.value}/${env.ECHO_PATH_SECRET}
      query: {token: "${env.ECHO_QUERY_SECRET}", key: "${outputs.issue-key.key}"}
      headers: {X-Api-Key: "${outputs.issue-key.key}", X-Extra: "${env.ECHO_HEADER_SECRET}"}
      body: {key: "${outputs.issue-key.key}", pw: "${env.ECHO_BODY_SECRET}"}
    - name: oauth-call
      endpoint: echo_oauth
      method: PUT
      path: /thing
      body: {x: "${env.ECHO_BODY_SECRET}"}
`
