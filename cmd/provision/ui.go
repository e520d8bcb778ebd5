package main

// apply --ui ADDR: a read-only live page of the run, updated by server-sent events.

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"provision/plan"
	"provision/providers/rest"
	"provision/runner"
)

//go:embed ui.html
var uiPage []byte

// uiState is what the live page shows: the progress counters, the sections, the
// rate over time, failures and tasks in doubt with their last errors. Safe for
// concurrent use.
type uiState struct {
	mu       sync.Mutex
	plan     string
	started  time.Time
	p        *runner.Progress
	live     *liveStats
	red      *plan.Redactor
	win      rateWindow
	history  []ratePoint
	failures map[string]failure
	lastErr  map[string]string // last error per task (for those in doubt)
	// rates, when set, gives the endpoints' rates in force and throttled answers.
	rates func() []rest.RateStats
}

type ratePoint struct {
	AtMS int64   `json:"at_ms"` // since the start
	Rate float64 `json:"rate"`
}

// uiSnapshot is the JSON the page receives (docs/json.md vocabulary).
type uiSnapshot struct {
	SchemaVersion int              `json:"schema_version"`
	Plan          string           `json:"plan"`
	StartedAt     time.Time        `json:"started_at,omitzero"`
	ElapsedMS     int64            `json:"elapsed_ms"`
	Total         int64            `json:"total"`
	UpToDate      int64            `json:"up_to_date"`
	Applied       int64            `json:"applied"`
	Failed        int64            `json:"failed"`
	Skipped       int64            `json:"skipped"`
	Running       int64            `json:"running"`
	Retries       int64            `json:"retries"`
	InDoubt       int              `json:"in_doubt"`
	Rate          float64          `json:"tasks_per_second"`
	Sections      []uiSection      `json:"sections"`
	RateHistory   []ratePoint      `json:"rate_history"`
	Failures      []failure        `json:"failures"`
	InDoubtTasks  []uiDoubtTask    `json:"in_doubt_tasks"`
	Endpoints     []rest.RateStats `json:"endpoints"`
	Done          bool             `json:"done"`
}

type uiSection struct {
	Name     string `json:"name"`
	Total    int    `json:"total"`
	Finished int    `json:"finished"`
	Failed   int    `json:"failed"`
	InDoubt  int    `json:"in_doubt"`
}

type uiDoubtTask struct {
	ID    string `json:"id"`
	Error string `json:"error,omitempty"`
}

func newUIState(planName string, p *runner.Progress, live *liveStats, red *plan.Redactor, now time.Time) *uiState {
	return &uiState{plan: planName, started: now, p: p, live: live, red: red, win: rateWindow{span: rateSpan},
		failures: map[string]failure{}, lastErr: map[string]string{}}
}

// observe keeps failures and last errors (runner.Options.Events).
func (u *uiState) observe(e runner.Event) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch e.Type {
	case runner.EventFailed:
		u.failures[e.Task] = failure{ID: e.Task, Attempts: e.Attempt, Error: e.Error, FinishedAt: e.Time.UTC()}
		u.lastErr[e.Task] = e.Error
	case runner.EventRetrying:
		u.lastErr[e.Task] = e.Error
	case runner.EventDone:
		delete(u.lastErr, e.Task)
	}
}

// sample adds a point to the rate history (once a second).
func (u *uiState) sample(now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.win.add(now, u.p.Done.Load()+u.p.Failed.Load())
	u.history = append(u.history, ratePoint{AtMS: now.Sub(u.started).Milliseconds(), Rate: u.win.rate()})
	if len(u.history) > 3600 { // an hour at one point a second, then every other point
		h := u.history[:0]
		for i := 0; i < len(u.history); i += 2 {
			h = append(h, u.history[i])
		}
		u.history = h
	}
}

