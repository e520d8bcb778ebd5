package ovcfake

import (
	"strings"

	"provision/plan"
	"provision/providers/fault"
	"provision/providers/sandbox"
)

// Extension serves openvcloud endpoints in the sandbox: one fake per endpoint, seeded
// with DemoOptions and accepting the endpoint's own credentials (client_id and
// client_secret, or username and password), so any secret value works. The
// ItsYou.online token endpoint is served by the same fake at
// <endpoint>/v1/oauth/access_token.
type Extension struct{}

var _ sandbox.Extension = Extension{}

// Kinds implements sandbox.Extension.
func (Extension) Kinds() []string { return []string{"openvcloud"} }

// Mount implements sandbox.Extension.
func (Extension) Mount(s *sandbox.Sandbox, ep *plan.Endpoint, base string) (sandbox.Fake, error) {
	o := DemoOptions()
	a := ep.Auth
	if a.ClientID != "" {
		o.Apps[a.ClientID] = a.ClientSecret.Reveal()
		// An empty token_url means ItsYou.online itself: serve it here instead.
		if a.TokenURL == "" || strings.HasPrefix(a.TokenURL, "http://") || strings.HasPrefix(a.TokenURL, "https://") {
			ep.Auth.TokenURL = strings.TrimRight(base, "/") + "/v1/oauth/access_token"
		}
	}
	if a.Username != "" {
		o.Users[a.Username] = a.Password.Reveal()
	}
	o.Faults, o.TokenLifetime = s.Options().Faults, s.Options().TokenLifetime
	return fake{New(o)}, nil
}

type fake struct{ *Server }

func (f fake) Injector() *fault.Injector { return f.Faults }
