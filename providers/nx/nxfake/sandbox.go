package nxfake

import (
	"net/http"
	"sync"

	"provision/plan"
	"provision/providers/fault"
	"provision/providers/sandbox"
)

// Extension serves nx-cloud endpoints for the sandbox: one World shared by all of
// them (so servers bound through any endpoint reach the same cloud), its farm
// mounted at sandbox.ServersPrefix (the farm sees /{serverKey}/rest/v3/...). Every
// endpoint's account is added to the cloud with the password the plan gives.
type Extension struct {
	// PageSize, when set, is the page size of the partners API's lists (Options.PageSize).
	PageSize int

	once  sync.Once
	World *World
}

var _ sandbox.Extension = (*Extension)(nil)

// Kinds implements sandbox.Extension.
func (e *Extension) Kinds() []string { return []string{"nx-cloud"} }

// Mount implements sandbox.Extension.
func (e *Extension) Mount(s *sandbox.Sandbox, ep *plan.Endpoint, _ string) (sandbox.Fake, error) {
	e.once.Do(func() {
		o := s.Options()
		e.World = New(Options{Faults: o.Faults, TokenLifetime: o.TokenLifetime, SessionLifetime: o.TokenLifetime, PageSize: e.PageSize})
		s.Handle(sandbox.ServersPrefix, e.World.Farm())
	})
	e.World.AddAccount(ep.Auth.Username, ep.Auth.Password.Reveal())
	return cloudFake{e.World}, nil
}

type cloudFake struct{ w *World }

func (c cloudFake) ServeHTTP(rw http.ResponseWriter, r *http.Request) { c.w.Cloud().ServeHTTP(rw, r) }

// Injector is the world's injector: one for the cloud and the farm, so the sandbox's
// fault switches reach both.
func (c cloudFake) Injector() *fault.Injector { return c.w.Faults }
func (c cloudFake) Report() any               { return c.w.Report() }
