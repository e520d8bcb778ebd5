package cnfake

import (
	"provision/plan"
	"provision/providers/fault"
	"provision/providers/sandbox"
)

// Extension serves cloudneeti endpoints, accepting the endpoint's credentials.
type Extension struct{}

var _ sandbox.Extension = Extension{}

// Kinds implements sandbox.Extension.
func (Extension) Kinds() []string { return []string{"cloudneeti"} }

// Mount implements sandbox.Extension.
func (Extension) Mount(s *sandbox.Sandbox, ep *plan.Endpoint, _ string) (sandbox.Fake, error) {
	a := ep.Auth
	return fake{New(Options{License: a.LicenseID, SubscriptionKey: a.APIKey.Reveal(), AppID: a.ClientID, Secret: a.ClientSecret.Reveal(),
		Faults: s.Options().Faults, TokenLifetime: s.Options().TokenLifetime})}, nil
}

type fake struct{ *Server }

func (f fake) Injector() *fault.Injector { return f.Faults }
