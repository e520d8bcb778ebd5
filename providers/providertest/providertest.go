// Package providertest is the contract suite every provider runs against its fake
// server, in the manner of litestream's one test suite run against every replica
// client (replica_client_test.go RunWithReplicaClient): a provider's tests describe
// themselves once, as a Target, and Run checks the whole contract with the real
// runner, a real state file (bbolt, in t.TempDir) and the fake's own state:
//
//   - CleanApply: a clean apply reaches done, and the fake holds what the plan asks
//     for (Fake.Check: no duplicate, no orphan, nothing missing).
//   - Rerun: a rerun of the done plan sends no request; a rerun with the state file
//     lost reaches done with no duplicate (the provider finds what exists, by a
//     lookup or by the API's "already exists"; the test log counts its writes).
//   - LostAnswer/<route>: for EACH create route, the answer to its first request is
//     lost after the server applied it; the run still reaches done, with no
//     duplicate and no orphan.
//   - KillBetweenIntentAndResult/<route>: for EACH create route, the create takes
//     effect and the run is stopped while its answer is awaited (the attempt is
//     cancelled, its record stays "started", as a killed process leaves it); a
//     fresh run reconciles with no duplicate and no orphan.
//   - ProbeMakesNoWrite: every Prober, before and after the apply, writes nothing.
//   - NoSecretLeaks: under faults, no secret canary (Target.Secrets, the state key)
//     appears in any log line, error, result or the state file.
//   - ThrottleStorm: with the fake's server-side rate limit on (a 429 storm: its
//     bucket on a clock that moves per request, so about a third of the requests
//     after the burst are throttled, on any machine), no task fails.
//   - Destroy: after a clean apply, a destroy through the runner (one delete task
//     per record, dependents first, intent before each delete, as cmd/provision's
//     destroy) deletes every task's object: the fake's Snapshot equals that of a
//     fresh fake on which only what must stay was applied (nothing, unless the
//     Target declares CannotDelete sections: their deletes must fail with
//     providers.ErrCannotDelete, and they and what they depend on stay). A second
//     destroy sends no write.
//   - Destroy/LostAnswer/<route>: for EACH delete route, the answer to its first
//     request is lost after the server applied it; the destroy still ends the same.
//   - Destroy/KillBetweenIntentAndResult/<route>: for EACH delete route, the destroy
//     is stopped while a delete's answer is awaited (its record stays "started");
//     a fresh destroy, in doubt for that task, ends the same.
//   - Destroy/AfterKilledCreate/<route>: for EACH create route, the apply is
//     stopped while the create's answer is awaited, then the plan is destroyed:
//     the in-doubt object is found and deleted too; nothing is left but what was
//     there before and what must stay.
//
// Wiring a provider takes one test function in its package (every provider has one:
// contract_test.go). OpenvCloud's reads about as below (the plan text and the route
// list are the provider's own):
//
//	func TestOpenvCloud_Contract(t *testing.T) {
//		providertest.Run(t, providertest.Target{
//			Kinds:   openvcloud.Kinds(),
//			Secrets: map[string]string{"OVC_CLIENT_SECRET": "canary-ovc-secret-1"},
//			Creates: []providertest.Route{{Method: "POST", Path: "/cloudapi/cloudspaces/create"}},
//			Auth:    []providertest.Route{{Method: "POST", Path: "/v1/oauth/access_token"}},
//			Reads: []providertest.Route{{Path: "/cloudspaces/list"}, {Path: "/cloudspaces/get"},
//				{Path: "/accounts/list"}, {Path: "/system/task/get"}},
//			New: func(t *testing.T) *providertest.Fake {
//				f := ovcfake.New(ovcfake.Options{})
//				f.AddApp("contract", "canary-ovc-secret-1")
//				return &providertest.Fake{
//					Handler:  f,
//					Injector: f.Faults,
//					Plan:     func(base string) string { return fmt.Sprintf(ovcPlan, base) },
//					Check:    f.Check,
//				}
//			},
//		})
//	}
//
// What each field must hold:
//
//   - Kinds: every kind the plan uses (the plan may only use their sections, and
//     endpoints of the kinds they declare: providers.EndpointDeclarer).
//   - Secrets: the environment the plan's ${env.NAME} references resolve from; the
//     fake must accept these values as the credentials.
//   - Creates: every non-idempotent create the provider sends (method and a path
//     substring); CleanApply fails when the plan never sends one of them, so the
//     plan must exercise all.
//   - Auth and Reads: token and session routes, and routes that read with a POST,
//     so that they are not counted as writes (GET and HEAD never are).
//   - New: a fresh fake per check. Fake.Plan gets the URL the suite serves the fake
//     at (endpoint url: in the plan); Fake.ServerURL maps per-item server URLs when
//     the provider has them; Fake.Check returns the fake's own verdict (duplicates,
//     orphans, missing objects), read from its state, never from the client's.
//   - Fake.Injector: the fake's fault.Injector; set its throttle answer to the
//     vendor's shape (SetThrottle) so that ThrottleStorm meets the real 429 body.
//   - Deletes: every route the Removers send; CannotDelete: the sections the
//     vendor API cannot delete (say why in the provider's docs); Fake.Snapshot:
//     the fake's objects by natural key.
//   - Fake.Settle: for a fake that accepts work it does later (OpenvCloud's _async
//     calls), finishes it between a killed run and the next, as the time before
//     an operator runs again does.
//
// The plan must reference its secrets as ${env.NAME} with the names of
// Target.Secrets, and should make every create route of the provider happen (so that
// each lost answer is tried). Run serves Fake.Handler behind its own recorder, which
// counts requests and writes and loses answers; the fake need not script failures.
// Fake.Injector carries the rate limit of ThrottleStorm (its answers should be in
// the vendor's shape: fault.Injector.SetThrottle).
package providertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/providers/fault"
	"provision/providers/rest"
	"provision/runner"
	"provision/state"
)

