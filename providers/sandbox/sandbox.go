// Package sandbox serves the fake vendor APIs on one local listener, so that plans
// run end to end without any vendor account. Each plan endpoint gets its own fake,
// mounted under /<endpoint name>/ and configured to accept the credentials the plan
// gives for it; per-item servers (Nx servers) are served by one farm under
// /nx-servers/. Fault switches apply to every fake.
package sandbox

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"provision/plan"
	"provision/providers/fault"
	"provision/providers/httpstep/httpfake"
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

// ServersPrefix is where per-item servers (Nx servers) are served.
const ServersPrefix = "/nx-servers/"

// Rewrite points every endpoint of p at a sandbox served at base: endpoint NAME is
// served at base/NAME. TLS options are dropped (the sandbox speaks plain HTTP on
// loopback) and absolute token URLs (OpenvCloud's ItsYou.online) move to the fake.
func Rewrite(p *plan.Plan, base string) {
	base = strings.TrimRight(base, "/")
	for _, name := range p.EndpointOrder {
		ep := p.Endpoints[name]
		ep.URL = base + "/" + name
		ep.TLS = plan.TLS{}
		if ep.Kind == "openvcloud" && (strings.HasPrefix(ep.Auth.TokenURL, "http://") || strings.HasPrefix(ep.Auth.TokenURL, "https://")) {
			ep.Auth.TokenURL = ep.URL + "/v1/oauth/access_token"
		}
	}
}

// ServerURL returns the mapping of per-item server URLs (https://10.0.0.5:7001) to
// the sandbox's server farm (base/nx-servers/10.0.0.5:7001).
func ServerURL(base string) func(string) string {
	base = strings.TrimRight(base, "/")
	return func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return raw
		}
		return base + strings.TrimSuffix(ServersPrefix, "/") + "/" + u.Host + strings.TrimRight(u.Path, "/")
	}
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
	// HTTP fakes by endpoint name (for tests and reports).
	HTTP map[string]*httpfake.Server
	ext  []Extension
}

// Extension adds fakes for endpoint kinds beyond the built-in ones.
type Extension interface {
	// Kinds lists the endpoint kinds the extension serves.
	Kinds() []string
	// Mount creates (or reuses) the fake for an endpoint and returns it; base is the
	// URL the endpoint is served at. It may rewrite ep (e.g. an absolute token URL).
	Mount(s *Sandbox, ep *plan.Endpoint, base string) (Fake, error)
}

// Start listens on addr ("127.0.0.1:0" for any free port) and serves.
func Start(addr string, o Options, ext ...Extension) (*Sandbox, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox: listen %s: %w", addr, err)
	}
	s := &Sandbox{opts: o, mux: http.NewServeMux(), ln: ln, fakes: map[string]Fake{}, kinds: map[string]string{}, HTTP: map[string]*httpfake.Server{}, ext: ext}
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
// endpoints' URLs (and TLS options) are rewritten in place.
func (s *Sandbox) Attach(p *plan.Plan) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range p.EndpointOrder {
		ep := p.Endpoints[name]
		base := s.base + "/" + name
		var f Fake
		switch ep.Kind {
		case "http":
			hf := httpfake.New(httpfake.Options{ClientID: ep.Auth.ClientID, ClientSecret: ep.Auth.ClientSecret.Reveal(), Faults: s.opts.Faults})
			s.HTTP[name] = hf
			f = httpFake{hf}
			// The fake speaks /v1/... at its root: keep the plan's path prefix out.
		default:
			var err error
			for _, e := range s.ext {
				for _, k := range e.Kinds() {
					if k == ep.Kind {
						f, err = e.Mount(s, ep, base)
					}
				}
			}
			if err != nil {
				return fmt.Errorf("endpoint %s: %w", name, err)
			}
			if f == nil {
				return fmt.Errorf("endpoint %s: the sandbox has no fake for kind %q", name, ep.Kind)
			}
		}
		s.fakes[name] = f
		s.kinds[name] = ep.Kind
		s.Handle("/"+name+"/", f)
	}
	Rewrite(p, s.base)
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

type httpFake struct{ *httpfake.Server }

func (h httpFake) Injector() *fault.Injector { return h.Faults }

func (h httpFake) Report() any {
	creates := h.Creates()
	var dups []string
	for name, n := range creates {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s (created %d times)", name, n))
		}
	}
	sort.Strings(dups)
	return map[string]any{"objects": len(h.Objects()), "created_names": len(creates), "duplicates": dups}
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
