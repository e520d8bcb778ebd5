// Package cnfake is a fake Cloudneeti API for tests and the sandbox.
//
// It follows the seed (cloudneeti-api-access.txt), API-NOTES sections 4 and 6 and the
// vendor's public pages, Cloudneeti/Cloudneeti_SaaS_Docs docs/userGuide/tokenAPI.md,
// onboardCloudAccount.md, getLicenseAccounts.md, updateAPIAppAccessScope.md,
// initiateScanAPI.md and scanStatusAPI.md. Each route below names its source; what
// no source shows is marked "inference".
//   - every call carries the API-portal subscription key in Ocp-Apim-Subscription-Key;
//     a missing or wrong key gets 401 (or Options.KeyDeniedStatus) with the API
//     gateway's envelope {"statusCode": 401, "message": "Access denied due to invalid
//     subscription key. ..."};
//   - POST /authorize/license/{lic}/token[?accountId=] {"APIApplicationId", "Secret"}
//     issues a license token (or an account token) that lives the application's
//     token lifetime; the answer is {"result": {"token"}, "statusCode": 200, "message"}
//     or, with Options.TopLevelToken, the seed's {"token", "statusCode", "message"};
//   - other calls need "Authorization: Bearer <token>"; a missing, unknown or expired
//     token gets 401 {"statusCode": 401, "message": "..."}; so does a token of the
//     wrong kind: rescan and job status take only an account token (for that
//     account: another account's gets 403), onboarding, licenseAccounts and the
//     API-scope config call only a license token;
//   - GET /onboarding/license/{lic}/licenseAccounts, POST .../account/aws|azure
//     (onboarding job), PUT .../config {accountId} (the calling application's API
//     scope), GET /compliance/license/{lic}/account/{acc}/rescan (a rescan job, only
//     for accounts in the application's scope), GET .../job/{job}/status; jobs go
//     Pending -> Running -> Success (or Failed) within Options.JobDelay.
//
// Inferences (the vendor does not document them): onboarding a second account with
// the same name, or the same AWS account id / Azure subscription, answers 409 in the
// usual envelope; validation failures answer 400 in the envelope; unknown license 404.
// With Options.ErrorsIn200 every error except the gateway's key check is answered
// with HTTP 200 and the error's statusCode in the envelope.
//
// Options.Faults.RateLimit is a server-side token bucket. The API sits behind Azure
// API Management (the Ocp-Apim-Subscription-Key header), so over the limit a call
// gets that gateway's answer: 429 with Retry-After and {"statusCode": 429, "message":
// "Rate limit is exceeded. Try again in N seconds."} (inference: the vendor publishes
// no limit and no throttled answer).
//
// A Server is safe for concurrent use.
package cnfake

import (
	"encoding/base64"
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
	// SubscriptionKeys are the accepted API keys (Ocp-Apim-Subscription-Key).
	SubscriptionKeys []string
	Licenses         []License
	// TokenLifetime for applications that set none (default 1h).
	TokenLifetime time.Duration
	// JobDelay: a job is Pending for the first half, Running for the second, then
	// Success (default 100ms).
	JobDelay time.Duration
	// TopLevelToken answers the token request in the seed's shape {token, statusCode, message}.
	TopLevelToken bool
	// ErrorsIn200 answers errors with HTTP 200 and the error statusCode in the envelope.
	ErrorsIn200 bool
	// KeyDeniedStatus is the HTTP status for a missing or wrong subscription key (401 or 403; default 401).
	KeyDeniedStatus int
	// FailRescans makes rescan jobs end Failed.
	FailRescans bool
	// Now is the fake's clock (tests); nil means time.Now.
	Now    func() time.Time
	Faults fault.Config
}

// License is a Cloudneeti license with its API applications and accounts.
type License struct {
	ID       string
	Apps     []App
	Accounts []Account
}

// App is an API application of a license.
type App struct {
	ID, Secret    string
	TokenLifetime time.Duration // 0: Options.TokenLifetime
}

// Account is an onboarded cloud account.
type Account struct {
	ID, Name  string
	Connector string // AWS or Azure
	// CloudID is the AWS account id or the Azure subscription id.
	CloudID string
	// Scope lists the API applications whose scope holds the account.
	Scope   []string
	Rescans int
}

// Job is an onboarding or rescan job.
type Job struct {
	ID, AccountID, Kind string // Kind: onboarding or rescan
	Start               time.Time
	Fail                bool
}

// Counters count state changes.
type Counters struct {
	Onboarded, Conflicts, ScopeAdds, Rescans, Tokens int
}

