package edgefake

import (
	"provision/plan"
	"provision/providers/fault"
	"provision/providers/sandbox"
)

// Extension serves edge endpoints in the sandbox: one fake per endpoint whose system
// administrator password is the endpoint's, seeded with DemoClusters() (the clusters
// and nodes examples/plans/edge.yaml labels), answering in the {code, msg, data}
// envelope.
type Extension struct{}

var _ sandbox.Extension = Extension{}

// Kinds implements sandbox.Extension.
func (Extension) Kinds() []string { return []string{"edge"} }

// Mount implements sandbox.Extension.
func (Extension) Mount(s *sandbox.Sandbox, ep *plan.Endpoint, _ string) (sandbox.Fake, error) {
	o := s.Options()
	return fake{New(Options{AdminPassword: ep.Auth.Password.Reveal(), Clusters: DemoClusters(), Faults: o.Faults,
		TokenLifetime: o.TokenLifetime, Envelope: true})}, nil
}

// fake adapts a Server to sandbox.Fake (and sandbox.Reporter through Server.Report).
type fake struct{ *Server }

func (f fake) Injector() *fault.Injector { return f.Faults }
