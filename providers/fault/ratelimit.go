package fault

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// RateLimit is a server-side limit, as vendor APIs enforce it: a token bucket that
// refills at Rate requests per second and holds at most Burst. A request that finds
// the bucket empty is refused with 429 and a Retry-After (whole seconds, at least 1)
// saying when a token is free again; it is not applied.
type RateLimit struct {
	Rate  float64 // requests per second; 0 switches the limit off
	Burst int     // bucket size; 0 means max(1, ceil(Rate))
}

// On reports whether the limit is switched on.
func (l RateLimit) On() bool { return l.Rate > 0 }

func (l RateLimit) burst() float64 {
	if l.Burst > 0 {
		return float64(l.Burst)
	}
	return math.Max(1, math.Ceil(l.Rate))
}

// Bucket is a token bucket. It starts full. Safe for concurrent use.
type Bucket struct {
	mu     sync.Mutex
	limit  RateLimit
	tokens float64
	last   time.Time
	now    func() time.Time
}

// NewBucket returns a full bucket for l; now is its clock (nil: time.Now).
func NewBucket(l RateLimit, now func() time.Time) *Bucket {
	if now == nil {
		now = time.Now
	}
	return &Bucket{limit: l, tokens: l.burst(), last: now(), now: now}
}

// Limit returns the bucket's limit.
func (b *Bucket) Limit() RateLimit { return b.limit }

// Take takes one token. Without one it takes nothing and returns how long until a
// token is free.
func (b *Bucket) Take() (ok bool, wait time.Duration) {
	if !b.limit.On() {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(b.limit.burst(), b.tokens+el.Seconds()*b.limit.Rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.limit.Rate * float64(time.Second))
}

// RetryAfterSeconds is the Retry-After value for a wait: whole seconds, rounded up,
// at least 1.
func RetryAfterSeconds(wait time.Duration) int {
	s := int(math.Ceil(wait.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// ThrottleReply writes a 429 answer; retryAfter is the wait in whole seconds (the
// Retry-After header is already set). Fakes install their vendor's shape with
// Injector.SetThrottleReply.
type ThrottleReply func(w http.ResponseWriter, r *http.Request, retryAfter int)

func defaultThrottleReply(w http.ResponseWriter, _ *http.Request, _ int) {
	http.Error(w, `{"error":"too many requests"}`, http.StatusTooManyRequests)
}

// SetThrottleReply sets how this injector's 429 answers look (the server-side rate
// limit's and TooManyRate's); nil restores the generic one.
func (in *Injector) SetThrottleReply(f ThrottleReply) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.reply = f
}

func (in *Injector) throttle(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := RetryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	in.mu.Lock()
	f := in.reply
	in.mu.Unlock()
	if f == nil {
		f = defaultThrottleReply
	}
	f(w, r, secs)
}

// limited applies the server-side rate limit; it answers 429 itself and returns
// false when the request is over the limit.
func (in *Injector) limited(w http.ResponseWriter, r *http.Request, l RateLimit) bool {
	if !l.On() {
		return true
	}
	in.mu.Lock()
	b := in.bucket
	if b == nil || b.Limit() != l {
		b = NewBucket(l, nil)
		in.bucket = b
	}
	in.mu.Unlock()
	ok, wait := b.Take()
	if !ok {
		in.throttled.Add(1)
		in.throttle(w, r, wait)
	}
	return ok
}