// Snapshot is a deep copy of the fake's objects.
type Snapshot struct {
	Accounts map[string][]Account // by license id
	Jobs     []Job
	Counters Counters
}

// Demo values: the license and application examples/plans/cloudneeti.yaml uses by
// default, and the credentials a bare demo fake accepts (the sandbox replaces them
// with the plan's, so any value works there).
const (
	DemoLicenseID       = "5d1e7c2a-8f3b-4a6e-9c0d-1b2a3c4d5e6f"
	DemoAppID           = "a7c3e9f1-2b4d-4f6a-8c0e-3d5f7a9b1c2e"
	DemoAppSecret       = "cloudneeti-demo-app-secret"
	DemoSubscriptionKey = "cloudneeti-demo-subscription-key"
)

// DemoOptions seeds the license and API application the example plan uses, with the
// demo credentials and no accounts.
func DemoOptions() Options {
	return Options{
		SubscriptionKeys: []string{DemoSubscriptionKey},
		Licenses:         []License{{ID: DemoLicenseID, Apps: []App{{ID: DemoAppID, Secret: DemoAppSecret}}}},
	}
}

type token struct {
	license, app, account string
	exp                   time.Time
}

type license struct {
	id       string
	apps     map[string]App
	accounts []*Account
}

// Server is the fake.
type Server struct {
	// Faults wraps the handler: switch faults on and off at run time.
	Faults *fault.Injector
	h      http.Handler

	mu       sync.Mutex
	opts     Options
	keys     map[string]bool
	licenses map[string]*license
	jobs     map[string]*Job
	tokens   map[string]token
	counters Counters
}

// New returns a fake with o's licenses and credentials.
func New(o Options) *Server {
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = time.Hour
	}
	if o.JobDelay <= 0 {
		o.JobDelay = 100 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.KeyDeniedStatus == 0 {
		o.KeyDeniedStatus = http.StatusUnauthorized
	}
	s := &Server{opts: o, keys: map[string]bool{}, licenses: map[string]*license{}, jobs: map[string]*Job{}, tokens: map[string]token{}}
	for _, k := range o.SubscriptionKeys {
		s.keys[k] = true
	}
	for _, l := range o.Licenses {
		s.addLicense(l)
	}
	s.Faults = fault.New(o.Faults)
	s.Faults.SetThrottle(throttled)
	m := http.NewServeMux()
	// Seed "STEP 3 Acquire an access token" and tokenAPI.md: license token, and the
	// account token with ?accountId=; the {result: {token}} shape: API-NOTES 4.
	m.HandleFunc("POST /authorize/license/{lic}/token", s.token)
	// onboardCloudAccount.md (license token; body fields: API-NOTES 4; duplicate
	// answers: inference).
	m.HandleFunc("POST /onboarding/license/{lic}/account/{cloud}", s.auth(licenseToken, s.onboard))
	// getLicenseAccounts.md (license token).
	m.HandleFunc("GET /onboarding/license/{lic}/licenseAccounts", s.auth(licenseToken, s.list))
	// updateAPIAppAccessScope.md (license token).
	m.HandleFunc("PUT /onboarding/license/{lic}/config", s.auth(licenseToken, s.scope))
	// initiateScanAPI.md: Authorization is the account token.
	m.HandleFunc("GET /compliance/license/{lic}/account/{acc}/rescan", s.auth(accountToken, s.rescan))
	// API-NOTES 4 and 6 (scanStatusAPI.md shows older paths; account token as for
	// the rescan).
	m.HandleFunc("GET /compliance/license/{lic}/account/{acc}/job/{job}/status", s.auth(accountToken, s.jobStatus))
	// inference: unknown routes answer 404 in the envelope, after the key check.
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if !s.keyOK(w, r) {
			return
		}
		s.reply(w, http.StatusNotFound, nil, "Resource not found")
	})
	s.h = s.Faults.Wrap(m)
	return s
}

func (s *Server) addLicense(l License) {
	lic := s.licenses[l.ID]
	if lic == nil {
		lic = &license{id: l.ID, apps: map[string]App{}}
		s.licenses[l.ID] = lic
	}
	for _, a := range l.Apps {
		lic.apps[a.ID] = a
	}
	for _, a := range l.Accounts {
		c := a
		c.Scope = append([]string(nil), a.Scope...)
		lic.accounts = append(lic.accounts, &c)
	}
}

// throttled is the API gateway's 429 (inference, see the package comment).
func throttled(w http.ResponseWriter, _ *http.Request, retryAfter time.Duration) {
	writeJSON(w, http.StatusTooManyRequests, map[string]any{"statusCode": http.StatusTooManyRequests,
		"message": fmt.Sprintf("Rate limit is exceeded. Try again in %d seconds.", int(retryAfter/time.Second))})
}

