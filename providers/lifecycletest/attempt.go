package lifecycletest

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// Attempt says how the runner calls one Apply: which attempt, in doubt or changed,
// with which checkpointed outputs. The zero value is a first attempt.
type Attempt struct {
	Attempt          int // 0 means 1
	InDoubt, Changed bool
	InDoubtSince     time.Time // when the attempt in doubt started
	Prior            state.Outputs
	Log              zerolog.Logger
	Ctx              context.Context // nil means context.Background()
	// OnSave, when set, sees every checkpoint.
	OnSave func(state.Outputs)
}

// Exec is one Exec as the runner makes it for task (a copy of a.Prior, a fresh
// redactor, no checkpoint function).
func Exec(task *providers.Task, a Attempt) *providers.Exec {
	if a.Attempt == 0 {
		a.Attempt = 1
	}
	prior := state.Outputs{}
	for k, v := range a.Prior {
		prior[k] = v
	}
	return &providers.Exec{Task: task, Attempt: a.Attempt, InDoubt: a.InDoubt, InDoubtSince: a.InDoubtSince, Changed: a.Changed, Prior: prior, Log: a.Log, Redactor: plan.NewRedactor()}
}

// ApplyOnce is one Apply of task with a fresh Exec. It returns the outputs, the
// checkpoints merged over a.Prior, and the error.
func ApplyOnce(t testing.TB, task *providers.Task, a Attempt) (out, saved state.Outputs, err error) {
	t.Helper()
	saved = state.Outputs{}
	for k, v := range a.Prior {
		saved[k] = v
	}
	ctx := a.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	var mu sync.Mutex
	x := Exec(task, a)
	x.CheckpointFunc = func(o state.Outputs) error {
		mu.Lock()
		for k, v := range o {
			saved[k] = v
		}
		mu.Unlock()
		if a.OnSave != nil {
			a.OnSave(o)
		}
		return nil
	}
	out, err = task.Action.Apply(ctx, x)
	return out, saved, err
}

// CopyFile copies a file (a state file, to run again from a saved point).
func CopyFile(t testing.TB, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// Clock is real time plus an offset that Jump moves forward: a fake's clock for
// tests that let credentials or jobs expire without waiting. Safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the time the clock shows.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Jump moves the clock forward by d.
func (c *Clock) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// ManualClock is a clock that moves only when told (Add): for fakes and sessions
// that must see tokens expire at an exact moment. Safe for concurrent use.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock returns a clock showing start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{t: start} }

// Now is the time the clock shows.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward by d.
func (c *ManualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// CheckBuildError fails t unless err is a Build error that contains every text of
// want, carries a position in file (e.g. "p.yaml:") and holds none of secrets.
func CheckBuildError(t testing.TB, err error, file string, want []string, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if !strings.Contains(err.Error(), file+":") {
		t.Errorf("error has no position: %v", err)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Error("secret in error")
		}
	}
}
