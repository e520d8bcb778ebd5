// Package fault injects failures into the fake vendor servers: latency, 5xx answers,
// 429 with Retry-After, dropped connections (request not applied) and lost responses
// (request applied, answer never sent). Every fake server wraps its handler with an
// Injector, so tests and the sandbox can switch faults on and off at run time and
// count what was injected. An Injector is safe for concurrent use.
package fault

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
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
	// RateLimit is a server-side token bucket over every request (OnlyMutating does
	// not apply to it); over it a request gets 429 with Retry-After, not applied.
	RateLimit RateLimit
}

// Off reports whether no fault is switched on.
func (c Config) Off() bool {
	return c.Latency == 0 && c.ErrorRate == 0 && c.TooManyRate == 0 && c.DropRate == 0 && c.LostRate == 0 && !c.RateLimit.On()
}

// Counts of injected faults. Throttled counts the 429 answers of the server-side
// rate limit (TooMany those of TooManyRate).
type Counts struct {
	Requests, Errors, TooMany, Dropped, Lost, Throttled int64
}

func (c Counts) String() string {
	return fmt.Sprintf("requests=%d 5xx=%d 429=%d dropped=%d lost=%d throttled=%d", c.Requests, c.Errors, c.TooMany, c.Dropped, c.Lost, c.Throttled)
}

// Total is the number of injected faults of every kind.
func (c Counts) Total() int64 { return c.Errors + c.TooMany + c.Dropped + c.Lost + c.Throttled }

// Injector wraps handlers with faults.
type Injector struct {
	cfg atomic.Pointer[Config]
	mu  sync.Mutex
	rng *rand.Rand
	// bucket is the server-side rate limit's (rebuilt when the limit changes);
	// reply writes 429 answers. Both under mu.
	bucket *Bucket
	reply  ThrottleReply

	requests, errors, tooMany, dropped, lost, throttled atomic.Int64
}

// New returns an injector with cfg switched on.
func New(cfg Config) *Injector {
	in := &Injector{}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	in.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	in.Set(cfg)
	return in
}

// Set replaces the switches.
func (in *Injector) Set(cfg Config) {
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	in.cfg.Store(&cfg)
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

// Wrap returns h with faults injected.
func (in *Injector) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.requests.Add(1)
		cfg := in.cfg.Load()
		if !in.limited(w, r, cfg.RateLimit) {
			return
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
			hangUp(w)
			return
		case in.roll(cfg.TooManyRate):
			in.tooMany.Add(1)
			in.throttle(w, r, cfg.RetryAfter)
			return
		case in.roll(cfg.ErrorRate):
			in.errors.Add(1)
			http.Error(w, `{"error":"injected internal error"}`, http.StatusInternalServerError)
			return
		case in.roll(cfg.LostRate):
			in.lost.Add(1)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r) // the change is applied ...
			hangUp(w)           // ... and the answer is lost
			return
		}
		h.ServeHTTP(w, r)
	})
}

// hangUp closes the client connection without an answer.
func hangUp(w http.ResponseWriter) {
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