// ServeHTTP implements http.Handler (with faults).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// AddSubscriptionKey accepts another API key.
func (s *Server) AddSubscriptionKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = true
}

// AddLicense adds a license (or adds applications and accounts to an existing one).
func (s *Server) AddLicense(l License) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLicense(l)
}

// RevokeTokens forgets every issued token: the next call with one gets 401.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]token{}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	fault.WriteJSON(w, status, v)
}

// reply answers in the {result, statusCode, message} envelope.
func (s *Server) reply(w http.ResponseWriter, status int, result any, msg string) {
	body := map[string]any{"result": result, "statusCode": status, "message": msg}
	s.mu.Lock()
	in200 := s.opts.ErrorsIn200
	s.mu.Unlock()
	if status != http.StatusOK && in200 {
		writeJSON(w, http.StatusOK, body)
		return
	}
	writeJSON(w, status, body)
}

// keyOK is the API gateway's subscription key check.
func (s *Server) keyOK(w http.ResponseWriter, r *http.Request) bool {
	k := r.Header.Get("Ocp-Apim-Subscription-Key")
	s.mu.Lock()
	ok := k != "" && s.keys[k]
	status := s.opts.KeyDeniedStatus
	s.mu.Unlock()
	switch {
	case k == "":
		writeJSON(w, status, map[string]any{"statusCode": status, "message": "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API."})
	case !ok:
		writeJSON(w, status, map[string]any{"statusCode": status, "message": "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."})
	}
	return ok
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	return dec.Decode(v)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if !s.keyOK(w, r) {
		return
	}
	var req struct {
		AppID  string `json:"APIApplicationId"`
		Secret string `json:"Secret"`
	}
	if err := decodeBody(r, &req); err != nil {
		s.reply(w, http.StatusBadRequest, nil, "Request body must be a JSON object with APIApplicationId and Secret")
		return
	}
	if req.AppID == "" || req.Secret == "" {
		s.reply(w, http.StatusBadRequest, nil, "APIApplicationId and Secret are required")
		return
	}
	s.mu.Lock()
	lic, ok := s.licenses[r.PathValue("lic")]
	var app App
	if ok {
		app, ok = lic.apps[req.AppID]
	}
	if !ok || app.Secret != req.Secret {
		s.mu.Unlock()
		s.reply(w, http.StatusUnauthorized, nil, "Invalid license, API application id or secret")
		return
	}
	acc := r.URL.Query().Get("accountId")
	if acc != "" && lic.find(acc) == nil {
		s.mu.Unlock()
		s.reply(w, http.StatusNotFound, nil, "Account not found in this license")
		return
	}
	life := app.TokenLifetime
	if life <= 0 {
		life = s.opts.TokenLifetime
	}
	// A JWT-shaped token with an exp claim (inference: the pages only say "access
	// token"; the client reads exp when there is one).
	exp := s.opts.Now().Add(life)
	claims, _ := json.Marshal(map[string]any{"lic": lic.id, "app": app.ID, "acc": acc, "exp": exp.Unix(), "jti": fault.UUID()})
	t := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(claims) + "." +
		strings.ReplaceAll(fault.UUID()+fault.UUID(), "-", "")
	s.tokens[t] = token{license: lic.id, app: app.ID, account: acc, exp: exp}
	s.counters.Tokens++
	top := s.opts.TopLevelToken
	s.mu.Unlock()
	if top {
		writeJSON(w, http.StatusOK, map[string]any{"token": t, "statusCode": 200, "message": "Request Successful"})
		return
	}
	s.reply(w, http.StatusOK, map[string]any{"token": t}, "Request Successful")
}

type handler func(w http.ResponseWriter, r *http.Request, t token, lic *license)

// Token kinds a route takes.
const (
	licenseToken = iota
	accountToken
)

