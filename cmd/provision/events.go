package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/runner"
)

// eventLog writes apply --events FILE: one JSON line per task event, appended (a
// rerun adds to the same trail), each line passed through the plan's redactor.
// A write error is logged once and ends the trail; the run goes on.
type eventLog struct {
	mu     sync.Mutex
	f      *os.File
	w      io.Writer
	plan   string
	log    zerolog.Logger
	failed bool
}

func openEventLog(path, planName string, red *plan.Redactor, log zerolog.Logger) (*eventLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, withCode(ExitBadInput, fmt.Errorf("--events %s: %v", path, err))
	}
	return &eventLog{f: f, w: red.Writer(f), plan: planName, log: log}, nil
}

// write records one event (runner.Options.Events).
func (el *eventLog) write(e runner.Event) {
	el.mu.Lock()
	defer el.mu.Unlock()
	if el.failed {
		return
	}
	b, err := json.Marshal(eventJSONOf(el.plan, e))
	if err == nil {
		_, err = el.w.Write(append(b, '\n'))
	}
	if err != nil {
		el.failed = true
		el.log.Warn().Str("error", err.Error()).Msg("--events: cannot write the event file; no more events are written")
	}
}

func (el *eventLog) Close() error {
	if el == nil {
		return nil
	}
	return el.f.Close()
}
