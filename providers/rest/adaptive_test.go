package rest

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"provision/plan"
	"provision/providers"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) add(d time.Duration)     { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)} }
func (a *adaptive) allow(t time.Time) bool   { return !a.limited || a.lim.AllowN(t, 1) }
func near(got, want, tol float64) bool       { return math.Abs(got-want) <= tol }
func (a *adaptive) current() (bool, float64) { s := a.stats(); return s.Limited, s.Rate }

func TestAdaptive_UnlimitedUntilFirstThrottle(t *testing.T) {
	clk := newFakeClock()
	a := newAdaptive("cloud", 0, 0, clk.now)
	// 100 answers per second for three seconds: nothing limits the endpoint.
	for i := 0; i < 300; i++ {
		a.observe(a.sent(), false)
		clk.add(10 * time.Millisecond)
	}
	if limited, _ := a.current(); limited {
		t.Fatal("limited before any throttled answer")
	}
	if err := a.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The first 429 cuts to Beta times the rate measured over the last second.
	a.observe(a.sent(), true)
	limited, r := a.current()
	if !limited || !near(r, Beta*100, 2) {
		t.Fatalf("after the first throttle: limited=%v rate=%.2f, want %.0f", limited, r, Beta*100)
	}
}

func TestAdaptive_OneCutPerBurstOfThrottles(t *testing.T) {
	clk := newFakeClock()
	a := newAdaptive("cloud", 40, 0, clk.now)
	var sent []time.Time
	for i := 0; i < 8; i++ {
		sent = append(sent, a.sent())
		clk.add(time.Millisecond)
	}
	// Eight requests in flight all come back 429: one cut.
	for _, s := range sent {
		a.observe(s, true)
	}
	if _, r := a.current(); !near(r, 40*Beta, 1e-9) {
		t.Fatalf("rate = %v after one burst, want %v", r, 40*Beta)
	}
	// Throttled again with nothing through since the cut: the same episode.
	clk.add(time.Second)
	a.observe(a.sent(), true)
	if _, r := a.current(); !near(r, 40*Beta, 1e-9) {
		t.Fatalf("rate = %v after a refusal in the same episode, want %v", r, 40*Beta)
	}
	// An answer gets through, then a new refusal: a new episode, a second cut.
	clk.add(time.Second)
	a.observe(a.sent(), false)
	a.observe(a.sent(), true)
	if _, r := a.current(); !near(r, 40*Beta*Beta, 1e-9) {
		t.Fatalf("rate = %v after a second throttle, want %v", r, 40*Beta*Beta)
	}
	if s := a.stats(); s.Throttled != 10 || s.Cuts != 2 || s.Requests != 11 {
		t.Fatalf("stats = %+v, want 11 requests, 10 throttled, 2 decreases", s)
	}
}

func TestAdaptive_AdditiveIncreaseOnlyWhileTheLimiterBinds(t *testing.T) {
	clk := newFakeClock()
	a := newAdaptive("cloud", 0, 0, clk.now)
	for i := 0; i < 50; i++ {
		a.observe(a.sent(), false)
		clk.add(20 * time.Millisecond)
	}
	a.observe(a.sent(), true) // cut to about 40/s, then a slow start
	clk.add(time.Second)
	a.observe(a.sent(), false)
	a.observe(a.sent(), true) // the second cut: to 32/s, then additive increase
	_, start := a.current()
	step := math.Max(MinStep, StepShare*start/Beta)

	// Demand far above the limit for 10 s: every token is used at once, so each
	// answer is evidence the endpoint may go faster. About step per second.
	for end := clk.now().Add(10 * time.Second); clk.now().Before(end); clk.add(time.Millisecond) {
		for a.allow(clk.now()) {
			a.observe(a.sent(), false)
		}
	}
	_, r := a.current()
	if want := start + 10*step; !near(r, want, 0.15*10*step) {
		t.Fatalf("after 10 s of demand: rate %.2f, want about %.2f (start %.2f, step %.2f/s)", r, want, start, step)
	}

	// Demand at half the limit: tokens stay in the bucket, the rate does not move.
	before := r
	gap := time.Duration(float64(time.Second) / (r / 2))
	for i := 0; i < 200; i++ {
		clk.add(gap)
		if a.allow(clk.now()) {
			a.observe(a.sent(), false)
		}
	}
	if _, r := a.current(); r != before {
		t.Fatalf("rate moved from %.2f to %.2f while the limiter was not binding", before, r)
	}
}