func (u *uiState) snapshot(now time.Time, done bool) uiSnapshot {
	secs := u.live.snapshot()
	doubt := u.live.inDoubtTasks()
	u.mu.Lock()
	defer u.mu.Unlock()
	s := uiSnapshot{SchemaVersion: jsonSchemaVersion, Plan: u.plan, StartedAt: u.started.UTC(), ElapsedMS: now.Sub(u.started).Milliseconds(),
		Total: u.p.Total.Load(), UpToDate: u.p.UpToDate.Load(), Applied: u.p.Done.Load(), Failed: u.p.Failed.Load(),
		Skipped: u.p.Skipped.Load(), Running: u.p.Running.Load(), Retries: u.p.Retries.Load(), Rate: u.win.rate(),
		Sections: []uiSection{}, RateHistory: append([]ratePoint{}, u.history...), Failures: []failure{}, InDoubtTasks: []uiDoubtTask{},
		Endpoints: []rest.RateStats{}, Done: done}
	if u.rates != nil {
		s.Endpoints = nonNil(u.rates())
	}
	for _, sc := range secs {
		s.Sections = append(s.Sections, uiSection{Name: sc.name, Total: sc.total, Finished: sc.finished(), Failed: sc.failed, InDoubt: sc.inDoubt})
		s.InDoubt += sc.inDoubt
	}
	for _, id := range sortedKeys(u.failures) {
		s.Failures = append(s.Failures, u.failures[id])
	}
	for _, id := range doubt {
		s.InDoubtTasks = append(s.InDoubtTasks, uiDoubtTask{ID: id, Error: u.lastErr[id]})
	}
	return s
}

// uiServer serves the live page.
type uiServer struct {
	u    *uiState
	srv  *http.Server
	ln   net.Listener
	stop chan struct{}
	done bool
	mu   sync.Mutex
	wg   sync.WaitGroup
}

// uiAddr is where --ui ADDR listens: a port alone (":8701" or "8701") is served on
// loopback only; an address with a host is served there.
func uiAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if _, perr := net.LookupPort("tcp", addr); perr == nil {
			return net.JoinHostPort("127.0.0.1", addr), nil
		}
		return "", err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// startUI serves the page on addr and samples the rate once a second until Close.
func startUI(addr string, u *uiState) (*uiServer, error) {
	a, err := uiAddr(addr)
	if err != nil {
		return nil, cmdFlagErr("apply", "--ui %q: want [HOST]:PORT (a port alone is served on loopback only)", addr)
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		return nil, cmdFlagErr("apply", "--ui %s: %v", addr, err)
	}
	s := &uiServer{u: u, ln: ln, stop: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
		w.Write(uiPage)
	})
	mux.HandleFunc("GET /snapshot.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.snapshot())
	})
	mux.HandleFunc("GET /events", s.events)
	s.srv = &http.Server{Handler: readOnly(mux), ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(ln)
	}()
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		u.sample(time.Now())
		for {
			select {
			case <-s.stop:
				return
			case now := <-t.C:
				u.sample(now)
			}
		}
	}()
	return s, nil
}

// readOnly refuses every method but GET and HEAD: the page changes nothing.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// URL is the page's address.
func (s *uiServer) URL() string { return "http://" + s.ln.Addr().String() + "/" }

func (s *uiServer) snapshot() uiSnapshot {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	return s.u.snapshot(time.Now(), done)
}

// events streams a snapshot a second as server-sent events.
func (s *uiServer) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		b, _ := json.Marshal(s.snapshot())
		if _, err := fmt.Fprintf(w, "data: %s\n\n", s.u.red.Redact(string(b))); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// finish marks the run over (the page says so on its next update).
func (s *uiServer) finish() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
}

// Close stops the server.
func (s *uiServer) Close() error {
	if s == nil {
		return nil
	}
	close(s.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// inDoubtTasks lists the tasks in doubt now, sorted.
func (ls *liveStats) inDoubtTasks() []string {
	if ls == nil {
		return nil
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var out []string
	for id, on := range ls.doubt {
		if on {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}
