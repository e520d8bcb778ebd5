package ovcfake

import (
	"provision/plan"
	"provision/providers/fault"
	"provision/providers/sandbox"
)

// Extension serves openvcloud endpoints (and their token endpoint, at
// <endpoint>/v1/oauth/access_token) with the demo account and locations.
type Extension struct{}

var _ sandbox.Extension = Extension{}

// Kinds implements sandbox.Extension.
func (Extension) Kinds() []string { return []string{"openvcloud"} }

// Mount implements sandbox.Extension: the fake accepts the endpoint's credentials.
func (Extension) Mount(s *sandbox.Sandbox, ep *plan.Endpoint, _ string) (sandbox.Fake, error) {
	o := Demo()
	o.ClientID, o.ClientSecret = ep.Auth.ClientID, ep.Auth.ClientSecret.Reveal()
	o.Username, o.Password = ep.Auth.Username, ep.Auth.Password.Reveal()
	o.Faults, o.TokenLifetime = s.Options().Faults, s.Options().TokenLifetime
	return fake{New(o)}, nil
}

type fake struct{ *Server }

func (f fake) Injector() *fault.Injector { return f.Faults }
