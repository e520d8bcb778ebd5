package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"provision/runner"
)

// checkRunFlags checks the numeric flags of apply (and the commands that run tasks
// like it), naming the first one at fault.
func checkRunFlags(cmd string, o runner.Options, progressEvery time.Duration) error {
	switch {
	case o.Parallel < 1:
		return cmdFlagErr(cmd, "--parallel %d: want at least 1", o.Parallel)
	case o.MaxAttempts < 1:
		return cmdFlagErr(cmd, "--max-attempts %d: want at least 1", o.MaxAttempts)
	case o.MaxFailures < 0:
		return cmdFlagErr(cmd, "--max-failures %d: want 0 (no limit) or more", o.MaxFailures)
	case o.Grace <= 0:
		return cmdFlagErr(cmd, "--grace %s: want a duration above 0", o.Grace)
	case o.BackoffBase <= 0:
		return cmdFlagErr(cmd, "--backoff %s: want a duration above 0", o.BackoffBase)
	case o.BackoffMax < o.BackoffBase:
		return cmdFlagErr(cmd, "--backoff-max %s: want at least --backoff (%s)", o.BackoffMax, o.BackoffBase)
	case progressEvery <= 0:
		return cmdFlagErr(cmd, "--progress-interval %s: want a duration above 0", progressEvery)
	case o.ThrottleTimeout <= 0:
		return cmdFlagErr(cmd, "--throttle-timeout %s: want a duration above 0", o.ThrottleTimeout)
	}
	return nil
}

// cmdFlagErr is a bad-input error about one flag of command cmd, in one line that
// ends by pointing at the command's --help.
func cmdFlagErr(cmd, format string, a ...any) error {
	return withCode(ExitBadInput, fmt.Errorf("%s: %s; see provision %s --help", cmd, fmt.Sprintf(format, a...), cmd))
}

// checkStateFlag refuses a --state file whose directory does not exist: on a resume
// a mistyped path would otherwise start a fresh state and run every task again. (The
// default state directory next to the plan is created when needed.)
func (c *common) checkStateFlag() error {
	if c.statePath == "" {
		return nil
	}
	dir := filepath.Dir(c.statePath)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c.flagErr("--state %s: directory %s does not exist (check the path: a new state file would run every task again; to start one there, create the directory first)", c.statePath, dir)
	case err != nil:
		return c.flagErr("--state %s: %v", c.statePath, err)
	case !fi.IsDir():
		return c.flagErr("--state %s: %s is not a directory", c.statePath, dir)
	}
	return nil
}
