package providers

import (
	"fmt"
	"reflect"

	"provision/plan"
)

// EndpointDeclarer is implemented by kinds whose items talk to plan endpoints. It
// declares the endpoint kinds they use and the auth keys each accepts: the plan
// accepts an endpoint only of a kind some registered Kind declares, and its auth
// only with the keys that kind declares (plan.LoadOptions.EndpointKinds). Kinds of
// one vendor return the same declaration.
type EndpointDeclarer interface {
	EndpointKinds() []plan.EndpointKind
}

// EndpointKinds returns the endpoint kinds the registered kinds declare, each once,
// in the order of registration (for plan.LoadOptions.EndpointKinds).
func (r *Registry) EndpointKinds() []plan.EndpointKind {
	var out []plan.EndpointKind
	seen := map[string]bool{}
	for _, s := range r.order {
		d, ok := r.kinds[s].(EndpointDeclarer)
		if !ok {
			continue
		}
		for _, ek := range d.EndpointKinds() {
			if !seen[ek.Name] {
				seen[ek.Name] = true
				out = append(out, ek)
			}
		}
	}
	return out
}

// EndpointKind returns the declaration of an endpoint kind.
func (r *Registry) EndpointKind(name string) (plan.EndpointKind, bool) {
	for _, ek := range r.EndpointKinds() {
		if ek.Name == name {
			return ek, true
		}
	}
	return plan.EndpointKind{}, false
}

// LoadOptions returns plan options with the registry's sections and endpoint kinds.
func (r *Registry) LoadOptions() plan.LoadOptions {
	return plan.LoadOptions{Sections: r.Sections(), EndpointKinds: r.EndpointKinds()}
}

// checkEndpointKinds panics when a declaration is invalid or when two kinds declare
// the same endpoint kind differently.
func (r *Registry) checkEndpointKinds() {
	by := map[string]plan.EndpointKind{}
	for _, s := range r.order {
		d, ok := r.kinds[s].(EndpointDeclarer)
		if !ok {
			continue
		}
		for _, ek := range d.EndpointKinds() {
			if err := ek.Check(); err != nil {
				panic(fmt.Sprintf("providers: section %s: %v", s, err))
			}
			if prev, ok := by[ek.Name]; ok && !reflect.DeepEqual(prev, ek) {
				panic(fmt.Sprintf("providers: section %s declares endpoint kind %s unlike an earlier section", s, ek.Name))
			}
			by[ek.Name] = ek
		}
	}
}
