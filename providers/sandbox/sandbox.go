// Package sandbox serves fake APIs on one local listener, so that plans run end to
// end without any vendor account. It knows no vendor: extensions (one per vendor
// fake package) say which endpoint kinds they serve, mount a fake per endpoint, and,
// where a plan needs more than its endpoint URLs pointed at the sandbox, rewrite an
// endpoint (EndpointRewriter) or route the URLs of per-item servers
// (ServerRouter). Each plan endpoint gets its own fake, mounted under /<endpoint
// name>/ and configured to accept the credentials the plan gives for it. Fault
// switches apply to every fake.
package sandbox

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"provision/plan"
	"provision/providers/fault"
)

// Options configure a sandbox.
type Options struct {
	Faults fault.Config
	// TokenLifetime shortens the fakes' token and session lifetimes (0: their default).
	TokenLifetime time.Duration
	// Wrap, when set, wraps the handler that serves every fake (a benchmark counts
	// the requests in flight with it, in the same hop).
	Wrap func(http.Handler) http.Handler
}

// Fake is what every vendor fake offers the sandbox.
type Fake interface {
	http.Handler
	// Injector returns the fake's fault switches.
	Injector() *fault.Injector
}

// Reporter is implemented by fakes that can describe what they hold (objects,
// duplicates, orphans) for GET /_sandbox/report.
type Reporter interface {
	Report() any
}

// Extension serves the fakes of some endpoint kinds.
type Extension interface {
	// Kinds lists the endpoint kinds the extension serves; no two extensions of a
	// sandbox may serve the same kind.
	Kinds() []string
	// Mount creates (or reuses) the fake for an endpoint and returns it; base is the
	// URL the endpoint is served at. It may mount more handlers (Sandbox.Handle).
	Mount(s *Sandbox, ep *plan.Endpoint, base string) (Fake, error)
}

// EndpointRewriter is implemented by extensions whose endpoints need more than
// their URL pointed at the sandbox, e.g. a token URL on another host. Rewrite is
// called after ep.URL was set to the sandbox URL of the endpoint (and its TLS
// options dropped), also when the sandbox runs in another process
// (Rewrite with the same extensions).
type EndpointRewriter interface {
	Rewrite(ep *plan.Endpoint)
}

// ServerRouter is implemented by extensions whose fakes also play per-item servers:
// servers whose URLs come from item fields, not from endpoints. ServerURL maps such
// a URL to where a sandbox served at base plays it; ok is false for a URL the
// extension does not serve.
type ServerRouter interface {
	ServerURL(base, raw string) (url string, ok bool)
}

// Rewrite points every endpoint of p at a sandbox served at base: endpoint NAME is
// served at base/NAME. TLS options are dropped (the sandbox speaks plain HTTP on
// loopback); then the extension serving each endpoint's kind may rewrite it further
// (EndpointRewriter).
func Rewrite(p *plan.Plan, base string, ext ...Extension) {
	base = strings.TrimRight(base, "/")
	for _, name := range p.EndpointOrder {
		ep := p.Endpoints[name]
		ep.URL = base + "/" + name
		ep.TLS = plan.TLS{}
		if rw, ok := extensionFor(ext, ep.Kind).(EndpointRewriter); ok {
			rw.Rewrite(ep)
		}
	}
}

// ServerURL returns the mapping of per-item server URLs to a sandbox served at
// base: the first extension that routes a URL (ServerRouter) says where; a URL no
// extension routes is left as it is.
func ServerURL(base string, ext ...Extension) func(string) string {
	base = strings.TrimRight(base, "/")
	var routers []ServerRouter
	for _, e := range ext {
		if r, ok := e.(ServerRouter); ok {
			routers = append(routers, r)
		}
	}
	return func(raw string) string {
		for _, r := range routers {
			if u, ok := r.ServerURL(base, raw); ok {
				return u
			}
		}
		return raw
	}
}

// extensionFor returns the extension that serves kind, or nil.
func extensionFor(ext []Extension, kind string) Extension {
	for _, e := range ext {
		if slices.Contains(e.Kinds(), kind) {
			return e
		}
	}
	return nil
}

