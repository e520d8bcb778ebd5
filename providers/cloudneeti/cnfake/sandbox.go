package cnfake

import (
	"provision/plan"
	"provision/providers/fault"
	"provision/providers/sandbox"
)

// Extension serves cloudneeti endpoints in the sandbox: one fake per endpoint, seeded
// with DemoOptions plus the endpoint's own license, API application and subscription
// key, so any credential values work.
type Extension struct{}

var _ sandbox.Extension = Extension{}

// Kinds implements sandbox.Extension.
func (Extension) Kinds() []string { return []string{"cloudneeti"} }

// Mount implements sandbox.Extension.
func (Extension) Mount(s *sandbox.Sandbox, ep *plan.Endpoint, _ string) (sandbox.Fake, error) {
	o := DemoOptions()
	a := ep.Auth // keys as cloudneeti's endpoint kind declares them (AuthAPIKey, AuthLicenseID)
	if key := a.ExtraSecrets["api_key"]; !key.IsZero() {
		o.SubscriptionKeys = append(o.SubscriptionKeys, key.Reveal())
	}
	if lic := a.Extra["license_id"]; lic != "" && a.ClientID != "" {
		o.Licenses = append(o.Licenses, License{ID: lic, Apps: []App{{ID: a.ClientID, Secret: a.ClientSecret.Reveal()}}})
	}
	o.Faults, o.TokenLifetime = s.Options().Faults, s.Options().TokenLifetime
	return fake{New(o)}, nil
}

type fake struct{ *Server }

func (f fake) Injector() *fault.Injector { return f.Faults }
