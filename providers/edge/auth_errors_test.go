package edge

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/edge/edgefake"
	"provision/providers/fault"
	"provision/providers/rest"
)

func TestAuth_ExpiredTokensAreRenewed(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts edgefake.Options
		// advance moves the clocks between two calls.
		advance                  time.Duration
		wantLogins, wantRefresh  int
		wantFakeLogins, wantFake int
	}{
		{"token still valid", edgefake.Options{}, 10 * time.Minute, 1, 0, 1, 0},
		{"expired, refreshed", edgefake.Options{}, 2 * time.Hour, 1, 1, 1, 1},
		{"expired, refreshed (envelope, 401 in HTTP 200)", edgefake.Options{ErrorsAsOK: true}, 2 * time.Hour, 1, 1, 1, 1},
		{"past the refresh window, logs in again", edgefake.Options{}, 6 * time.Hour, 2, 0, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			tc.opts.Now = clk.Now
			w := newWorld(t, tc.opts)
			w.build(testPlan)
			s := w.session("admin")
			s.now = clk.Now
			w.mustApply("retail-admin")
			clk.Add(tc.advance)
			// The token's expiry is in the fake's future for rest (real clock), so the
			// fake's 401 is what triggers the renewal.
			if _, _, err := w.apply("label-eu", 1, false); err != nil {
				t.Fatal(err)
			}
			logins, refreshes := s.Stats()
			c := w.srv.Snapshot().Counters
			if logins != tc.wantLogins || refreshes != tc.wantRefresh || c.Logins != tc.wantFakeLogins || c.Refreshes != tc.wantFake {
				t.Fatalf("session logins %d refreshes %d, fake logins %d refreshes %d", logins, refreshes, c.Logins, c.Refreshes)
			}
		})
	}
}

// TestAuth_TokensRenewMidRunWithTinyLifetime: tokens of 30 ms (refreshable for
// 150 ms after their login) on the fake's own clock, which moves 40 ms between
// tasks and not at all during one: every task finds its user's token expired
// (a 401), renews it (a refresh, or a new login once the refresh window is over)
// and goes on; however slow the machine, no token expires in the middle of a task.
func TestAuth_TokensRenewMidRunWithTinyLifetime(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	w := newWorld(t, edgefake.Options{TokenLifetime: 30 * time.Millisecond, Now: clock})
	w.build(testPlan)
	for _, id := range []string{"retail-admin", "retail", "retail-operator", "label-eu", "gw-a", "retail-apps", "retail-registry", "people-counter"} {
		mu.Lock()
		now = now.Add(40 * time.Millisecond)
		mu.Unlock()
		if _, _, err := w.apply(id, 1, false); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	c := w.srv.Snapshot().Counters
	if c.Refreshes == 0 {
		t.Fatalf("no refresh: %+v", c)
	}
	t.Logf("%+v", c)
	w.noDuplicates()
}

// remoteError returns err as a *providers.Error.
func remoteError(t *testing.T, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want a *providers.Error", err, err)
	}
	return pe
}

