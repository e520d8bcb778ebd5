package milestone

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"provision/providers"
)

func TestKind_Delete_HasNothingToDelete(t *testing.T) {
	d := &providers.Deletion{Exec: &providers.Exec{Task: &providers.Task{ID: "all-stores", Kind: Section}, Attempt: 1, Log: zerolog.Nop()}}
	if err := (Kind{}).Delete(context.Background(), &providers.Build{}, d); err != nil {
		t.Fatal(err)
	}
}
