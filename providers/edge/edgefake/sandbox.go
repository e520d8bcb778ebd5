package edgefake

import (
	"provision/plan"
	"provision/providers/fault"
	"provision/providers/sandbox"
)

// Extension serves edge endpoints: one fake per endpoint, whose system
// administrator password is the endpoint's, with the demo clusters.
type Extension struct{}

var _ sandbox.Extension = Extension{}

// Kinds implements sandbox.Extension.
func (Extension) Kinds() []string { return []string{"edge"} }

// Mount implements sandbox.Extension.
func (Extension) Mount(s *sandbox.Sandbox, ep *plan.Endpoint, _ string) (sandbox.Fake, error) {
	return fake{New(Options{AdminPassword: ep.Auth.Password.Reveal(), Faults: s.Options().Faults, TokenLifetime: s.Options().TokenLifetime, Envelope: true})}, nil
}

type fake struct{ *Server }

func (f fake) Injector() *fault.Injector { return f.Faults }