func TestErrors_DocumentedAnswersAreClassified(t *testing.T) {
	type result struct {
		status    int
		code      string
		message   string
		retryable bool
		after     time.Duration
	}
	for _, tc := range []struct {
		name string
		opts edgefake.Options
		run  func(t *testing.T, w *world) error
		want result
	}{
		{"500 internal error is retryable", edgefake.Options{Faults: fault.Config{ErrorRate: 1}},
			func(t *testing.T, w *world) error { _, _, err := w.apply("label-eu", 1, false); return err },
			result{status: 500, code: "internal error", message: "injected internal error", retryable: true}},
		{"429 is retryable after Retry-After", edgefake.Options{Faults: fault.Config{TooManyRate: 1, RetryAfter: 2 * time.Second}},
			func(t *testing.T, w *world) error { _, _, err := w.apply("label-eu", 1, false); return err },
			result{status: 429, code: "too many requests", message: "too many requests", retryable: true, after: 2 * time.Second}},
		{"422 wrong password is permanent", edgefake.Options{AdminPassword: "Another123pw"},
			func(t *testing.T, w *world) error { _, _, err := w.apply("label-eu", 1, false); return err },
			result{status: 422, code: "validation error", message: "wrong user name or password"}},
		{"422 in an HTTP 200 envelope", edgefake.Options{ErrorsAsOK: true, AdminPassword: "Another123pw"},
			func(t *testing.T, w *world) error { _, _, err := w.apply("label-eu", 1, false); return err },
			result{status: 422, code: "validation error", message: "wrong user name or password"}},
		{"403 a general user cannot create a business", edgefake.Options{},
			func(t *testing.T, w *world) error {
				w.srv.SeedUser("retail-admin", retailPW, false, edgefake.Approved)
				_, _, err := w.apply("retail", 1, false)
				return err
			},
			result{status: 403, code: "not allowed", message: "only an approved general administrator creates a business"}},
		{"404 unknown node", edgefake.Options{Envelope: true},
			func(t *testing.T, w *world) error {
				w.build(strings.Replace(testPlan, "nodes: [edge-a1, edge-a2]", "nodes: [edge-a1, edge-zz]", 1))
				_, _, err := w.apply("gw-a", 1, false)
				return err
			},
			result{status: 404, code: "not found", message: "node edge-zz not found in cluster cluster-a"}},
		{"400 project name constraints", edgefake.Options{},
			func(t *testing.T, w *world) error {
				_, err := w.adminConn().CreateProject(t.Context(), "Bad Name", false)
				return err
			},
			result{status: 400, code: "validation error", message: "Unsatisfied with constraints of the project creation."}},
		{"415 wrong media type", edgefake.Options{},
			func(t *testing.T, w *world) error {
				_, _, err := w.adminConn().do(t.Context(), &rest.Request{Method: http.MethodPost, Path: "/v1/repository/project",
					Body: []byte("projectName=x"), ContentType: "application/x-www-form-urlencoded", Op: "create project"})
				return err
			},
			result{status: 415, code: "wrong media type", message: `it has to be "application/json"`}},
		{"422 duplicate registration", edgefake.Options{Envelope: true},
			func(t *testing.T, w *world) error {
				w.srv.SeedUser("taken", "Taken123pw", false, edgefake.Pending)
				_, err := w.adminConn().Register(t.Context(), NewUser{User: "taken", Password: plan.NewSecret("Taken123pw"), Phone: "1", RealName: "x"})
				return err
			},
			result{status: 422, code: "validation error", message: "user already exists"}},
		{"401 after renewal is permanent", edgefake.Options{},
			func(t *testing.T, w *world) error {
				// A token the fake never issued, pinned: renewal cannot help.
				s := w.session("admin")
				s.auth.Fetch = func(context.Context, *rest.Client) (rest.Token, error) {
					return rest.Token{Value: "eyJforged.token.value"}, nil
				}
				_, _, err := w.apply("label-eu", 1, false)
				return err
			},
			result{status: 401, code: "login needed", message: "User need to log in first."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts)
			w.build(testPlan)
			err := tc.run(t, w)
			w.noSecrets(err)
			pe := remoteError(t, err)
			if pe.Status != tc.want.status || pe.Code != tc.want.code || !strings.Contains(pe.Message, tc.want.message) ||
				pe.Retryable != tc.want.retryable || pe.RetryAfter != tc.want.after {
				t.Fatalf("error %q: status %d code %q message %q retryable %v after %v; want %+v",
					err, pe.Status, pe.Code, pe.Message, pe.Retryable, pe.RetryAfter, tc.want)
			}
		})
	}
}

func TestErrors_LostAnswerOfCreateIsMaybeApplied(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	w.build(testPlan)
	w.mustApply("retail-admin", "retail", "retail-registry")
	// The lookup after the lost answer fails too (every call to /v1/app is lost):
	// the error must say the create may have taken effect.
	f := func(r *http.Request) bool { return r.URL.Path == "/v1/app" && r.Method == http.MethodPost }
	w.lose.Store(&f)
	_, _, err := w.apply("people-counter", 1, false)
	if err == nil {
		// The lookup adopted the created application: that is fine too.
		return
	}
	if !providers.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
}
