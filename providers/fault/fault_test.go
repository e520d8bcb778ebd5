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
