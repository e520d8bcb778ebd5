// Package cnfake is a fake Cloudneeti API: license and account tokens issued to an
// API application (Ocp-Apim-Subscription-Key header on every call), cloud account
// onboarding (AWS, Azure) with onboarding jobs, the API application's account
// scope, and rescans whose jobs go Pending -> Running -> Success. Answers use the
// {result, statusCode, message} envelope; the token answer may also come with the
// token at top level (the seed's shape).
package cnfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"provision/providers/fault"
)

// Options configure the fake.
type Options struct {
	License         string
	SubscriptionKey string
	AppID, Secret   string
	TokenLifetime   time.Duration // default 1h
	JobDelay        time.Duration // each job phase (default 50ms)
	TopLevelToken   bool
	Faults          fault.Config
}

// Account is an onboarded cloud account.
type Account struct {
	ID, Name, Connector string
	InAPIScope          bool
	Rescans             int
}

type job struct {
	start time.Time
	fail  bool
}

// Counters count state changes.
type Counters struct {
	Onboarded, Conflicts, ScopeAdds, Rescans, Tokens int
}

// Server is the fake; safe for concurrent use.
type Server struct {
	Faults *fault.Injector
	opts   Options
	h      http.Handler

	mu       sync.Mutex
	accounts []*Account
	jobs     map[string]*job
	tokens   map[string]time.Time
	counters Counters
}

// Demo returns options with the license and application the example plan uses.
func Demo() Options {
	return Options{License: "lic-demo-0001", AppID: "app-demo-0001"}
}

// New returns a fake.
func New(o Options) *Server {
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = time.Hour
	}
	if o.JobDelay <= 0 {
		o.JobDelay = 50 * time.Millisecond
	}
	s := &Server{Faults: fault.New(o.Faults), opts: o, jobs: map[string]*job{}, tokens: map[string]time.Time{}}
	m := http.NewServeMux()
	m.HandleFunc("POST /authorize/license/{lic}/token", s.token)
	m.HandleFunc("POST /onboarding/license/{lic}/account/{cloud}", s.auth(s.onboard))
	m.HandleFunc("GET /onboarding/license/{lic}/licenseAccounts", s.auth(s.list))
	m.HandleFunc("PUT /onboarding/license/{lic}/config", s.auth(s.scope))
	m.HandleFunc("GET /compliance/license/{lic}/account/{acc}/rescan", s.auth(s.rescan))
	m.HandleFunc("GET /compliance/license/{lic}/account/{acc}/job/{job}/status", s.auth(s.jobStatus))
	s.h = s.Faults.Wrap(m)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// SetCredentials sets the subscription key and application secret the fake accepts.
func (s *Server) SetCredentials(license, key, appID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.License, s.opts.SubscriptionKey, s.opts.AppID, s.opts.Secret = license, key, appID, secret
}

func reply(w http.ResponseWriter, status int, result any, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]any{"statusCode": status, "message": msg}
	if result != nil {
		body["result"] = result
	}
	_ = json.NewEncoder(w).Encode(body)
}

func id() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) keyOK(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	ok := r.Header.Get("Ocp-Apim-Subscription-Key") == s.opts.SubscriptionKey && s.opts.SubscriptionKey != ""
	s.mu.Unlock()
	if !ok {
		reply(w, 401, nil, "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.")
	}
	return ok
}

