package milestone

import "provision/plan"

// Outputs implements providers.Kind: a milestone does no remote work and has no
// outputs.
func (Kind) Outputs(*plan.Item) []string { return nil }
