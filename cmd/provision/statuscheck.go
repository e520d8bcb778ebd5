package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"provision/state"
)

// statusCheckFlag registers status --check.
func statusCheckFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("check", false, "check each state file thoroughly (bbolt's page tree, every record) instead of reporting; exit 2 naming the problems")
}

// checkStates is status --check: every state file is checked read-only (state.Check:
// the page tree with bounds-checked reads, then bbolt's own tx.Check, the provision
// meta data and every record). A clean file prints one line; a damaged, locked or
// missing one is an error naming the file and its problems (exit 2). The files are
// never written.
func checkStates(states []string, stdout io.Writer) error {
	var errs []error
	for _, sp := range states {
		if err := state.Check(sp); err != nil {
			errs = append(errs, stateError(sp, err))
			continue
		}
		fmt.Fprintf(stdout, "state %s: no problems found\n", sp)
	}
	if len(errs) > 0 {
		return withCode(ExitBadInput, fmt.Errorf("status --check: %d of %d state files have problems:\n%w", len(errs), len(states), errors.Join(errs...)))
	}
	return nil
}
