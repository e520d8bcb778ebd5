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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A second signal after the first one (which only asks for a graceful stop)
	// ends the process at once; in-flight tasks stay in doubt and reconcile on resume.
	go func() {
		<-ctx.Done()
		stop()
		second := make(chan os.Signal, 1)
		signal.Notify(second, os.Interrupt, syscall.SIGTERM)
		<-second
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