func TestAdaptive_SlowStartAfterTheFirstCut(t *testing.T) {
	clk := newFakeClock()
	a := newAdaptive("cloud", 0, 0, clk.now)
	// The first request of the run is refused: the history says 1 request/s.
	a.observe(a.sent(), true)
	if _, r := a.current(); r != Beta*1 {
		t.Fatalf("rate %v after a refused first request, want %v", r, Beta*1)
	}
	// With demand, the rate about doubles every second until the next refusal.
	for end := clk.now().Add(5 * time.Second); clk.now().Before(end); clk.add(time.Millisecond) {
		for a.allow(clk.now()) {
			a.observe(a.sent(), false)
		}
	}
	if _, r := a.current(); r < 18 || r > 48 {
		t.Fatalf("rate %.1f after 5 s of slow start from %v, want about %v", r, Beta, Beta*32)
	}
}

func TestAdaptive_PlanRateIsACeiling(t *testing.T) {
	clk := newFakeClock()
	a := newAdaptive("cloud", 20, 0, clk.now)
	if limited, r := a.current(); !limited || r != 20 {
		t.Fatalf("start: limited=%v rate=%v, want the ceiling 20", limited, r)
	}
	for end := clk.now().Add(30 * time.Second); clk.now().Before(end); clk.add(time.Millisecond) {
		for a.allow(clk.now()) {
			a.observe(a.sent(), false)
		}
	}
	if _, r := a.current(); r != 20 {
		t.Fatalf("rate %.2f after 30 s of demand, want the ceiling 20", r)
	}
	// Cuts go below the ceiling, the climb back stops at it.
	a.observe(a.sent(), true)
	if _, r := a.current(); r != 20*Beta {
		t.Fatalf("rate %.2f after a throttle, want %v", r, 20*Beta)
	}
	for end := clk.now().Add(60 * time.Second); clk.now().Before(end); clk.add(time.Millisecond) {
		for a.allow(clk.now()) {
			a.observe(a.sent(), false)
		}
	}
	if _, r := a.current(); r != 20 {
		t.Fatalf("rate %.2f after the climb, want the ceiling 20", r)
	}
}

func TestAdaptive_CutsNeverGoBelowTheFloor(t *testing.T) {
	clk := newFakeClock()
	a := newAdaptive("cloud", 2, 0, clk.now)
	for i := 0; i < 50; i++ {
		clk.add(time.Second)
		a.observe(a.sent(), false)
		a.observe(a.sent(), true)
	}
	if _, r := a.current(); r != MinRate {
		t.Fatalf("rate %v after 50 cuts, want the floor %v", r, MinRate)
	}
}

// TestAdaptive_FindsAServerLimit runs the controller against a simulated server with
// a token bucket of 50 requests/s (burst 50) that answers 429 + Retry-After: 1 over
// it, on a fake clock, with a client that always has work: the endpoint's shared
// pause holds every request for the Retry-After. The client must settle near the
// server's limit, get most of it, and be refused rarely.
func TestAdaptive_FindsAServerLimit(t *testing.T) {
	clk := newFakeClock()
	a := newAdaptive("cloud", 0, 0, clk.now)
	server := rate.NewLimiter(50, 50)
	server.AllowN(clk.now(), 0)
	var ok, refused int
	var pauseUntil time.Time
	const simulated = 120 * time.Second
	for end := clk.now().Add(simulated); clk.now().Before(end); clk.add(time.Millisecond) {
		if clk.now().Before(pauseUntil) {
			continue
		}
		// Unlimited, the client sends as fast as its 16 workers go: 16 per ms.
		for n := 0; n < 16 && a.allow(clk.now()); n++ {
			at := a.sent()
			if server.AllowN(clk.now(), 1) {
				ok++
				a.observe(at, false)
				continue
			}
			refused++
			a.observe(at, true)
			pauseUntil = clk.now().Add(time.Second)
			break
		}
	}
	goodput := float64(ok) / simulated.Seconds() / 50
	share := float64(refused) / float64(ok+refused)
	_, r := a.current()
	t.Logf("goodput %.1f%% of the limit, %d of %d refused (%.2f%%), settled at %.1f/s", 100*goodput, refused, ok+refused, 100*share, r)
	if goodput < 0.9 {
		t.Errorf("goodput %.1f%% of the server's limit, want >= 90%%", 100*goodput)
	}
	if share > 0.05 {
		t.Errorf("%.2f%% of requests refused, want <= 5%%", 100*share)
	}
	if r < 35 || r > 75 {
		t.Errorf("settled at %.1f/s, want near the server's 50/s", r)
	}
}

