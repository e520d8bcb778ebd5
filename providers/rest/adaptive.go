package rest

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// The adaptive rate of an endpoint. Vendors do not publish their limits, so each
// endpoint finds its own with additive increase, multiplicative decrease (AIMD), as
// TCP does and as the AWS SDKs' "adaptive" retry mode does with its client rate
// limiter:
//
//   - Until the first throttled answer (429, or 503 with Retry-After) the endpoint is
//     not rate-limited at all, unless the plan sets rate_per_second (then that is the
//     starting rate).
//   - A throttled answer cuts the rate to Beta times what it was: the current limit,
//     or, at the first throttle, the rate of requests sent over the last second (what
//     the client offered, as the AWS SDKs measure their sending rate). Only answers
//     to requests sent after the previous cut, and only once an answer to such a
//     request was not throttled, count: one burst of 429s (every request in flight when
//     the server started refusing) is one cut, and so is a storm where the server
//     refuses everything for a while (the shared Retry-After pause covers that).
//   - Every answer that is not throttled, while the limiter is what holds requests
//     back, adds Step/limit, so the rate climbs by about Step per second, where Step
//     is StepShare of the rate found at the last cut (at least MinStep).
//   - Between the first cut and the second, the climb is a slow start, as in TCP: each
//     such answer adds ln 2 requests per second, so the rate doubles about every
//     second. The first cut starts from a short, uncertain history (the run may have
//     sent one request when the first 429 came); the second starts from a rate the
//     server was seen to refuse.
//   - The plan's rate_per_second is a ceiling the rate never exceeds.
//
// The limiter is golang.org/x/time/rate's; SetLimitAt moves it.
const (
	// Beta is the multiplicative decrease on a throttled answer.
	Beta = 0.8
	// StepShare of the rate at the last cut is added per second of increase.
	StepShare = 0.05
	// MinStep is the least increase per second, in requests per second.
	MinStep = 1
	// MinRate is the lowest rate a cut goes to, in requests per second.
	MinRate = 0.5
)

// RateClock is the clock an endpoint's rate controller paces requests on. Production
// runs on the wall clock; a test puts a clock on the run's context (WithRateClock)
// whose Until moves its time forward at once, so that pacing at a found rate costs
// the test no real time. Implementations are safe for concurrent use.
type RateClock interface {
	// Now returns the clock's time.
	Now() time.Time
	// Until returns once the clock reads t or later, or with ctx's error.
	Until(ctx context.Context, t time.Time) error
}

type rateClockKey struct{}

// WithRateClock returns a context whose requests pace their endpoint's rate on c:
// the first request a client sends with it moves that client onto c for good (a
// client's rate history is on one clock).
func WithRateClock(ctx context.Context, c RateClock) context.Context {
	return context.WithValue(ctx, rateClockKey{}, c)
}

// adaptive is one endpoint client's rate controller. Safe for concurrent use.
type adaptive struct {
	name    string
	wall    func() time.Time          // the clock until a RateClock is set
	clock   atomic.Pointer[RateClock] // set by the first request with WithRateClock
	metered atomic.Pointer[Meters]    // the last Meters this client registered in

	mu        sync.Mutex
	lim       *rate.Limiter
	ceiling   float64 // plan rate_per_second; 0: none
	burst     int     // plan burst; 0: follows the limit
	limited   bool    // the limiter holds requests back (a ceiling or a throttle)
	limit     float64 // current rate when limited
	step      float64 // increase per second
	lastCut   time.Time
	okSince   int  // answers not throttled to requests sent since the last cut
	slowStart bool // between the first cut and the second
	cuts      int
	winStart  time.Time // sliding window of answers: current and previous second
	winCur    int
	winPrev   int
	requests  int64
	throttled int64
}

func newAdaptive(name string, ceiling float64, burst int, now func() time.Time) *adaptive {
	if now == nil {
		now = time.Now
	}
	a := &adaptive{name: name, wall: now, ceiling: ceiling, burst: burst, lim: rate.NewLimiter(rate.Inf, 1)}
	if ceiling > 0 {
		a.limited = true
		a.limit = ceiling
		a.step = math.Max(MinStep, StepShare*ceiling)
		t := now()
		a.lim.SetLimitAt(t, rate.Limit(ceiling))
		a.lim.SetBurstAt(t, a.burstFor(ceiling))
	}
	return a
}

func (a *adaptive) burstFor(limit float64) int {
	if a.burst > 0 {
		return a.burst
	}
	return max(1, int(math.Ceil(limit)))
}

// now reads the client's clock: its RateClock once one is set, else the wall clock.
func (a *adaptive) now() time.Time {
	if c := a.clock.Load(); c != nil {
		return (*c).Now()
	}
	return a.wall()
}

// wait blocks until the limiter lets one request go.
func (a *adaptive) wait(ctx context.Context) error {
	if c, ok := ctx.Value(rateClockKey{}).(RateClock); ok && a.clock.Load() == nil {
		a.clock.CompareAndSwap(nil, &c)
	}
	a.mu.Lock()
	lim, limited := a.lim, a.limited
	a.mu.Unlock()
	if !limited {
		return nil
	}
	c := a.clock.Load()
	if c == nil {
		return lim.Wait(ctx)
	}
	// On a RateClock: reserve as Limiter.Wait does, and wait on that clock.
	now := (*c).Now()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return fmt.Errorf("rate: cannot reserve a request at limit %v", lim.Limit())
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	if err := (*c).Until(ctx, now.Add(d)); err != nil {
		r.CancelAt((*c).Now())
		return err
	}
	return nil
}

// sent counts a request going out and returns the time, for observe.
func (a *adaptive) sent() time.Time {
	now := a.now()
	a.mu.Lock()
	a.count(now)
	a.mu.Unlock()
	return now
}