// Sandbox is a set of running fakes. Safe for concurrent use.
type Sandbox struct {
	opts  Options
	mux   *http.ServeMux
	ln    net.Listener
	srv   *http.Server
	base  string
	mu    sync.Mutex
	fakes map[string]Fake // by endpoint name
	kinds map[string]string
	ext   []Extension
}

// Start listens on addr ("127.0.0.1:0" for any free port) and serves.
func Start(addr string, o Options, ext ...Extension) (*Sandbox, error) {
	served := map[string]bool{}
	for _, e := range ext {
		for _, k := range e.Kinds() {
			if served[k] {
				return nil, fmt.Errorf("sandbox: two extensions serve endpoint kind %q", k)
			}
			served[k] = true
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox: listen %s: %w", addr, err)
	}
	s := &Sandbox{opts: o, mux: http.NewServeMux(), ln: ln, fakes: map[string]Fake{}, kinds: map[string]string{}, ext: ext}
	s.base = "http://" + ln.Addr().String()
	var h http.Handler = s.mux
	if o.Wrap != nil {
		h = o.Wrap(h)
	}
	s.srv = &http.Server{Handler: h}
	s.mux.HandleFunc("GET /_sandbox/report", s.report)
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the sandbox's base URL.
func (s *Sandbox) URL() string { return s.base }

// Options returns the sandbox options.
func (s *Sandbox) Options() Options { return s.opts }

// Handle mounts h under prefix (which must start and end with "/").
func (s *Sandbox) Handle(prefix string, h http.Handler) {
	s.mux.Handle(prefix, http.StripPrefix(strings.TrimSuffix(prefix, "/"), h))
}

// Close stops the listener.
func (s *Sandbox) Close() error { return s.srv.Close() }

// Attach points every endpoint of p at a fake, creating fakes as needed. The
// endpoints are rewritten in place (Rewrite).
func (s *Sandbox) Attach(p *plan.Plan) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range p.EndpointOrder {
		ep := p.Endpoints[name]
		base := s.base + "/" + name
		e := extensionFor(s.ext, ep.Kind)
		if e == nil {
			return fmt.Errorf("endpoint %s: the sandbox has no fake for kind %q", name, ep.Kind)
		}
		f, err := e.Mount(s, ep, base)
		if err != nil {
			return fmt.Errorf("endpoint %s: %w", name, err)
		}
		s.fakes[name] = f
		s.kinds[name] = ep.Kind
		s.Handle("/"+name+"/", f)
	}
	Rewrite(p, s.base, s.ext...)
	return nil
}

// Report returns what every fake holds, by endpoint name, plus fault counts.
func (s *Sandbox) Report() map[string]any {
	s.mu.Lock()
	out := map[string]any{}
	for name, f := range s.fakes {
		if r, ok := f.(Reporter); ok {
			out[name] = r.Report()
		}
	}
	s.mu.Unlock()
	c := s.Counts()
	out["_faults"] = map[string]int64{"requests": c.Requests, "5xx": c.Errors, "429": c.TooMany, "dropped": c.Dropped, "lost": c.Lost, "throttled": c.Throttled}
	return out
}

func (s *Sandbox) report(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.Report())
}

// SetFaults changes the fault switches of every fake.
func (s *Sandbox) SetFaults(c fault.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Faults = c
	for _, f := range s.fakes {
		f.Injector().Set(c)
	}
}

// Counts sums the injected faults of every fake.
func (s *Sandbox) Counts() fault.Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t fault.Counts
	seen := map[*fault.Injector]bool{}
	for _, f := range s.fakes {
		in := f.Injector()
		if seen[in] {
			continue
		}
		seen[in] = true
		c := in.Counts()
		t.Requests += c.Requests
		t.Errors += c.Errors
		t.TooMany += c.TooMany
		t.Dropped += c.Dropped
		t.Throttled += c.Throttled
		t.Lost += c.Lost
	}
	return t
}

// Endpoints lists "name (kind): url" lines.
func (s *Sandbox) Endpoints() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, kind := range s.kinds {
		out = append(out, fmt.Sprintf("%s (%s): %s/%s", name, kind, s.base, name))
	}
	sort.Strings(out)
	return out
}

// ServerURL maps the URLs of per-item servers to this sandbox (see ServerURL).
func (s *Sandbox) ServerURL() func(string) string { return ServerURL(s.base, s.ext...) }
