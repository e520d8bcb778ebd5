package httpstep

import (
	"provision/plan"
	"provision/providers"
)

// Outputs implements providers.Kind: the item names its outputs, in outputs and in
// lookup.outputs (the outputs of an object found by the lookup).
func (Kind) Outputs(item *plan.Item) []string {
	return append(providers.MappingKeys(item, "outputs"), providers.MappingKeys(item, "lookup", "outputs")...)
}
