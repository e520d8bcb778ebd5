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

// TestInjector_RateLimit: a bucket of 2 at 1 request/s on a fake clock: the third
// request at once is throttled (not applied, Retry-After 1, the fake's own answer);
// a second later one more passes; GETs count too; switching the limit off lets all pass.
func TestInjector_RateLimit(t *testing.T) {
	var applied atomic.Int64
	in := New(Config{RateLimit: 1, RateBurst: 2})
	now := time.Unix(1_700_000_000, 0)
	in.SetClock(func() time.Time { return now })
	in.SetThrottle(func(w http.ResponseWriter, r *http.Request, ra time.Duration) {
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "vendor shape "+ra.String())
	})
	srv := httptest.NewServer(in.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		applied.Add(1)
		io.WriteString(w, "ok")
	})))
	defer srv.Close()
	get := func() (int, string, string) {
		t.Helper()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
	}
	for i := 0; i < 2; i++ {
		if st, _, _ := get(); st != 200 {
			t.Fatalf("request %d within the burst: %d", i+1, st)
		}
	}
	st, ra, body := get()
	if st != 429 || ra != "1" || body != "vendor shape 1s" {
		t.Fatalf("over the limit: %d Retry-After %q body %q", st, ra, body)
	}
	if applied.Load() != 2 || in.Counts().Throttled != 1 {
		t.Fatalf("applied %d, counts %v", applied.Load(), in.Counts())
	}
	now = now.Add(time.Second)
	if st, _, _ := get(); st != 200 {
		t.Fatalf("after a second: %d", st)
	}
	if st, _, _ := get(); st != 429 {
		t.Fatalf("bucket empty again: %d", st)
	}
	in.Set(Config{})
	for i := 0; i < 5; i++ {
		if st, _, _ := get(); st != 200 {
			t.Fatalf("limit off: %d", st)
		}
	}
}

// TestInjector_WrapUnlimitedIgnoresTheRateLimit: the farm of a fake shares its
// switches but not its limit.
func TestInjector_WrapUnlimitedIgnoresTheRateLimit(t *testing.T) {
	in := New(Config{RateLimit: 1, RateBurst: 1})
	in.SetClock(func() time.Time { return time.Unix(0, 0) })
	srv := httptest.NewServer(in.WrapUnlimited(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })))
	defer srv.Close()
	for i := 0; i < 3; i++ {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i+1, resp.StatusCode)
		}
	}
}