// Route matches requests: Method ("" matches any) and Path, a substring of the
// request path (e.g. "/cdb/systems/bind").
type Route struct {
	Method, Path string
}

func (r Route) String() string {
	m := r.Method
	if m == "" {
		m = "*"
	}
	return m + " " + r.Path
}

func (r Route) matches(req *http.Request) bool {
	return (r.Method == "" || strings.EqualFold(r.Method, req.Method)) && strings.Contains(req.URL.Path, r.Path)
}

// Target describes one provider for Run.
type Target struct {
	// Kinds are the provider's kinds (the plan sections it builds).
	Kinds []providers.Kind
	// New starts a fresh fake; Run calls it once per check.
	New func(t *testing.T) *Fake
	// Creates are the provider's non-idempotent create routes: a lost answer on
	// each must be adopted without a duplicate or an orphan.
	Creates []Route
	// Auth are the routes that fetch tokens or sessions (POSTs that change
	// nothing the plan describes): they do not count as writes.
	Auth []Route
	// Reads are routes that only read whatever their method (OpenvCloud sends
	// every call as a POST: .../cloudspaces/list, .../system/task/get): they do
	// not count as writes either.
	Reads []Route
	// Secrets are the plan's ${env.NAME} values; every value is a canary that must
	// never leak.
	Secrets map[string]string
	// StateKey encrypts secret outputs in the state file (default: a fixed test key).
	StateKey string
	// Deletes are the routes the provider's Removers send (method and a path
	// substring): the destroy checks lose an answer on each and kill a destroy
	// while each is in flight.
	Deletes []Route
	// CannotDelete are the plan sections whose objects the vendor API offers no
	// way to delete: their deletes must fail with providers.ErrCannotDelete (or be
	// skipped because a dependent stays), and they and what they depend on stay.
	// Every other kind must be a providers.Remover.
	CannotDelete []string
	// RateLimit and RateBurst are the server-side limit of ThrottleStorm (defaults
	// 20 requests/s, bucket 2).
	RateLimit float64
	RateBurst int
}

