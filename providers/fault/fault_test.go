package fault

import (
	"io"
	"net/http"
	"net/http/httptest"
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

// fakeClock is a clock moved by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func takeN(b *Bucket, n int) (taken int) {
	for i := 0; i < n; i++ {
		if ok, _ := b.Take(); ok {
			taken++
		}
	}
	return taken
}

func TestBucket_Take_BurstThenRate(t *testing.T) {
	c := newFakeClock()
	b := NewBucket(RateLimit{Rate: 4, Burst: 3}, c.now)
	if got := takeN(b, 10); got != 3 {
		t.Fatalf("a full bucket gave %d tokens, want the burst of 3", got)
	}
	ok, wait := b.Take()
	if ok || wait != 250*time.Millisecond {
		t.Fatalf("empty bucket: ok=%v wait=%s, want a refusal and 250ms", ok, wait)
	}
	c.add(500 * time.Millisecond)
	if got := takeN(b, 10); got != 2 {
		t.Fatalf("after 500ms at 4/s: %d tokens, want 2", got)
	}
	c.add(time.Hour)
	if got := takeN(b, 10); got != 3 {
		t.Fatalf("after a long pause: %d tokens, want the burst of 3 (never more)", got)
	}
	if ok, _ := NewBucket(RateLimit{}, c.now).Take(); !ok {
		t.Fatal("a bucket without rate must not limit")
	}
	if n := NewBucket(RateLimit{Rate: 2.5}, c.now); takeN(n, 10) != 3 {
		t.Fatal("the default burst is ceil(rate)")
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {2500 * time.Millisecond, 3}} {
		if got := RetryAfterSeconds(tc.wait); got != tc.want {
			t.Errorf("RetryAfterSeconds(%s) = %d, want %d", tc.wait, got, tc.want)
		}
	}
}

// Over the server-side limit a request gets 429 with Retry-After in the reply the
// fake installed, is not applied, and is counted as throttled.
func TestInjector_RateLimit_ThrottlesWithReply(t *testing.T) {
	var applied atomic.Int64
	in := New(Config{RateLimit: RateLimit{Rate: 0.001, Burst: 2}, OnlyMutating: true})
	in.SetThrottleReply(func(w http.ResponseWriter, _ *http.Request, secs int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"detail":"throttled"}`)
	})
	srv := httptest.NewServer(in.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { applied.Add(1) })))
	defer srv.Close()
	var statuses []int
	for i := 0; i < 4; i++ {
		resp, err := http.Get(srv.URL) // a GET: the limit ignores OnlyMutating
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
				t.Errorf("429 without a usable Retry-After: %q", ra)
			}
			if string(body) != `{"detail":"throttled"}` {
				t.Errorf("429 body %q, want the installed reply", body)
			}
		}
	}
	if applied.Load() != 2 || statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 429 || statuses[3] != 429 {
		t.Fatalf("statuses %v, applied %d: want the burst of 2 through and the rest refused", statuses, applied.Load())
	}
	if c := in.Counts(); c.Throttled != 2 || c.TooMany != 0 {
		t.Fatalf("counts %s", c)
	}
	in.Set(Config{})
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("limit switched off: status %d", resp.StatusCode)
	}
}
