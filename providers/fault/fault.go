// Package fault injects failures into the fake vendor servers: latency, 5xx answers,
// 429 with Retry-After, dropped connections (request not applied) and lost responses
// (request applied, answer never sent), and a server-side rate limit (a token bucket:
// over it, 429 with Retry-After in the vendor's own shape). Every fake server wraps
// its handler with an Injector, so tests and the sandbox can switch faults on and off
// at run time and count what was injected. An Injector is safe for concurrent use.
package fault

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config is a set of fault switches. Rates are probabilities per request in [0,1].
type Config struct {
	Latency      time.Duration // added to every request
	ErrorRate    float64       // answer 500 without applying the request
	TooManyRate  float64       // answer 429 with Retry-After, not applied
	RetryAfter   time.Duration // Retry-After sent with 429 (default 1s)
	DropRate     float64       // close the connection before applying
	LostRate     float64       // apply the request, then close the connection without answering
	OnlyMutating bool          // inject only into POST/PUT/PATCH/DELETE
	Seed         uint64        // 0: random
	// RateLimit is the requests per second the server accepts (a token bucket
	// refilled at this rate; 0: no limit). Requests over it are answered 429 with
	// Retry-After (the wait for the next token, in whole seconds, at least 1) and
	// are not applied. It applies to every request, GETs included, like the
	// vendors' own limits (inference: their limits are not published).
	RateLimit float64
	// RateBurst is the bucket's size (default: RateLimit rounded up, at least 1).
	RateBurst int
}

// Off reports whether no fault is switched on.
func (c Config) Off() bool {
	return c.Latency == 0 && c.ErrorRate == 0 && c.TooManyRate == 0 && c.DropRate == 0 && c.LostRate == 0 && c.RateLimit <= 0
}

// Counts of injected faults. Throttled counts the 429 answers of the rate limit
// (TooMany those of TooManyRate).
type Counts struct {
	Requests, Errors, TooMany, Dropped, Lost, Throttled int64
}

func (c Counts) String() string {
	return fmt.Sprintf("requests=%d 5xx=%d 429=%d dropped=%d lost=%d throttled=%d", c.Requests, c.Errors, c.TooMany, c.Dropped, c.Lost, c.Throttled)
}

// Total is the number of injected faults of every kind.
func (c Counts) Total() int64 { return c.Errors + c.TooMany + c.Dropped + c.Lost + c.Throttled }

// ThrottleFunc writes a fake's answer to a request over its rate limit: status 429
// and a body in the vendor's shape. The Retry-After header is already set.
type ThrottleFunc func(w http.ResponseWriter, r *http.Request, retryAfter time.Duration)

// DefaultThrottle answers {"error":"too many requests"} (the fakes' generic shape).
func DefaultThrottle(w http.ResponseWriter, _ *http.Request, _ time.Duration) {
	http.Error(w, `{"error":"too many requests"}`, http.StatusTooManyRequests)
}

// Injector wraps handlers with faults.
type Injector struct {
	cfg atomic.Pointer[Config]
	mu  sync.Mutex
	rng *rand.Rand

	requests, errors, tooMany, dropped, lost, throttled atomic.Int64

	// The rate limit's bucket (guarded by mu): tokens left at last.
	tokens   float64
	last     time.Time
	now      func() time.Time
	throttle atomic.Pointer[ThrottleFunc]
}

// New returns an injector with cfg switched on.
func New(cfg Config) *Injector {
	in := &Injector{now: time.Now}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	in.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	in.Set(cfg)
	return in
}

// Set replaces the switches. A changed rate limit starts with a full bucket.
func (in *Injector) Set(cfg Config) {
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.RateLimit > 0 && cfg.RateBurst <= 0 {
		cfg.RateBurst = int(math.Ceil(cfg.RateLimit))
	}
	in.mu.Lock()
	if old := in.cfg.Load(); old == nil || old.RateLimit != cfg.RateLimit || old.RateBurst != cfg.RateBurst {
		in.tokens, in.last = float64(cfg.RateBurst), time.Time{}
	}
	in.cfg.Store(&cfg)
	in.mu.Unlock()
}

// SetClock replaces the clock of the rate limit (tests use a fake one).
func (in *Injector) SetClock(now func() time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.now, in.last = now, time.Time{}
}

// SetThrottle sets how requests over the rate limit are answered (default
// DefaultThrottle), so that each fake answers in its vendor's shape.
func (in *Injector) SetThrottle(f ThrottleFunc) { in.throttle.Store(&f) }

// take takes a token from the bucket; when none is left it returns the wait for
// the next one.
func (in *Injector) take(cfg *Config) (ok bool, wait time.Duration) {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := in.now()
	if !in.last.IsZero() {
		in.tokens += now.Sub(in.last).Seconds() * cfg.RateLimit
	}
	in.last = now
	if burst := float64(cfg.RateBurst); in.tokens > burst {
		in.tokens = burst
	}
	if in.tokens >= 1 {
		in.tokens--
		return true, 0
	}
	return false, time.Duration((1 - in.tokens) / cfg.RateLimit * float64(time.Second))
}

// Config returns the current switches.
func (in *Injector) Config() Config { return *in.cfg.Load() }

// Counts returns what was injected so far.
func (in *Injector) Counts() Counts {
	return Counts{Requests: in.requests.Load(), Errors: in.errors.Load(), TooMany: in.tooMany.Load(), Dropped: in.dropped.Load(), Lost: in.lost.Load(),
		Throttled: in.throttled.Load()}
}

func (in *Injector) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.rng.Float64() < p
}

// Wrap returns h with faults injected, the rate limit included.
func (in *Injector) Wrap(h http.Handler) http.Handler { return in.wrap(h, true) }

// WrapUnlimited returns h with every fault but the rate limit (for servers that
// share a fake's switches but not its limit, e.g. on-premises Nx servers).
func (in *Injector) WrapUnlimited(h http.Handler) http.Handler { return in.wrap(h, false) }

func (in *Injector) wrap(h http.Handler, limited bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.requests.Add(1)
		cfg := in.cfg.Load()
		if limited && cfg.RateLimit > 0 {
			if ok, wait := in.take(cfg); !ok {
				in.throttled.Add(1)
				secs := max(1, int(math.Ceil(wait.Seconds())))
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				f := DefaultThrottle
				if p := in.throttle.Load(); p != nil {
					f = *p
				}
				f(w, r, time.Duration(secs)*time.Second)
				return
			}
		}
		if cfg.Off() || (cfg.OnlyMutating && (r.Method == http.MethodGet || r.Method == http.MethodHead)) {
			h.ServeHTTP(w, r)
			return
		}
		if cfg.Latency > 0 {
			select {
			case <-time.After(cfg.Latency):
			case <-r.Context().Done():
				return
			}
		}
		switch {
		case in.roll(cfg.DropRate):
			in.dropped.Add(1)
			HangUp(w)
			return
		case in.roll(cfg.TooManyRate):
			in.tooMany.Add(1)
			w.Header().Set("Retry-After", strconv.Itoa(int((cfg.RetryAfter+time.Second-1)/time.Second)))
			http.Error(w, `{"error":"too many requests"}`, http.StatusTooManyRequests)
			return
		case in.roll(cfg.ErrorRate):
			in.errors.Add(1)
			http.Error(w, `{"error":"injected internal error"}`, http.StatusInternalServerError)
			return
		case in.roll(cfg.LostRate):
			in.lost.Add(1)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r) // the change is applied ...
			HangUp(w)           // ... and the answer is lost
			return
		}
		h.ServeHTTP(w, r)
	})
}

// HangUp closes the client connection without an answer.
func HangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}