// Fake is one running fake of a provider.
type Fake struct {
	// Handler serves the vendor API (and per-item servers, if any).
	Handler http.Handler
	// Plan returns the plan text for the fake served at base (an http:// URL).
	Plan func(base string) string
	// Files are extra files written beside the plan (CSV sources), by name.
	Files map[string]string
	// ServerURL, when set, maps per-item server URLs (Nx servers) to the fake
	// served at base, like the sandbox does.
	ServerURL func(base, url string) string
	// Injector is the fake's fault switches (required); NoSecretLeaks switches its
	// faults on, ThrottleStorm its rate limit.
	Injector *fault.Injector
	// Check reads the fake's own state and returns an error naming every
	// duplicate, orphan or missing object.
	Check func() error
	// Settle, when set, lets what the fake accepted before a kill take effect (an
	// _async call still queued on the server), as the time an operator takes to
	// run again does: the kill checks call it between the killed run and the next.
	Settle func()
	// Snapshot lists the fake's objects (at least those a destroy can remove),
	// read from its state, one sorted line each by natural key (names, never
	// generated ids), so that two fakes with the same objects give the same lines.
	Snapshot func() []string
}

// recorder fronts a fake: it counts requests and writes and loses answers on demand.
type recorder struct {
	h    http.Handler
	auth []Route

	mu       sync.Mutex
	requests []string
	writes   []string
	lose     *Route
	lost     int
	// hang, when set, makes the next applied request on its route wait for the
	// client to go away instead of answering (a process killed while it waits);
	// hung is closed when that request has been applied.
	hang *Route
	hung chan struct{}
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	line := r.Method + " " + r.URL.Path
	rc.mu.Lock()
	rc.requests = append(rc.requests, line)
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !rc.isAuth(r) {
		rc.writes = append(rc.writes, line)
	}
	lose := rc.lose != nil && rc.lose.matches(r)
	if lose {
		rc.lose = nil
		rc.lost++
	}
	hang := !lose && rc.hang != nil && rc.hang.matches(r)
	var hung chan struct{}
	if hang {
		rc.hang, hung = nil, rc.hung
	}
	rc.mu.Unlock()
	if !lose && !hang {
		rc.h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	rc.h.ServeHTTP(rec, r) // applied ...
	if rec.Code >= 500 || rec.Code == http.StatusTooManyRequests {
		// Not applied after all (a fault of the fake's own, or its rate limit):
		// send the answer and lose (or hang) the next one instead. Other answers
		// (an "already exists" or "already gone") are lost like a success.
		rc.mu.Lock()
		route := routeOf(r)
		if hang {
			rc.hang = &route
		} else {
			rc.lose, rc.lost = &route, rc.lost-1
		}
		rc.mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	if hang {
		// ... and the process that sent it dies before the answer: the run is
		// stopped (hung tells the test) and its request cancelled.
		close(hung)
		<-r.Context().Done()
		return
	}
	fault.HangUp(w) // ... and the answer is lost
}

func routeOf(r *http.Request) Route { return Route{Method: r.Method, Path: r.URL.Path} }

func (rc *recorder) isAuth(r *http.Request) bool {
	for _, a := range rc.auth {
		if a.matches(r) {
			return true
		}
	}
	return false
}

// loseNext loses the answer of the next applied request on route.
func (rc *recorder) loseNext(r Route) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.lose, rc.lost = &r, 0
}

// hangNext makes the next applied request on r wait for its client to give up;
// the returned channel is closed once the request has been applied.
func (rc *recorder) hangNext(r Route) <-chan struct{} {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.hang, rc.hung = &r, make(chan struct{})
	return rc.hung
}

func (rc *recorder) counts() (requests, writes []string, lost int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.requests...), append([]string(nil), rc.writes...), rc.lost
}

func (rc *recorder) reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests, rc.writes = nil, nil
}

