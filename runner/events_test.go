package runner

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"provision/providers"
	"provision/state"
)

func TestRunner_Run_EmitsTaskEvents(t *testing.T) {
	var calls atomic.Int32
	flaky := fn(func(_ context.Context, x *providers.Exec) (state.Outputs, error) {
		if calls.Add(1) == 1 {
			return nil, &providers.Error{Op: "POST /x", Err: errors.New("EOF"), Retryable: true, MaybeApplied: true}
		}
		return nil, nil
	})
	broken := fn(func(context.Context, *providers.Exec) (state.Outputs, error) {
		return nil, errors.New("HTTP 403: secret-canary-77 not allowed")
	})
	g := mustGraph(t, task("flaky", nil, flaky), task("broken", nil, broken), task("user", []string{"broken"}, ok()))
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	o := opts()
	o.Redactor.Add("secret-canary-77")
	var evs []Event // Events is called from one goroutine: no lock needed
	o.Events = func(e Event) { evs = append(evs, e) }
	if _, err := Run(context.Background(), g, st, o); err != nil {
		t.Fatal(err)
	}
	per := map[string][]string{}
	for _, e := range evs {
		per[e.Task] = append(per[e.Task], string(e.Type))
		if e.Kind != "test" || e.Time.IsZero() {
			t.Errorf("event %+v: no kind or time", e)
		}
		if strings.Contains(e.Error, "secret-canary-77") {
			t.Errorf("secret in event %+v", e)
		}
		switch e.Type {
		case EventRetrying:
			if e.Attempt != 1 || !e.MaybeApplied || e.RetryIn <= 0 || e.Error == "" {
				t.Errorf("retrying %+v", e)
			}
		case EventSkipped:
			if e.Cause != "broken" {
				t.Errorf("skipped %+v", e)
			}
		case EventDone:
			if e.Task == "flaky" && e.Attempt != 2 {
				t.Errorf("done %+v", e)
			}
		}
	}
	for id, want := range map[string]string{
		"flaky":  "started retrying started done",
		"broken": "started failed",
		"user":   "skipped",
	} {
		if got := strings.Join(per[id], " "); got != want {
			t.Errorf("%s: events %q, want %q", id, got, want)
		}
	}
}

// Log durations carry their unit in the field name, and the task's logger (with
// the attempt) reaches the provider through the context.
func TestRunner_Run_LogsDurationsInMillisecondsAndPutsTheLoggerInTheContext(t *testing.T) {
	var buf bytes.Buffer
	var calls atomic.Int32
	a := fn(func(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
		zerolog.Ctx(ctx).Debug().Msg("from the provider")
		if calls.Add(1) == 1 {
			return nil, &providers.Error{Op: "GET /x", Status: 503, Retryable: true}
		}
		return nil, nil
	})
	o := opts()
	o.Log = zerolog.New(&lockedBuf{b: &buf}).Level(zerolog.DebugLevel)
	st := openStore(t, filepath.Join(t.TempDir(), "s.db"))
	if _, err := Run(context.Background(), mustGraph(t, task("a", nil, a)), st, o); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{`"retry_in_ms":`, `"took_ms":`, `{"level":"debug","task":"a","attempt":2,"message":"from the provider"}`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"retry_in":`) || strings.Contains(out, `"took":`) {
		t.Errorf("a duration without its unit:\n%s", out)
	}
}

// lockedBuf is a buffer written by several workers.
type lockedBuf struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