func TestClient_Do_AdaptsToThrottlingAndReportsIt(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every third request is refused (inference: a DRF-style 429 with
		// Retry-After, API-NOTES section 6 "Rate limits").
		if n.Add(1)%3 == 0 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"detail": "Request was throttled. Expected available in 1 second."}`))
			return
		}
		if r.URL.Path == "/busy" {
			// A 503 with Retry-After counts as throttled; without it, it is a failure.
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c, err := New(Config{Name: "cloud", BaseURL: srv.URL, Limits: plan.Limits{RatePerSecond: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMeters()
	ctx := WithMeters(context.Background(), m)
	var throttled int
	for i := 0; i < 6; i++ {
		_, err := c.Do(ctx, &Request{Method: http.MethodGet, Path: "/x"})
		if err != nil {
			if !providers.IsThrottled(err) || !providers.IsRetryable(err) {
				t.Fatalf("429: %v, want throttled and retryable", err)
			}
			throttled++
		}
	}
	_, err = c.Do(ctx, &Request{Method: http.MethodGet, Path: "/busy"})
	if !providers.IsThrottled(err) { // the 7th request: not one of every third
		t.Fatalf("503 with Retry-After: %v, want throttled", err)
	}
	st := m.Stats()
	if len(st) != 1 || st[0].Endpoint != "cloud" || st[0].Requests != 7 || st[0].Throttled != int64(throttled+1) || !st[0].Limited || st[0].Rate >= 1000 || st[0].Ceiling != 1000 {
		t.Fatalf("stats = %+v (throttled %d + the 503)", st, throttled)
	}
}

// jumpClock is a RateClock whose Until jumps to the time asked for and records it.
type jumpClock struct {
	t     time.Time
	until []time.Time
	err   error // returned by Until instead of jumping
}

func (c *jumpClock) Now() time.Time { return c.t }
func (c *jumpClock) Until(_ context.Context, t time.Time) error {
	if c.err != nil {
		return c.err
	}
	c.until = append(c.until, t)
	if t.After(c.t) {
		c.t = t
	}
	return nil
}

func TestAdaptive_PacesOnTheContextsRateClock(t *testing.T) {
	wall := newFakeClock()
	a := newAdaptive("cloud", 2, 1, wall.now) // 2 requests per second, burst 1
	clk := &jumpClock{t: wall.t}
	ctx := WithRateClock(context.Background(), clk)
	for i := 0; i < 5; i++ {
		if err := a.wait(ctx); err != nil {
			t.Fatal(err)
		}
		a.observe(a.sent(), false)
	}
	// The first request goes at once (the burst); each next one waits 500 ms on clk.
	if len(clk.until) != 4 {
		t.Fatalf("waited %d times on the rate clock, want 4 (%v)", len(clk.until), clk.until)
	}
	for i, u := range clk.until {
		if want := wall.t.Add(time.Duration(i+1) * 500 * time.Millisecond); !u.Equal(want) {
			t.Errorf("wait %d until %v, want %v", i, u, want)
		}
	}
	// Once moved onto clk, the client reads it even for a context without it.
	if got := a.now(); !got.Equal(clk.t) {
		t.Errorf("client clock %v, want the rate clock's %v", got, clk.t)
	}
	// A wait that fails returns the error and gives its reservation back: the next
	// request waits only its own interval.
	clk.err = context.Canceled
	if err := a.wait(ctx); err != context.Canceled {
		t.Fatalf("wait = %v, want context.Canceled", err)
	}
	clk.err = nil
	before := clk.t
	if err := a.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := clk.t.Sub(before); got != 500*time.Millisecond {
		t.Errorf("the wait after a cancelled one took %v on the clock, want 500ms", got)
	}
}