func (s *Server) licenseOK(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("lic") != s.opts.License {
		reply(w, 404, nil, "License not found")
		return false
	}
	return true
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if !s.keyOK(w, r) || !s.licenseOK(w, r) {
		return
	}
	var req struct {
		APIApplicationID string `json:"APIApplicationId"`
		Secret           string `json:"Secret"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		reply(w, 400, nil, "Request body must be JSON")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.APIApplicationID != s.opts.AppID || req.Secret != s.opts.Secret {
		reply(w, 401, nil, "Invalid API application id or secret")
		return
	}
	t := "cnt-" + id() + id()
	s.tokens[t] = time.Now().Add(s.opts.TokenLifetime)
	s.counters.Tokens++
	if s.opts.TopLevelToken {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token": t, "statusCode": 200, "message": "Request Successful"})
		return
	}
	reply(w, 200, map[string]any{"token": t}, "Request Successful")
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.keyOK(w, r) {
			return
		}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		exp, ok := s.tokens[tok]
		s.mu.Unlock()
		if !ok || time.Now().After(exp) {
			reply(w, 401, nil, "Unauthorized: token missing or expired")
			return
		}
		if !s.licenseOK(w, r) {
			return
		}
		h(w, r)
	}
}

var (
	awsIDRE = regexp.MustCompile(`^\d{12}$`)
	uuidRE  = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

func (s *Server) onboard(w http.ResponseWriter, r *http.Request) {
	var m map[string]string
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&m); err != nil {
		reply(w, 400, nil, "Request body must be a JSON object of strings")
		return
	}
	cloud := r.PathValue("cloud")
	switch cloud {
	case "aws":
		if m["AccountName"] == "" || !awsIDRE.MatchString(m["AWSAccountId"]) || m["AWSRoleName"] == "" {
			reply(w, 400, nil, "AccountName, AWSAccountId (12 digits) and AWSRoleName are required")
			return
		}
	case "azure":
		if m["AccountName"] == "" || m["DomainName"] == "" || !uuidRE.MatchString(m["TenantId"]) || !uuidRE.MatchString(m["ADApplicationClientId"]) || m["ADApplicationClientSecret"] == "" || !uuidRE.MatchString(m["SubscriptionId"]) {
			reply(w, 400, nil, "AccountName, DomainName, TenantId, ADApplicationClientId, ADApplicationClientSecret and SubscriptionId are required")
			return
		}
	default:
		reply(w, 404, nil, "unknown cloud "+cloud)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		if a.Name == m["AccountName"] {
			s.counters.Conflicts++
			reply(w, 409, nil, fmt.Sprintf("Account with name %s already exists", a.Name))
			return
		}
	}
	a := &Account{ID: "acc-" + id(), Name: m["AccountName"], Connector: cloud}
	s.accounts = append(s.accounts, a)
	j := "job-" + id()
	s.jobs[j] = &job{start: time.Now()}
	s.counters.Onboarded++
	reply(w, 200, map[string]any{"accountId": a.ID, "jobId": j}, "Request Successful")
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var out []map[string]any
	for _, a := range s.accounts {
		out = append(out, map[string]any{"accountId": a.ID, "accountName": a.Name, "isInApiScope": a.InAPIScope, "connectorType": a.Connector})
	}
	s.mu.Unlock()
	if out == nil {
		out = []map[string]any{}
	}
	reply(w, 200, map[string]any{"accounts": out}, "Request Successful")
}

func (s *Server) find(id string) *Account {
	for _, a := range s.accounts {
		if a.ID == id {
			return a
		}
	}
	return nil
}

func (s *Server) scope(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AccountID string `json:"accountId"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		reply(w, 400, nil, "Request body must be JSON")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.find(req.AccountID)
	if a == nil {
		reply(w, 404, nil, "Account not found")
		return
	}
	if !a.InAPIScope {
		s.counters.ScopeAdds++
	}
	a.InAPIScope = true
	reply(w, 200, map[string]any{"accountId": a.ID}, "Request Successful")
}

func (s *Server) rescan(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.find(r.PathValue("acc"))
	if a == nil {
		reply(w, 404, nil, "Account not found")
		return
	}
	a.Rescans++
	s.counters.Rescans++
	j := "job-" + id()
	s.jobs[j] = &job{start: time.Now()}
	reply(w, 200, map[string]any{"jobId": j}, "Request Successful")
}

func (s *Server) jobStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	j, ok := s.jobs[r.PathValue("job")]
	s.mu.Unlock()
	if !ok {
		reply(w, 404, nil, "Job not found")
		return
	}
	st := "Pending"
	switch e := time.Since(j.start); {
	case e > 2*s.opts.JobDelay && j.fail:
		st = "Failed"
	case e > 2*s.opts.JobDelay:
		st = "Success"
	case e > s.opts.JobDelay:
		st = "Running"
	}
	reply(w, 200, map[string]any{"jobStatus": st}, "Request Successful")
}

// Snapshot returns the accounts and counters.
func (s *Server) Snapshot() ([]Account, Counters) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Account, len(s.accounts))
	for i, a := range s.accounts {
		out[i] = *a
	}
	return out, s.counters
}

// Duplicates lists account names onboarded more than once.
func (s *Server) Duplicates() []string {
	accs, _ := s.Snapshot()
	n := map[string]int{}
	for _, a := range accs {
		n[a.Name]++
	}
	var out []string
	for k, c := range n {
		if c > 1 {
			out = append(out, fmt.Sprintf("%s (%d)", k, c))
		}
	}
	sort.Strings(out)
	return out
}

// Report summarises the fake for the sandbox.
func (s *Server) Report() any {
	accs, c := s.Snapshot()
	return map[string]any{"accounts": len(accs), "duplicates": s.Duplicates(), "counters": c}
}
