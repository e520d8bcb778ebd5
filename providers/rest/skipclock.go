package rest

import (
	"context"
	"sync"
	"time"
)

// SkipClock is a RateClock for tests: it runs with the wall clock but skips every wait:
// Until moves the clock forward to the time asked for at once. A run whose context
// carries it (WithRateClock) paces each endpoint at the rate it found, on this
// clock, without spending that time for real; the rate controller sees the same
// sequence of times as a run that waited. Safe for concurrent use.
type SkipClock struct {
	mu      sync.Mutex
	skipped time.Duration
}

var _ RateClock = (*SkipClock)(nil)

// NewSkipClock returns a clock that reads the wall clock until a wait skips ahead.
func NewSkipClock() *SkipClock { return &SkipClock{} }

// Now returns the wall clock plus every wait skipped so far.
func (c *SkipClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.skipped)
}

// Until moves the clock to t (if it reads earlier) and returns at once, or returns
// ctx's error if ctx is done.
func (c *SkipClock) Until(ctx context.Context, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := t.Sub(time.Now().Add(c.skipped)); d > 0 {
		c.skipped += d
	}
	return nil
}

// Skipped returns how long the waits skipped so far would have taken.
func (c *SkipClock) Skipped() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.skipped
}
