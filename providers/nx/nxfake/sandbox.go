package nxfake

import (
	"net/http"
	"net/url"
	"strings"
	"sync"

	"provision/plan"
	"provision/providers/fault"
	"provision/providers/sandbox"
)

// Extension serves nx-cloud endpoints for the sandbox: one World shared by all of
// them (so servers bound through any endpoint reach the same cloud), its farm
// mounted at SandboxServersPrefix (the farm sees /{serverKey}/rest/v3/...), where
// the sandbox routes every per-item server URL (the Nx servers of nx_systems). Every
// endpoint's account is added to the cloud with the password the plan gives.
type Extension struct {
	// PageSize, when set, is the page size of the partners API's lists (Options.PageSize).
	PageSize int

	once  sync.Once
	World *World
}

// SandboxServersPrefix is where the sandbox serves the farm. It is not a vendor route:
// the sandbox's own mount point for per-item servers (their paths below it are the
// farm's, which cite their sources in farm.go).
const SandboxServersPrefix = "/nx-servers/"

var (
	_ sandbox.Extension    = (*Extension)(nil)
	_ sandbox.ServerRouter = (*Extension)(nil)
)

// Kinds implements sandbox.Extension.
func (e *Extension) Kinds() []string { return []string{"nx-cloud"} }

// Mount implements sandbox.Extension.
func (e *Extension) Mount(s *sandbox.Sandbox, ep *plan.Endpoint, _ string) (sandbox.Fake, error) {
	e.once.Do(func() {
		o := s.Options()
		e.World = New(Options{Faults: o.Faults, TokenLifetime: o.TokenLifetime, SessionLifetime: o.TokenLifetime, PageSize: e.PageSize})
		s.Handle(SandboxServersPrefix, e.World.Farm())
	})
	e.World.AddAccount(ep.Auth.Username, ep.Auth.Password.Reveal())
	return cloudFake{e.World}, nil
}

// ServerURL implements sandbox.ServerRouter: https://10.0.0.5:7001 is played at
// base/nx-servers/10.0.0.5:7001 (with the URL's path, if any). A URL without a host
// is not routed.
func (e *Extension) ServerURL(base, raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw, false
	}
	return strings.TrimRight(base, "/") + strings.TrimSuffix(SandboxServersPrefix, "/") + "/" + u.Host + strings.TrimRight(u.Path, "/"), true
}

type cloudFake struct{ w *World }

func (c cloudFake) ServeHTTP(rw http.ResponseWriter, r *http.Request) { c.w.Cloud().ServeHTTP(rw, r) }

// Injector is the world's injector: one for the cloud and the farm, so the sandbox's
// fault switches reach both.
func (c cloudFake) Injector() *fault.Injector { return c.w.Faults }
func (c cloudFake) Report() any               { return c.w.Report() }