// env is one fake served behind a recorder, a plan for it and a state file.
type env struct {
	t      *testing.T
	target *Target
	fake   *Fake
	rec    *recorder
	ts     *httptest.Server
	dir    string
	state  string
	logs   *syncBuffer
	// maxRetryAfter, when set, becomes every endpoint's limits.max_retry_after: the
	// cap on the pause a 429's Retry-After imposes on the endpoint's client.
	maxRetryAfter time.Duration
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T, tg *Target) *env {
	t.Helper()
	f := tg.New(t)
	rc := &recorder{h: f.Handler, auth: append(append([]Route(nil), tg.Auth...), tg.Reads...)}
	ts := httptest.NewServer(rc)
	t.Cleanup(ts.Close)
	e := &env{t: t, target: tg, fake: f, rec: rc, ts: ts, dir: t.TempDir(), logs: &syncBuffer{}}
	e.state = filepath.Join(e.dir, "state.db")
	if err := os.WriteFile(filepath.Join(e.dir, "plan.yaml"), []byte(f.Plan(ts.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, text := range f.Files {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) stateKey() string {
	if e.target.StateKey != "" {
		return e.target.StateKey
	}
	return "providertest-state-key-canary-5521"
}

// build loads the plan and builds its tasks with fresh clients (one process).
func (e *env) build() (*plan.Plan, []*providers.Task) {
	e.t.Helper()
	pl, _, tasks := e.buildAll()
	return pl, tasks
}

// buildAll is build that also returns what the kinds got (endpoints and clients).
func (e *env) buildAll() (*plan.Plan, *providers.Build, []*providers.Task) {
	e.t.Helper()
	var sections []string
	for _, k := range e.target.Kinds {
		sections = append(sections, k.Section())
	}
	pl, err := plan.Load(filepath.Join(e.dir, "plan.yaml"), plan.LoadOptions{Sections: sections, EndpointKinds: providers.NewRegistry(e.target.Kinds...).EndpointKinds(),
		Getenv: func(k string) (string, bool) { v, ok := e.target.Secrets[k]; return v, ok }})
	if err != nil {
		e.t.Fatalf("plan: %v", err)
	}
	if e.maxRetryAfter > 0 {
		for _, ep := range pl.Endpoints {
			ep.Limits.MaxRetryAfter = plan.Duration{Duration: e.maxRetryAfter}
		}
	}
	b := &providers.Build{Plan: pl, Clients: &providers.Clients{}, TLSOverride: &plan.TLS{}}
	if e.fake.ServerURL != nil {
		b.ServerURL = func(u string) string { return e.fake.ServerURL(e.ts.URL, u) }
	}
	var tasks []*providers.Task
	var errs []error
	for _, it := range pl.Items {
		for _, k := range e.target.Kinds {
			if k.Section() != it.Section {
				continue
			}
			ts, err := k.Build(b, it)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			tasks = append(tasks, ts...)
		}
	}
	if err := errors.Join(errs...); err != nil {
		e.t.Fatalf("build: %v", err)
	}
	return pl, b, tasks
}

// run applies the plan with the real runner against the env's state file and
// checks what it wrote for canaries.
func (e *env) run(maxAttempts int) *runner.Result {
	e.t.Helper()
	_, tasks := e.build()
	return e.runTasks(context.Background(), tasks, maxAttempts)
}

// runTasks runs tasks (a plan's, or deletes) with the real runner against the env's
// state file; a cancelled ctx stops the run as a signal does, with a short grace.
func (e *env) runTasks(ctx context.Context, tasks []*providers.Task, maxAttempts int) *runner.Result {
	e.t.Helper()
	pl, _ := e.build()
	g, err := runner.NewGraph(tasks)
	if err != nil {
		e.t.Fatal(err)
	}
	// The passphrase is derived at the lowest count the store accepts (the file
	// records it, later opens use it): a canary check needs no 210,000 rounds.
	st, err := state.Open(e.state, state.Options{PlanName: pl.Name, Key: e.stateKey(), KDFIterations: state.MinKDFIterations})
	if err != nil {
		e.t.Fatal(err)
	}
	log := zerolog.New(e.logs).Level(zerolog.DebugLevel)
	grace := time.Minute
	if ctx.Done() != nil {
		grace = 10 * time.Millisecond
	}
	res, err := runner.Run(log.WithContext(ctx), g, st, runner.Options{Parallel: 8, MaxAttempts: maxAttempts,
		BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond, Grace: grace, Log: log, Redactor: pl.Redactor})
	if cerr := st.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.noCanary(fmt.Sprintf("%+v", res), "the run's result")
	return res
}

// noCanary fails the test if text holds a secret canary.
func (e *env) noCanary(text, where string) {
	e.t.Helper()
	canaries := []string{e.stateKey()}
	for _, v := range e.target.Secrets {
		canaries = append(canaries, v)
	}
	for _, c := range canaries {
		if c != "" && strings.Contains(text, c) {
			e.t.Fatalf("a secret canary appears in %s", where)
		}
	}
}

// checkLeaks checks the logs and the state file for canaries.
func (e *env) checkLeaks() {
	e.t.Helper()
	e.noCanary(e.logs.String(), "the logs")
	if b, err := os.ReadFile(e.state); err == nil {
		e.noCanary(string(b), "the state file")
	}
}

func (e *env) check(what string) {
	e.t.Helper()
	if err := e.fake.Check(); err != nil {
		e.t.Fatalf("%s: the fake's state: %v", what, err)
	}
}

func mustOK(t *testing.T, res *runner.Result, what string) {
	t.Helper()
	if !res.OK() {
		t.Fatalf("%s: not every task is done: %+v", what, res)
	}
}

// Run checks the contract for one provider (see the package doc).
func Run(t *testing.T, target Target) {
	tg := &target
	t.Helper()
	if tg.New == nil || len(tg.Kinds) == 0 || len(tg.Creates) == 0 {
		t.Fatal("providertest: Target needs Kinds, New and Creates (the lost-answer and kill checks run per create route)")
	}
	t.Run("CleanApply", tg.cleanApply)
	t.Run("Rerun", tg.rerun)
	for _, route := range tg.Creates {
		t.Run("LostAnswer/"+strings.ReplaceAll(route.String(), "/", "_"), func(t *testing.T) { tg.lostAnswer(t, route) })
	}
	for _, route := range tg.Creates {
		t.Run("KillBetweenIntentAndResult/"+strings.ReplaceAll(route.String(), "/", "_"), func(t *testing.T) { tg.killBetweenIntentAndResult(t, route) })
	}
	t.Run("ProbeMakesNoWrite", tg.probeMakesNoWrite)
	t.Run("NoSecretLeaks", tg.noSecretLeaks)
	t.Run("ThrottleStorm", tg.throttleStorm)
	runDestroy(t, tg)
}

// cleanApply: a clean apply does every task and uses every create route.
func (tg *Target) cleanApply(t *testing.T) {
	e := newEnv(t, tg)
	res := e.run(3)
	mustOK(t, res, "clean apply")
	if res.Applied != res.Total || res.Total == 0 {
		t.Fatalf("applied %d of %d tasks", res.Applied, res.Total)
	}
	e.check("clean apply")
	_, writes, _ := e.rec.counts()
	for _, c := range tg.Creates {
		if !anyMatch(writes, c) {
			t.Errorf("the plan never uses create route %s: its lost-answer check would prove nothing", c)
		}
	}
	e.checkLeaks()
}

// rerun: a rerun of the done plan sends nothing, and a rerun without the state file duplicates nothing.
func (tg *Target) rerun(t *testing.T) {
	e := newEnv(t, tg)
	mustOK(t, e.run(3), "first run")
	e.rec.reset()
	res := e.run(3)
	mustOK(t, res, "rerun")
	if reqs, _, _ := e.rec.counts(); len(reqs) != 0 || res.UpToDate != res.Total {
		t.Errorf("a rerun of the done plan sent %d requests (%v); %d of %d up to date", len(reqs), reqs, res.UpToDate, res.Total)
	}
	// The state file is lost: the provider finds what exists (by a lookup, or by
	// the API's "already exists" answer) and duplicates nothing.
	if err := os.Remove(e.state); err != nil {
		t.Fatal(err)
	}
	e.rec.reset()
	mustOK(t, e.run(3), "rerun without the state file")
	reqs, writes, _ := e.rec.counts()
	t.Logf("rerun without the state file: %d requests, %d writes %v", len(reqs), len(writes), writes)
	e.check("reruns")
	e.checkLeaks()
}

// lostAnswer: an answer lost on route leaves no duplicate and no orphan.
func (tg *Target) lostAnswer(t *testing.T, route Route) {
	e := newEnv(t, tg)
	e.rec.loseNext(route)
	mustOK(t, e.run(6), "run with a lost answer")
	if _, _, lost := e.rec.counts(); lost != 1 {
		t.Fatalf("no answer on %s was lost (the plan does not reach it)", route)
	}
	e.check("after a lost answer on " + route.String())
	e.checkLeaks()
}

// killBetweenIntentAndResult: a run killed while the create on route waits for its answer
// leaves its record started, and a fresh run finishes without a duplicate.
func (tg *Target) killBetweenIntentAndResult(t *testing.T, route Route) {
	e := newEnv(t, tg)
	// The create takes effect and the process dies before its answer: the
	// run is stopped while the request waits, the attempt is cancelled and
	// its record stays "started", as a killed process leaves it.
	res := e.killedRun(route, func(ctx context.Context) *runner.Result {
		_, tasks := e.build()
		return e.runTasks(ctx, tasks, 1)
	})
	if !res.Interrupted {
		t.Fatalf("the run with a hung create was not interrupted: %+v", res)
	}
	if n := e.started(); n == 0 {
		t.Fatal("no record is left started after the kill")
	}
	e.settle()
	mustOK(t, e.run(6), "fresh run after the kill")
	e.check("after a kill between intent and result on " + route.String())
	e.checkLeaks()
}

// probeMakesNoWrite: probes before and after the apply write nothing.
func (tg *Target) probeMakesNoWrite(t *testing.T) {
	e := newEnv(t, tg)
	probes := e.probe()
	if _, writes, _ := e.rec.counts(); len(writes) != 0 {
		t.Fatalf("probes before the apply wrote: %v", writes)
	}
	mustOK(t, e.run(3), "apply")
	e.rec.reset()
	e.probe()
	t.Logf("%d tasks probed before and after the apply", probes)
	if _, writes, _ := e.rec.counts(); len(writes) != 0 {
		t.Fatalf("probes after the apply wrote: %v", writes)
	}
	e.checkLeaks()
}

// noSecretLeaks: no secret reaches logs, errors or the state under faults.
func (tg *Target) noSecretLeaks(t *testing.T) {
	e := newEnv(t, tg)
	if e.fake.Injector != nil {
		e.fake.Injector.Set(fault.Config{ErrorRate: 0.2, DropRate: 0.1, LostRate: 0.1, Seed: 7})
	}
	e.run(2) // failures expected: their errors are what is checked
	if e.fake.Injector != nil {
		e.fake.Injector.Set(fault.Config{})
	}
	mustOK(t, e.run(12), "the run after the faults")
	e.check("after faults")
	e.checkLeaks()
}

// throttleStorm: a server-side token bucket fails no task and its 429s are read as throttling.
func (tg *Target) throttleStorm(t *testing.T) {
	e := newEnv(t, tg)
	if e.fake.Injector == nil {
		t.Fatal("providertest: Fake.Injector is needed (the fake's server-side rate limit)")
	}
	rate, burst := tg.RateLimit, tg.RateBurst
	if rate <= 0 {
		rate = 20
	}
	if burst <= 0 {
		burst = 2
	}
	e.fake.Injector.Set(fault.Config{RateLimit: rate, RateBurst: burst})
	// The bucket's clock moves per request, not with the wall clock: each request
	// advances it by 0.2 to 1.2 token intervals (a seeded sequence, so not
	// periodic: a fixed step would starve a task whose attempts send two
	// requests). About a third of the requests after the burst are throttled,
	// however fast or slow the machine is.
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	rng := rand.New(rand.NewPCG(42, 7))
	interval := float64(time.Second) / rate
	e.fake.Injector.SetClock(func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Duration((0.2 + rng.Float64()) * interval))
		return now
	})
	defer func() {
		e.fake.Injector.Set(fault.Config{})
		e.fake.Injector.SetClock(time.Now)
	}()
	// The fake answers Retry-After in whole seconds (at least 1, as DRF's
	// throttles do); each would pause the endpoint's client for a real second.
	// The plan's own cap (limits.max_retry_after) keeps that pause to 1 ms:
	// nothing below depends on how long anything waited, and the runner caps a
	// task's wait by BackoffMax (20 ms) anyway. What is checked is that each
	// answer was read as throttling (the wait the server asked for is logged),
	// that it cost no task its run, and the fake's state.
	e.maxRetryAfter = time.Millisecond
	// The endpoint's client then paces itself at the rate it found; it does so on
	// a clock that skips the waits (the controller sees the times a waiting run
	// would), so the storm costs no real seconds at a low found rate.
	clk := rest.NewSkipClock()
	_, tasks := e.build()
	res := e.runTasks(rest.WithRateClock(context.Background(), clk), tasks, 100)
	mustOK(t, res, "run under the server's rate limit")
	if c := e.fake.Injector.Counts(); c.Throttled == 0 {
		t.Errorf("the rate limit never answered 429 (%v): the check proved nothing", c)
	} else {
		t.Logf("rate limit %g/s burst %d: %d answers throttled, %d retries, %d throttled retries, %s (%s of pacing skipped)", rate, burst, c.Throttled, res.Retries, res.Throttled, res.Elapsed.Round(time.Millisecond), clk.Skipped().Round(time.Millisecond))
		if !strings.Contains(e.logs.String(), `"retry_after_asked_ms":1000`) {
			t.Errorf("no log line says the server asked to wait 1 s (Retry-After: 1): the 429s were not read as throttling")
		}
	}
	e.check("after a 429 storm")
	e.checkLeaks()
}

// settle calls Fake.Settle, if any.
func (e *env) settle() {
	if e.fake.Settle != nil {
		e.fake.Settle()
	}
}

func anyMatch(lines []string, r Route) bool {
	for _, l := range lines {
		m, p, _ := strings.Cut(l, " ")
		if (r.Method == "" || strings.EqualFold(m, r.Method)) && strings.Contains(p, r.Path) {
			return true
		}
	}
	return false
}

// killedRun runs run with a context that is cancelled once the next applied
// request on route hangs (see recorder.hangNext), and returns its result.
func (e *env) killedRun(route Route, run func(ctx context.Context) *runner.Result) *runner.Result {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hung := e.rec.hangNext(route)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-hung:
			cancel()
		case <-ctx.Done():
		}
	}()
	res := run(ctx)
	cancel()
	<-done
	select {
	case <-hung:
	default:
		e.t.Fatalf("no request on %s was made (the plan does not reach it)", route)
	}
	return res
}

