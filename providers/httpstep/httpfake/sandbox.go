package httpfake

import (
	"fmt"
	"sort"

	"provision/plan"
	"provision/providers/fault"
	"provision/providers/sandbox"
)

// Extension serves http endpoints in the sandbox: one Server per endpoint, requiring
// the endpoint's client credentials when it has a client_id. The Server speaks
// /v1/... at its root, so a plan's URL path prefix stays out.
type Extension struct{}

var _ sandbox.Extension = Extension{}

// Kinds implements sandbox.Extension.
func (Extension) Kinds() []string { return []string{"http"} }

// Mount implements sandbox.Extension.
func (Extension) Mount(s *sandbox.Sandbox, ep *plan.Endpoint, _ string) (sandbox.Fake, error) {
	return fake{New(Options{ClientID: ep.Auth.ClientID, ClientSecret: ep.Auth.ClientSecret.Reveal(), Faults: s.Options().Faults})}, nil
}

// fake adapts a Server to sandbox.Fake and sandbox.Reporter.
type fake struct{ *Server }

func (f fake) Injector() *fault.Injector { return f.Faults }

// Report says how many objects the fake holds and which names were created more
// than once.
func (f fake) Report() any {
	creates := f.Creates()
	var dups []string
	for name, n := range creates {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s (created %d times)", name, n))
		}
	}
	sort.Strings(dups)
	return map[string]any{"objects": len(f.Objects()), "created_names": len(creates), "duplicates": dups}
}
