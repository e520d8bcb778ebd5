package fault

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestInjector_Wrap(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         Config
		wantStatus  int
		wantApplied bool
		wantConnErr bool
	}{
		{"off", Config{}, 200, true, false},
		{"5xx", Config{ErrorRate: 1}, 500, false, false},
		{"429", Config{TooManyRate: 1, RetryAfter: 2 * time.Second}, 429, false, false},
		{"drop", Config{DropRate: 1}, 0, false, true},
		{"lost", Config{LostRate: 1}, 0, true, true},
		{"only mutating spares GET", Config{ErrorRate: 1, OnlyMutating: true}, 200, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var applied atomic.Bool
			in := New(tc.cfg)
			srv := httptest.NewServer(in.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				applied.Store(true)
				io.WriteString(w, "ok")
			})))
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if tc.wantConnErr {
				if err == nil {
					t.Fatalf("want a connection error, got %d", resp.StatusCode)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.wantStatus {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
				}
				if tc.wantStatus == 429 && resp.Header.Get("Retry-After") != "2" {
					t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
				}
			}
			if applied.Load() != tc.wantApplied {
				t.Errorf("applied = %v, want %v", applied.Load(), tc.wantApplied)
			}
			if c := in.Counts(); c.Requests != 1 || (tc.cfg.Off() && c.Total() != 0) {
				t.Errorf("counts %v", c)
			}
		})
	}
}

// handClock is a clock moved by hand (the rate limit's, in tests).
type handClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *handClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *handClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// statusOf sends one GET through h and returns the status, Retry-After and body.
func statusOf(t *testing.T, h http.Handler) (int, string, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return rec.Code, rec.Header().Get("Retry-After"), rec.Body.String()
}

// The bucket lets a burst through, then refills at the rate and never holds more
// than the burst; the Retry-After is the wait for the next token, rounded up.
func TestInjector_RateLimitBucketRefills(t *testing.T) {
	clk := &handClock{t: time.Unix(1_700_000_000, 0)}
	in := New(Config{RateLimit: 4, RateBurst: 3, OnlyMutating: true})
	in.SetClock(clk.now)
	var applied atomic.Int64
	h := in.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { applied.Add(1) }))
	passed := func(n int) (ok int) {
		for i := 0; i < n; i++ {
			if st, _, _ := statusOf(t, h); st == http.StatusOK {
				ok++
			}
		}
		return ok
	}
	if got := passed(10); got != 3 {
		t.Fatalf("a full bucket let %d through, want the burst of 3", got)
	}
	if st, ra, _ := statusOf(t, h); st != http.StatusTooManyRequests || ra != "1" {
		t.Fatalf("empty bucket: %d Retry-After %q, want 429 and 1 (250ms rounded up)", st, ra)
	}
	clk.add(500 * time.Millisecond)
	if got := passed(10); got != 2 {
		t.Fatalf("after 500ms at 4/s: %d through, want 2", got)
	}
	clk.add(time.Hour)
	if got := passed(10); got != 3 {
		t.Fatalf("after a long pause: %d through, want the burst of 3, never more", got)
	}
	if c := in.Counts(); c.Throttled != 23 || applied.Load() != 8 || c.TooMany != 0 {
		t.Fatalf("counts %s, applied %d", c, applied.Load())
	}
	slow := New(Config{RateLimit: 0.25, RateBurst: 1})
	slow.SetClock(clk.now)
	h2 := slow.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	statusOf(t, h2)
	if _, ra, _ := statusOf(t, h2); ra != "4" {
		t.Fatalf("Retry-After %q at 0.25/s, want 4", ra)
	}
	in.Set(Config{})
	if got := passed(5); got != 5 {
		t.Fatalf("limit switched off: %d of 5 through", got)
	}
}

// A fake's own 429 shape answers the rate limit's refusals.
func TestInjector_RateLimitAnswersInFakesShape(t *testing.T) {
	in := New(Config{RateLimit: 0.001, RateBurst: 1})
	in.SetThrottle(func(w http.ResponseWriter, _ *http.Request, retryAfter time.Duration) {
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"detail":"Request was throttled. Expected available in `+strconv.Itoa(int(retryAfter/time.Second))+` seconds."}`)
	})
	h := in.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if st, _, _ := statusOf(t, h); st != http.StatusOK {
		t.Fatalf("first request: %d", st)
	}
	st, ra, body := statusOf(t, h)
	if st != http.StatusTooManyRequests || ra == "" || !strings.Contains(body, "Expected available in "+ra+" seconds") {
		t.Fatalf("throttled: %d %q %s", st, ra, body)
	}
}