// observe takes the answer to a request sent at sentAt.
func (a *adaptive) observe(sentAt time.Time, throttled bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests++
	if throttled {
		a.throttled++
		if a.cuts > 0 && (sentAt.Before(a.lastCut) || a.okSince == 0) {
			// Sent at the rate before the last cut, or nothing went through since
			// it: the same episode, which that cut already answered.
			return
		}
		base := a.limit
		if !a.limited {
			base = a.measured(now)
		}
		if a.ceiling > 0 && base > a.ceiling {
			base = a.ceiling
		}
		limit := math.Max(MinRate, Beta*base)
		a.step = math.Max(MinStep, StepShare*base)
		a.limited = true
		a.lastCut = now
		a.okSince = 0
		a.cuts++
		a.slowStart = a.cuts == 1
		a.set(now, limit)
		return
	}
	if !sentAt.Before(a.lastCut) {
		a.okSince++ // an answer at the rate since the last cut
	}
	if !a.limited {
		return
	}
	if a.lim.TokensAt(now) >= 1 {
		// The limiter is not what holds requests back: no evidence for more.
		return
	}
	limit := a.limit + a.step/a.limit
	if a.slowStart {
		limit = a.limit + math.Ln2
	}
	if a.ceiling > 0 && limit > a.ceiling {
		limit = a.ceiling
	}
	if limit != a.limit {
		a.set(now, limit)
	}
}

func (a *adaptive) set(now time.Time, limit float64) {
	a.limit = limit
	a.lim.SetLimitAt(now, rate.Limit(limit))
	a.lim.SetBurstAt(now, a.burstFor(limit))
}

// count adds one request to the one-second sliding window.
func (a *adaptive) count(now time.Time) {
	a.roll(now)
	a.winCur++
}

func (a *adaptive) roll(now time.Time) {
	if a.winStart.IsZero() {
		a.winStart = now
		return
	}
	switch d := now.Sub(a.winStart); {
	case d >= 2*time.Second:
		a.winPrev, a.winCur = 0, 0
		a.winStart = now
	case d >= time.Second:
		a.winPrev, a.winCur = a.winCur, 0
		a.winStart = a.winStart.Add(time.Second)
	}
}

// measured estimates the rate of requests sent over the last second (per second).
func (a *adaptive) measured(now time.Time) float64 {
	a.roll(now)
	if a.winStart.IsZero() {
		return MinRate
	}
	frac := float64(now.Sub(a.winStart)) / float64(time.Second)
	return float64(a.winCur) + float64(a.winPrev)*(1-frac)
}

// RateStats is what an endpoint's rate controller found.
type RateStats struct {
	// Endpoint is the client's name (the plan endpoint, or the item of a per-item server).
	Endpoint string `json:"endpoint"`
	// Limited: a rate limit is in force (the plan's ceiling or one found by throttling).
	Limited bool `json:"limited"`
	// Rate is the rate the endpoint settled at, in requests per second (0 when not limited).
	Rate float64 `json:"rate_per_second"`
	// Ceiling is the plan's rate_per_second (0: none).
	Ceiling float64 `json:"ceiling_per_second,omitempty"`
	// Requests answered and, of them, Throttled (429, or 503 with Retry-After).
	Requests  int64 `json:"requests"`
	Throttled int64 `json:"throttled"`
	// Cuts counts the rate decreases.
	Cuts int `json:"decreases"`
}

func (a *adaptive) stats() RateStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := RateStats{Endpoint: a.name, Limited: a.limited, Ceiling: a.ceiling, Requests: a.requests, Throttled: a.throttled, Cuts: a.cuts}
	if a.limited {
		s.Rate = a.limit
	}
	return s
}

// Meters collects the rate statistics of every client that sends a request with a
// context carrying it (WithMeters), so that a run can report each endpoint's rate
// without every provider handing its clients over. Safe for concurrent use.
type Meters struct {
	mu      sync.Mutex
	clients map[*adaptive]struct{}
}

// NewMeters returns an empty collection.
func NewMeters() *Meters { return &Meters{clients: map[*adaptive]struct{}{}} }

type metersKey struct{}

// WithMeters returns a context whose requests register their clients in m.
func WithMeters(ctx context.Context, m *Meters) context.Context {
	return context.WithValue(ctx, metersKey{}, m)
}

func metersFrom(ctx context.Context) *Meters {
	m, _ := ctx.Value(metersKey{}).(*Meters)
	return m
}

// meter registers a in m (nil: none), once per Meters in a row.
func (a *adaptive) meter(m *Meters) {
	if m == nil || a.metered.Load() == m {
		return
	}
	m.add(a)
	a.metered.Store(m)
}

func (m *Meters) add(a *adaptive) {
	m.mu.Lock()
	m.clients[a] = struct{}{}
	m.mu.Unlock()
}

// Stats returns one entry per client name (clients of the same name summed), sorted
// by name.
func (m *Meters) Stats() []RateStats {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	list := make([]*adaptive, 0, len(m.clients))
	for a := range m.clients {
		list = append(list, a)
	}
	m.mu.Unlock()
	by := map[string]*RateStats{}
	for _, a := range list {
		s := a.stats()
		if have, ok := by[s.Endpoint]; ok {
			have.Requests += s.Requests
			have.Throttled += s.Throttled
			have.Cuts += s.Cuts
			if s.Limited && (!have.Limited || s.Rate < have.Rate) {
				have.Limited, have.Rate = true, s.Rate
			}
			continue
		}
		by[s.Endpoint] = &s
	}
	out := make([]RateStats, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Endpoint < out[j].Endpoint })
	return out
}
