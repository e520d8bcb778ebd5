package main

import (
	"os"
	"testing"

	"gopkg.in/yaml.v3"

	"provision/state"
)

// seedState creates the state file a test's commands will use for the plan at
// planPath, with the state key key, its passphrase derived at
// state.MinKDFIterations. The file records the count and every later open (the
// commands', in this process or a child) derives the key with it: PBKDF2 at the
// default 210,000 rounds costs about 2 s per open under -race, and a test of what
// a command does with the key (seals, masks, never leaks it) needs no such cost.
// The default count itself is checked in state (TestOpen_KDFIterationsAreAParameterTheFileRecords).
func seedState(t testing.TB, planPath, statePath, key string) {
	t.Helper()
	b, err := os.ReadFile(planPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Name string `yaml:"name"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil || doc.Name == "" {
		t.Fatalf("seed state: no plan name in %s: %v", planPath, err)
	}
	st, err := state.Open(statePath, state.Options{PlanName: doc.Name, Key: key, KDFIterations: state.MinKDFIterations})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}
