// Command provision runs a provisioning plan: validate, preview (plan), apply with
// checkpoints and resume, report (status) and draw (graph).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first SIGINT/SIGTERM asks for a graceful stop (ctx ends); a second one ends
	// the process at once, in-flight tasks staying in doubt until the next run. One
	// channel catches both from the start: signal.NotifyContext would have to be
	// stopped and replaced between them, leaving a moment in which the second signal
	// gets its default action.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-sigs
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "provision: second signal: exiting now; in-flight tasks stay in doubt and are reconciled on the next run")
		os.Exit(ExitInterrupted)
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// Exit codes.
const (
	ExitOK          = 0 // every selected task is done
	ExitFailed      = 1 // some tasks failed, were skipped or are in doubt
	ExitBadInput    = 2 // bad plan, flags or state file; nothing was changed
	ExitInterrupted = 3 // stopped by a signal; rerun the same command to resume
)

// exitError carries an exit code; its message (if any) is printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// errQuiet is an exit code whose explanation was already printed.
func errQuiet(code int) error { return &exitError{code: code} }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "provision: "+ee.err.Error())
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "provision: "+err.Error())
	return ExitFailed
}