// auth checks the key and the token: its kind (license or account), that it is for
// the path's license and, for account tokens, the path's account. Handlers run with
// s.mu held.
func (s *Server) auth(kind int, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.keyOK(w, r) {
			return
		}
		scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		s.mu.Lock()
		t, ok := s.tokens[strings.TrimSpace(tok)]
		if !ok || !strings.EqualFold(scheme, "bearer") || s.opts.Now().After(t.exp) {
			s.mu.Unlock()
			s.reply(w, http.StatusUnauthorized, nil, "Unauthorized: the access token is missing, invalid or expired")
			return
		}
		lic := s.licenses[r.PathValue("lic")]
		if lic == nil || lic.id != t.license {
			s.mu.Unlock()
			s.reply(w, http.StatusForbidden, nil, "The access token is not valid for this license")
			return
		}
		switch {
		case kind == accountToken && t.account == "":
			s.mu.Unlock()
			s.reply(w, http.StatusUnauthorized, nil, "Unauthorized: this API needs an account token")
			return
		case kind == licenseToken && t.account != "":
			s.mu.Unlock()
			s.reply(w, http.StatusUnauthorized, nil, "Unauthorized: this API needs a license token")
			return
		case kind == accountToken && r.PathValue("acc") != t.account:
			s.mu.Unlock()
			s.reply(w, http.StatusForbidden, nil, "The account token is not valid for this account")
			return
		}
		defer s.mu.Unlock()
		h(w, r, t, lic)
	}
}

// replyLocked answers in the envelope; callers hold s.mu.
func (s *Server) replyLocked(w http.ResponseWriter, status int, result any, msg string) {
	body := map[string]any{"result": result, "statusCode": status, "message": msg}
	if status != http.StatusOK && s.opts.ErrorsIn200 {
		status = http.StatusOK
	}
	writeJSON(w, status, body)
}

func (l *license) find(id string) *Account {
	a, _ := fault.Find(l.accounts, func(a *Account) bool { return a.ID == id })
	return a
}

