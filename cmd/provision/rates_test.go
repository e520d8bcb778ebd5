package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"provision/providers/httpstep/httpfake"
	"provision/providers/rest"
)

// cliSkippingPacing runs the CLI as cli does, with the endpoints' clients pacing
// on a clock that skips the waits (the rate found after a 429 is kept on that
// clock, not in real seconds).
func cliSkippingPacing(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	clk := rest.NewSkipClock()
	err := run(rest.WithRateClock(context.Background(), clk), args, &out, &errb)
	code := exitCode(err, &errb)
	t.Logf("%s of pacing skipped", clk.Skipped().Round(time.Millisecond))
	return code, out.String(), errb.String()
}

// throttleFirst answers 429 + Retry-After: 0 to the first n requests, then hands
// over to next. The answer is DRF's throttle shape (inference: API-NOTES section 6
// "Rate limits").
func throttleFirst(n int64, next http.Handler) http.Handler {
	var seen atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= n {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"detail": "Request was throttled. Expected available in 1 second."}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// throttledWidgetsPlan is widgetsPlan with the endpoint's pause after a 429 capped
// at 1 ms (limits.max_retry_after): the client reads Retry-After: 0 as a 1 s pause,
// and these tests check what the report says about the throttling, not how long
// the pause lasted (rest's tests do that).
var throttledWidgetsPlan = strings.Replace(widgetsPlan, "    kind: http\n", "    kind: http\n    limits: {max_retry_after: 1ms}\n", 1)

func TestCLI_Apply_ReportsEndpointRatesAndThrottling(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(throttleFirst(3, srv))
	defer ts.Close()
	dir := t.TempDir()
	p := writeFile(t, dir, "widgets.yaml", throttledWidgetsPlan)
	v := "api=" + ts.URL

	// One attempt per task: the three 429s must cost none.
	code, out, errs := cliSkippingPacing(t, "apply", p, "--var", v, "--max-attempts", "1", "--backoff", "1ms", "--backoff-max", "2ms", "--json")
	if code != ExitOK {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errs)
	}
	var rep struct {
		Applied   int `json:"applied"`
		Failed    int `json:"failed"`
		Throttled int `json:"throttled_retries"`
		Endpoints []struct {
			Endpoint  string  `json:"endpoint"`
			Limited   bool    `json:"limited"`
			Rate      float64 `json:"rate_per_second"`
			Requests  int64   `json:"requests"`
			Throttled int64   `json:"throttled"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if rep.Applied != 6 || rep.Failed != 0 || rep.Throttled < 1 {
		t.Fatalf("report %+v, want 6 applied, none failed, throttled retries", rep)
	}
	if len(rep.Endpoints) != 1 || rep.Endpoints[0].Endpoint != "api" || rep.Endpoints[0].Throttled != 3 || !rep.Endpoints[0].Limited || rep.Endpoints[0].Rate <= 0 {
		t.Fatalf("endpoints %+v, want api with 3 throttled answers and a rate found", rep.Endpoints)
	}
	if strings.Contains(out, "cli-secret-canary-93") || strings.Contains(errs, "cli-secret-canary-93") {
		t.Fatal("secret in the output")
	}

	// The text report: a rerun sends nothing, so it lists no endpoint.
	code, out, _ = cli(t, "apply", p, "--var", v)
	if code != ExitOK || strings.Contains(out, "endpoints (") {
		t.Fatalf("rerun: code %d\n%s", code, out)
	}
}

func TestCLI_Apply_TextReportShowsSettledRate(t *testing.T) {
	t.Setenv("CLI_TEST_SECRET", "cli-secret-canary-93")
	srv := httpfake.New(httpfake.Options{ClientID: "cli-test", ClientSecret: "cli-secret-canary-93"})
	ts := httptest.NewServer(throttleFirst(1, srv))
	defer ts.Close()
	p := writeFile(t, t.TempDir(), "widgets.yaml", throttledWidgetsPlan)
	code, out, errs := cliSkippingPacing(t, "apply", p, "--var", "api="+ts.URL, "--max-attempts", "1")
	if code != ExitOK {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"throttled    ", "endpoints (a rate found by throttling", "one throttling episode: no limit found; 1/"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestCLI_Apply_BadThrottleTimeoutIsBadInput(t *testing.T) {
	p := writeFile(t, t.TempDir(), "widgets.yaml", widgetsPlan)
	code, _, errs := cli(t, "apply", p, "--throttle-timeout", "0s")
	if code != ExitBadInput || !strings.Contains(errs, "--throttle-timeout") {
		t.Fatalf("code %d, stderr %q", code, errs)
	}
}

// Only a rate found over more than one decrease is offered for the plan: one
// refusal cut the rate from whatever the client was sending then.
func TestWriteRates_OffersOnlyARateFoundOverMoreThanOneDecrease(t *testing.T) {
	var b strings.Builder
	writeRates(&b, []rest.RateStats{
		{Endpoint: "nxcloud", Limited: true, Rate: 47.25, Ceiling: 100, Requests: 900, Throttled: 12, Cuts: 3},
		{Endpoint: "store-001", Limited: true, Rate: 0.8, Requests: 4, Throttled: 1, Cuts: 1},
		{Endpoint: "ovc", Limited: true, Rate: 5, Ceiling: 5, Requests: 20},
		{Endpoint: "edge", Requests: 40},
	})
	want := `endpoints (a rate found by throttling can go in limits.rate_per_second):
  nxcloud    47.2/s found (ceiling 100); 12/900 throttled
  store-001  one throttling episode: no limit found; 1/4 throttled
  ovc        5.0/s, the plan's rate_per_second; 0/20 throttled
  edge       no limit met; 0/40 throttled
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	// On an 80-column terminal: the longest case, with a 12-character endpoint name
	// and five-digit counts.
	b.Reset()
	writeRates(&b, []rest.RateStats{
		{Endpoint: "store-123456", Limited: true, Rate: 1234.5, Ceiling: 5000, Requests: 99999, Throttled: 99999, Cuts: 9},
		{Endpoint: "x", Limited: true, Rate: 2, Requests: 99999, Throttled: 99999, Cuts: 1},
		{Endpoint: "y", Limited: true, Rate: 1234.5, Ceiling: 1234.5, Requests: 99999, Throttled: 0},
	})
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if n := utf8.RuneCountInString(line); n > 80 {
			t.Errorf("%d columns: %q", n, line)
		}
	}
}

func TestRateSuffix_ShowsRateAndThrottles(t *testing.T) {
	if got := rateSuffix(nil); got != "" {
		t.Fatalf("no endpoints: %q", got)
	}
	got := rateSuffix([]rest.RateStats{
		{Endpoint: "nxcloud", Limited: true, Rate: 47.25, Requests: 900, Throttled: 12, Cuts: 3},
		{Endpoint: "edge", Requests: 40},
	})
	if want := " | nxcloud 47.2/s throttled=12, edge unlimited throttled=0"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
