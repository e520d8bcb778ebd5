package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain removes the binary the process tests built. Under -race it also sets
// atexit_sleep_ms=0 in GORACE for the processes the tests start (they inherit it;
// freshShell passes raceEnv): the race runtime otherwise sleeps a second at every
// exit, a second per command run. A race found in a child is still reported and
// still fails its exit code; only goroutines that race after main has returned
// go unwatched.
func TestMain(m *testing.M) {
	if raceEnabled {
		if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
			os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
		}
	}
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// raceEnv is the GORACE setting of the test's child processes (none without -race),
// for commands run with an environment of their own.
func raceEnv() []string {
	if g := os.Getenv("GORACE"); raceEnabled && g != "" {
		return []string{"GORACE=" + g}
	}
	return nil
}