var (
	awsIDRE   = regexp.MustCompile(`^\d{12}$`)
	roleRE    = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	uuidRE    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domainRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$`)
	accNameRE = regexp.MustCompile(`^[^<>%&\\]{1,100}$`)
)

func (s *Server) onboard(w http.ResponseWriter, r *http.Request, t token, lic *license) {
	var m map[string]any
	if err := decodeBody(r, &m); err != nil {
		s.replyLocked(w, http.StatusBadRequest, nil, "Request body must be a JSON object")
		return
	}
	get := func(k string) string { v, _ := m[k].(string); return strings.TrimSpace(v) }
	var bad []string
	name := get("AccountName")
	if !accNameRE.MatchString(name) {
		bad = append(bad, "AccountName is required (1-100 characters)")
	}
	var connector, cloudID string
	switch cloud := r.PathValue("cloud"); cloud {
	case "aws":
		connector, cloudID = "AWS", get("AWSAccountId")
		if !awsIDRE.MatchString(cloudID) {
			bad = append(bad, "AWSAccountId must be a 12-digit AWS account id")
		}
		if !roleRE.MatchString(get("AWSRoleName")) {
			bad = append(bad, "AWSRoleName is required (an IAM role name)")
		}
	case "azure":
		connector, cloudID = "Azure", strings.ToLower(get("SubscriptionId"))
		if !domainRE.MatchString(get("DomainName")) {
			bad = append(bad, "DomainName is required (a domain name)")
		}
		for _, k := range []string{"TenantId", "ADApplicationClientId", "SubscriptionId"} {
			if !uuidRE.MatchString(get(k)) {
				bad = append(bad, k+" must be a GUID")
			}
		}
		if get("ADApplicationClientSecret") == "" {
			bad = append(bad, "ADApplicationClientSecret is required")
		}
	default:
		s.replyLocked(w, http.StatusNotFound, nil, "Unknown cloud type "+cloud+" (want aws or azure)")
		return
	}
	if len(bad) > 0 {
		s.replyLocked(w, http.StatusBadRequest, nil, "Validation failed: "+strings.Join(bad, "; "))
		return
	}
	for _, a := range lic.accounts {
		switch {
		case a.Name == name:
			s.counters.Conflicts++
			s.replyLocked(w, http.StatusConflict, nil, fmt.Sprintf("Account with name %s already exists", name))
			return
		case a.Connector == connector && strings.EqualFold(a.CloudID, cloudID):
			s.counters.Conflicts++
			s.replyLocked(w, http.StatusConflict, nil, fmt.Sprintf("Cloud account %s is already onboarded as %s", cloudID, a.Name))
			return
		}
	}
	a := &Account{ID: fault.UUID(), Name: name, Connector: connector, CloudID: cloudID}
	lic.accounts = append(lic.accounts, a)
	j := &Job{ID: fault.UUID(), AccountID: a.ID, Kind: "onboarding", Start: s.opts.Now()}
	s.jobs[j.ID] = j
	s.counters.Onboarded++
	s.replyLocked(w, http.StatusOK, map[string]any{"accountId": a.ID, "jobId": j.ID}, "Request Successful")
}

func inScope(a *Account, app string) bool {
	for _, x := range a.Scope {
		if x == app {
			return true
		}
	}
	return false
}

func (s *Server) list(w http.ResponseWriter, _ *http.Request, t token, lic *license) {
	out := []map[string]any{}
	for _, a := range lic.accounts {
		out = append(out, map[string]any{"accountId": a.ID, "accountName": a.Name, "isInApiScope": inScope(a, t.app), "connectorType": a.Connector})
	}
	s.replyLocked(w, http.StatusOK, map[string]any{"accounts": out}, "Request Successful")
}

func (s *Server) scope(w http.ResponseWriter, r *http.Request, t token, lic *license) {
	var req struct {
		AccountID string `json:"accountId"`
	}
	if err := decodeBody(r, &req); err != nil || req.AccountID == "" {
		s.replyLocked(w, http.StatusBadRequest, nil, "Request body must be a JSON object with accountId")
		return
	}
	a := lic.find(req.AccountID)
	if a == nil {
		s.replyLocked(w, http.StatusNotFound, nil, "Account not found")
		return
	}
	if !inScope(a, t.app) {
		a.Scope = append(a.Scope, t.app)
		s.counters.ScopeAdds++
	}
	s.replyLocked(w, http.StatusOK, map[string]any{"accountId": a.ID, "isInApiScope": true}, "Request Successful")
}

func (s *Server) rescan(w http.ResponseWriter, r *http.Request, t token, lic *license) {
	a := lic.find(r.PathValue("acc"))
	if a == nil {
		s.replyLocked(w, http.StatusNotFound, nil, "Account not found")
		return
	}
	if !inScope(a, t.app) {
		s.replyLocked(w, http.StatusForbidden, nil, "Account is not in the API application's scope")
		return
	}
	a.Rescans++
	s.counters.Rescans++
	j := &Job{ID: fault.UUID(), AccountID: a.ID, Kind: "rescan", Start: s.opts.Now(), Fail: s.opts.FailRescans}
	s.jobs[j.ID] = j
	s.replyLocked(w, http.StatusOK, map[string]any{"jobId": j.ID}, "Request Successful")
}

func (s *Server) status(j *Job) string {
	switch e := s.opts.Now().Sub(j.Start); {
	case e < s.opts.JobDelay/2:
		return "Pending"
	case e < s.opts.JobDelay:
		return "Running"
	case j.Fail:
		return "Failed"
	}
	return "Success"
}

func (s *Server) jobStatus(w http.ResponseWriter, r *http.Request, _ token, lic *license) {
	j, ok := s.jobs[r.PathValue("job")]
	if !ok || j.AccountID != r.PathValue("acc") || lic.find(j.AccountID) == nil {
		s.replyLocked(w, http.StatusNotFound, nil, "Job not found")
		return
	}
	s.replyLocked(w, http.StatusOK, map[string]any{"jobId": j.ID, "jobStatus": s.status(j)}, "Request Successful")
}

// Snapshot returns a deep copy of the accounts and jobs, and the counters.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Snapshot{Accounts: map[string][]Account{}, Counters: s.counters}
	for id, l := range s.licenses {
		for _, a := range l.accounts {
			c := *a
			c.Scope = append([]string(nil), a.Scope...)
			out.Accounts[id] = append(out.Accounts[id], c)
		}
	}
	for _, j := range s.jobs {
		out.Jobs = append(out.Jobs, *j)
	}
	sort.Slice(out.Jobs, func(i, k int) bool { return out.Jobs[i].Start.Before(out.Jobs[k].Start) })
	return out
}

// JobStatus returns a job's current status ("" if unknown).
func (s *Server) JobStatus(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.jobs[id]; ok {
		return s.status(j)
	}
	return ""
}

// Duplicates lists account names onboarded more than once in a license, as
// "license/name (count)".
func (s *Server) Duplicates() []string {
	t := fault.Tally{}
	for lic, accs := range s.Snapshot().Accounts {
		for _, a := range accs {
			t.Add(lic + "/" + a.Name)
		}
	}
	return t.Duplicates()
}

// Check reports duplicate accounts (by name); nil means none.
func (s *Server) Check() error { return fault.DuplicatesError("duplicate accounts", s.Duplicates()) }

// Report summarises the fake for the sandbox report.
func (s *Server) Report() any {
	snap := s.Snapshot()
	n, scoped := 0, 0
	for _, accs := range snap.Accounts {
		for _, a := range accs {
			n++
			if len(a.Scope) > 0 {
				scoped++
			}
		}
	}
	dups := s.Duplicates()
	return map[string]any{"accounts": n, "in_api_scope": scoped, "jobs": len(snap.Jobs), "duplicates": dups, "counters": snap.Counters}
}