// openState opens the state file read-only; the caller closes it.
func (e *env) openState() *state.Store {
	e.t.Helper()
	st, err := state.Open(e.state, state.Options{Key: e.stateKey(), ReadOnly: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// readState reads the state file's records and task infos, read-only.
func (e *env) readState() (map[string]*state.Record, map[string]*state.TaskInfo) {
	e.t.Helper()
	st := e.openState()
	defer st.Close()
	recs, err := st.Load()
	if err != nil {
		e.t.Fatal(err)
	}
	infos, err := st.Infos()
	if err != nil {
		e.t.Fatal(err)
	}
	return recs, infos
}

// started counts the records of the state file left "started".
func (e *env) started() int {
	e.t.Helper()
	st := e.openState()
	defer st.Close()
	counts, err := st.Counts()
	if err != nil {
		e.t.Fatal(err)
	}
	return counts[state.Started]
}

// probe calls every Prober with the outputs the state file holds and returns how
// many it called; errors are allowed (outputs may be missing) but must not leak.
func (e *env) probe() int {
	e.t.Helper()
	_, tasks := e.build()
	outs := map[string]state.Outputs{}
	if st, err := state.Open(e.state, state.Options{Key: e.stateKey(), ReadOnly: true}); err == nil {
		recs, lerr := st.Load()
		st.Close()
		if lerr != nil {
			e.t.Fatal(lerr)
		}
		for id, r := range recs {
			outs[id] = r.Outputs
		}
	}
	n := 0
	for _, task := range tasks {
		p, ok := task.Action.(providers.Prober)
		if !ok {
			continue
		}
		n++
		x := &providers.Exec{Task: task, Attempt: 1, Prior: outs[task.ID], Log: zerolog.New(e.logs), Redactor: plan.NewRedactor(),
			Lookup: func(r plan.Ref) (string, error) {
				v, ok := outs[r.Item][r.Key]
				if !ok {
					return "", fmt.Errorf("%s has no output %s yet", r.Item, r.Key)
				}
				return v.Value, nil
			}}
		_, detail, err := p.Probe(context.Background(), x)
		e.noCanary(detail, "a probe's detail")
		if err != nil {
			e.noCanary(err.Error(), "a probe's error")
		}
	}
	return n
}
