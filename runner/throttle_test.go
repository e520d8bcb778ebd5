package runner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
	"provision/state"
)

// stormServer answers 429 with Retry-After: 0 to its first `storm` requests and to
// every request after that while `always` is set; /bad answers 400 (a permanent
// refusal) and /ok 200. The 429 and its Retry-After follow the DRF throttle shape
// (inference: API-NOTES section 6 "Rate limits").
type stormServer struct {
	*httptest.Server
	storm  int64
	always atomic.Bool
	n      atomic.Int64
	mu     sync.Mutex
	hits   map[string]int
}

func newStormServer(t *testing.T, storm int64) *stormServer {
	s := &stormServer{storm: storm, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"detail": "invalid email"}`))
			return
		}
		if s.n.Add(1) <= s.storm || s.always.Load() {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"detail": "Request was throttled. Expected available in 1 second."}`))
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *stormServer) hitsOf(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func call(c *rest.Client, path string) fn {
	return func(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
		_, err := c.Do(ctx, &rest.Request{Method: http.MethodPost, Path: path, JSON: map[string]string{"id": x.Task.ID}})
		return nil, err
	}
}

func TestRunner_Run_ThrottleStormCostsNoAttemptAndPermanent4xxFailsAtOnce(t *testing.T) {
	// 40 refusals for 20 tasks in flight at once: every task is refused at least
	// once, most twice. Each burst of refusals pauses the endpoint for its
	// Retry-After (0: a second; capped below).
	srv := newStormServer(t, 40)
	// A ceiling of 1000/s: the run starts limited there, so the count of refusals
	// does not depend on how few requests had gone out when the first 429 came (the
	// rate controller's own tests cover how it finds a limit).
	// The pause after a burst is capped at 1 ms (max_retry_after): what is checked
	// is what the refusals cost, not how long the endpoint paused.
	c, err := rest.New(rest.Config{Name: "cloud", BaseURL: srv.URL, Limits: plan.Limits{RatePerSecond: 1000, MaxRetryAfter: plan.Duration{Duration: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	var tasks []*providers.Task
	for i := 0; i < 20; i++ {
		tasks = append(tasks, task("share-"+string(rune('a'+i)), nil, call(c, "/ok")))
	}
	tasks = append(tasks, task("bad-email", nil, call(c, "/bad")))
	g := mustGraph(t, tasks...)
	o := opts()
	o.MaxAttempts = 1 // if a 429 cost an attempt, every task would fail
	o.Parallel = 21
	o.ThrottleTimeout = time.Hour
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	m := rest.NewMeters()
	o.Progress = &Progress{}
	res, err := Run(rest.WithMeters(context.Background(), m), g, st, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 20 || res.Failed != 1 || res.Throttled != 40 {
		t.Fatalf("applied %d failed %d throttled retries %d, want 20, 1 and 40; failures %+v", res.Applied, res.Failed, res.Throttled, res.Failures)
	}
	if len(res.Failures) != 1 || res.Failures[0].ID != "bad-email" || res.Failures[0].Attempts != 1 || !strings.Contains(res.Failures[0].Error, "invalid email") {
		t.Fatalf("failures = %+v, want bad-email after 1 attempt with the API's message", res.Failures)
	}
	if h := srv.hitsOf("/bad"); h != 1 {
		t.Fatalf("the permanent 400 was sent %d times, want once", h)
	}
	if res.Retries != 0 {
		t.Fatalf("retries = %d: throttled answers must not count as failed attempts", res.Retries)
	}
	stats := m.Stats()
	if len(stats) != 1 || stats[0].Throttled != 40 || !stats[0].Limited {
		t.Fatalf("endpoint stats = %+v, want the throttles counted and a rate found", stats)
	}
}

func TestRunner_Run_ThrottledTaskFailsAfterItsTimeBudget(t *testing.T) {
	srv := newStormServer(t, 0)
	srv.always.Store(true)
	// Each refusal's 1 s pause is capped at 1 ms: the budget runs on the fake clock below.
	c, err := rest.New(rest.Config{Name: "cloud", BaseURL: srv.URL, Limits: plan.Limits{MaxRetryAfter: plan.Duration{Duration: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	// A fake clock: every reading is a minute later, so the 4-minute budget runs out
	// after exactly three throttled attempts, whatever the machine's speed.
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	o := opts()
	o.MaxAttempts = 1
	o.ThrottleTimeout = 4 * time.Minute
	o.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Minute)
		return now
	}
	g := mustGraph(t, task("share", nil, call(c, "/ok")), task("after", []string{"share"}, ok()))
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	// The endpoint paces at the rate it found (about one request a second after the
	// first refusal) on a clock that skips the waits.
	res, err := Run(rest.WithRateClock(context.Background(), rest.NewSkipClock()), g, st, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 1 || res.Skipped != 1 || res.Throttled != 3 {
		t.Fatalf("failed %d skipped %d throttled %d, want 1, 1 and 3 throttled retries first", res.Failed, res.Skipped, res.Throttled)
	}
	if f := res.Failures[0]; !strings.Contains(f.Error, "still throttled after 4m0s (--throttle-timeout)") || !strings.Contains(f.Error, "429") {
		t.Fatalf("failure = %+v", f)
	}
	if got := srv.hitsOf("/ok"); got != res.Throttled+1 {
		t.Fatalf("server saw %d requests, want %d", got, res.Throttled+1)
	}
}
