package main

import (
	"testing"

	"provision/providers"
)

// Every plan section can be destroyed: its kind is a Remover (one that deletes, or
// one that says what it cannot delete).
func TestRegistry_EveryKindIsARemover(t *testing.T) {
	r := registry()
	for _, s := range r.Sections() {
		k, _ := r.Kind(s)
		if _, ok := k.(providers.Remover); !ok {
			t.Errorf("section %s: kind %T has no Delete", s, k)
		}
	}
}
