package nxfake

import (
	"net/http"
	"sync"

	"provision/plan"
	"provision/providers/fault"
	"provision/providers/sandbox"
)

// Extension serves nx-cloud endpoints (one World shared by all of them, so that
// servers bound through any endpoint reach the same cloud) and the server farm.
type Extension struct {
	once  sync.Once
	World *World
}

var _ sandbox.Extension = (*Extension)(nil)

// Kinds implements sandbox.Extension.
func (e *Extension) Kinds() []string { return []string{"nx-cloud"} }

// Mount implements sandbox.Extension: the endpoint's account is added to the cloud.
func (e *Extension) Mount(s *sandbox.Sandbox, ep *plan.Endpoint, _ string) (sandbox.Fake, error) {
	e.once.Do(func() {
		e.World = New(Options{Faults: s.Options().Faults, TokenLifetime: s.Options().TokenLifetime})
		s.Handle(sandbox.ServersPrefix, e.World.Farm())
	})
	e.World.AddAccount(ep.Auth.Username, ep.Auth.Password.Reveal())
	return cloudFake{e.World}, nil
}

type cloudFake struct{ w *World }

func (c cloudFake) ServeHTTP(rw http.ResponseWriter, r *http.Request) { c.w.Cloud().ServeHTTP(rw, r) }
func (c cloudFake) Injector() *fault.Injector                         { return c.w.Faults }
func (c cloudFake) Report() any                                       { return c.w.Report() }
