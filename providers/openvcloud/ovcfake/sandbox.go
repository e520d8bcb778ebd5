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

var (
	_ sandbox.Extension        = Extension{}
	_ sandbox.EndpointRewriter = Extension{}
)

// Kinds implements sandbox.Extension.
func (Extension) Kinds() []string { return []string{"openvcloud"} }

// Mount implements sandbox.Extension.
func (Extension) Mount(s *sandbox.Sandbox, ep *plan.Endpoint, _ string) (sandbox.Fake, error) {
	o := DemoOptions()
	a := ep.Auth
	if a.ClientID != "" {
		o.Apps[a.ClientID] = a.ClientSecret.Reveal()
	}
	if a.Username != "" {
		o.Users[a.Username] = a.Password.Reveal()
	}
	o.Faults, o.TokenLifetime = s.Options().Faults, s.Options().TokenLifetime
	return fake{New(o)}, nil
}

// Rewrite implements sandbox.EndpointRewriter: an absolute token_url, or none with
// client credentials (which means ItsYou.online itself), moves to the fake's own
// token route, <endpoint>/v1/oauth/access_token. A relative token_url is a path on
// the endpoint already.
func (Extension) Rewrite(ep *plan.Endpoint) {
	a := &ep.Auth
	if a.TokenURL == "" && a.ClientID != "" || strings.HasPrefix(a.TokenURL, "http://") || strings.HasPrefix(a.TokenURL, "https://") {
		a.TokenURL = strings.TrimRight(ep.URL, "/") + "/v1/oauth/access_token"
	}
}

type fake struct{ *Server }

func (f fake) Injector() *fault.Injector { return f.Faults }
