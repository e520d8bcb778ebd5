package milestone

import (
	"context"

	"provision/providers"
)

var _ providers.Remover = Kind{}

// Delete implements providers.Remover: a milestone made nothing remotely, so there
// is nothing to delete.
func (Kind) Delete(context.Context, *providers.Build, *providers.Deletion) error { return nil }
