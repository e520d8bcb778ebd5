// Package httpstep is the generic `http` plan section: one REST call per item, with
// expected statuses, outputs captured from the JSON answer, and an optional lookup
// that finds an existing object first, so that a non-idempotent create becomes safe
// to resume. Endpoints of kind "http" authenticate with none, basic, bearer,
// oauth2-password or oauth2-client-credentials (see rest.ForEndpoint).
package httpstep

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
	"provision/state"
)

// Section is the plan section of this kind.
const Section = "http"

// EndpointKind is the endpoint kind it talks to.
const EndpointKind = "http"

// Kind builds http tasks.
type Kind struct{}

var _ providers.Kind = Kind{}

// Kinds returns the kinds of this package.
func Kinds() []providers.Kind { return []providers.Kind{Kind{}} }

func (Kind) Section() string { return Section }

func (Kind) Doc() string { return doc }

const doc = `http: one REST call per item, against an endpoint of kind "http".
  endpoint       endpoint name (required)
  method         GET, POST, PUT, PATCH or DELETE (default POST)
  path           path under the endpoint URL, may hold a query (required); an
                 absolute URL must be on the endpoint's scheme, host and port
  query          map of query parameters
  headers        map of extra headers (values may be secret references)
  body           any YAML value, sent as JSON
  expect         list of success statuses (default: any 2xx)
  exists_status  statuses that mean "already exists": the item counts as done
                 (its outputs then come from the lookup)
  idempotent     repeating the call is harmless (default: true for GET, PUT, DELETE)
  outputs        map name -> path into the JSON answer, or {path, secret: true}
                 path syntax: a.b, list[0], list[field=value]; "" is the whole answer
  lookup         request that finds the object before creating it:
    method       default GET
    path, query  as above
    found        statuses that mean "exists" (default [200]); 404 means absent
    match        path that must exist in the answer for the object to count as found
    outputs      outputs taken from the lookup answer (default: the item's outputs)
  delete         request that deletes the object (provision destroy, apply --prune):
    method       default DELETE
    path, query  as above; {NAME} is replaced by the item's own recorded output NAME
                 (e.g. path: /v1/widgets/{id})
    gone         statuses that mean "already deleted" (default [404, 410])
  Without delete, destroy keeps the item's object and says so.
A non-idempotent call without a lookup is never repeated after an attempt whose
outcome is unknown: the task fails "in doubt" and the operator decides.`

// Output is one output definition: a path, maybe secret.
type Output struct {
	Path   string `yaml:"path"`
	Secret bool   `yaml:"secret"`
	path   Path
}

// UnmarshalYAML accepts "path" or {path, secret}.
func (o *Output) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&o.Path)
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: output: want a path or {path, secret}", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k := n.Content[i].Value; k {
		case "path":
			if err := n.Content[i+1].Decode(&o.Path); err != nil {
				return err
			}
		case "secret":
			if err := n.Content[i+1].Decode(&o.Secret); err != nil {
				return err
			}
		default:
			return fmt.Errorf("line %d: output: unknown field %q (known: path, secret)", n.Content[i].Line, k)
		}
	}
	return nil
}

// Lookup finds an existing object.
type Lookup struct {
	Method  string            `yaml:"method"`
	Path    string            `yaml:"path"`
	Query   map[string]string `yaml:"query"`
	Found   []int             `yaml:"found"`
	Match   string            `yaml:"match"`
	Outputs map[string]Output `yaml:"outputs"`
	match   Path
}

// Spec is one http item.
type Spec struct {
	Endpoint     string            `yaml:"endpoint"`
	Method       string            `yaml:"method"`
	Path         string            `yaml:"path"`
	Query        map[string]string `yaml:"query"`
	Headers      map[string]string `yaml:"headers"`
	Body         any               `yaml:"body"`
	Expect       []int             `yaml:"expect"`
	ExistsStatus []int             `yaml:"exists_status"`
	Idempotent   *bool             `yaml:"idempotent"`
	Outputs      map[string]Output `yaml:"outputs"`
	Lookup       *Lookup           `yaml:"lookup"`
	Delete       *Delete           `yaml:"delete"`
}

var methods = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true}

// Build implements providers.Kind.
func (Kind) Build(b *providers.Build, item *plan.Item) ([]*providers.Task, error) {
	var s Spec
	if err := providers.Decode(item, &s); err != nil {
		return nil, err
	}
	p := providers.NewProblems(item)
	s.checkRequest(p)
	if s.Lookup != nil {
		s.Lookup.check(p, s.Outputs)
	}
	checkDelete(&s, p)
	client, ok := providers.FieldClient(b, p, providers.Path{"endpoint"}, s.Endpoint, EndpointKind, clientMaker(b))
	if ok {
		s.checkHosts(p, client.BaseURL())
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	idem := s.Method == http.MethodGet || s.Method == http.MethodPut || s.Method == http.MethodDelete
	if s.Idempotent != nil {
		idem = *s.Idempotent
	}
	deps := providers.ItemDeps(item)
	sp := &s
	return []*providers.Task{{
		ID:       item.Name,
		Kind:     Section,
		Pos:      item.Pos,
		Deps:     deps,
		Hash:     item.Hash,
		Refs:     item.Refs,
		Spec:     sp,
		Endpoint: s.Endpoint,
		Action:   &action{s: sp, c: client, idempotent: idem},
	}}, nil
}

// checkMethod upper-cases a request's method and checks it.
func checkMethod(p *providers.Problems, path providers.Path, m *string) {
	*m = strings.ToUpper(*m)
	if !methods[*m] {
		p.Add(path, "%q: want GET, POST, PUT, PATCH or DELETE", *m)
	}
}

// checkStatuses checks a list of HTTP statuses.
func checkStatuses(p *providers.Problems, path providers.Path, l []int) {
	for _, c := range l {
		if c < 100 || c > 599 {
			p.Add(path, "%d is not an HTTP status", c)
		}
	}
}

// compileOutputs parses the paths of output definitions.
func compileOutputs(p *providers.Problems, path providers.Path, m map[string]Output) {
	for name, o := range m {
		pp, err := ParsePath(o.Path)
		if err != nil {
			p.AddErr(append(path[:len(path):len(path)], name), err)
			continue
		}
		o.path = pp
		m[name] = o
	}
}

// checkRequest fills the request's defaults and checks it and its outputs.
func (s *Spec) checkRequest(p *providers.Problems) {
	if s.Method == "" {
		s.Method = http.MethodPost
	}
	checkMethod(p, providers.Path{"method"}, &s.Method)
	if s.Path == "" {
		p.Add(providers.Path{"path"}, "required")
	}
	checkStatuses(p, providers.Path{"expect"}, s.Expect)
	checkStatuses(p, providers.Path{"exists_status"}, s.ExistsStatus)
	compileOutputs(p, providers.Path{"outputs"}, s.Outputs)
}

// check fills the lookup's defaults (its outputs default to the item's) and checks it.
func (l *Lookup) check(p *providers.Problems, outputs map[string]Output) {
	if l.Method == "" {
		l.Method = http.MethodGet
	}
	checkMethod(p, providers.Path{"lookup", "method"}, &l.Method)
	if l.Path == "" {
		p.Add(providers.Path{"lookup", "path"}, "required")
	}
	if len(l.Found) == 0 {
		l.Found = []int{http.StatusOK}
	}
	checkStatuses(p, providers.Path{"lookup", "found"}, l.Found)
	if l.Match != "" {
		m, err := ParsePath(l.Match)
		p.AddErr(providers.Path{"lookup", "match"}, err)
		l.match = m
	}
	if l.Outputs == nil {
		l.Outputs = outputs
	} else {
		compileOutputs(p, providers.Path{"lookup", "outputs"}, l.Outputs)
	}
}

// checkHosts refuses literal absolute URLs to another host than the endpoint's: its
// credentials go to its own host only. One from a reference is refused by the
// client at run time, before anything is sent.
func (s *Spec) checkHosts(p *providers.Problems, base *url.URL) {
	sameHost := func(path providers.Path, v string) {
		if !rest.IsAbsoluteURL(v) || providers.HasRef(v) {
			return
		}
		if u, err := url.Parse(v); err != nil || !rest.SameOrigin(u, base) {
			p.Add(path, "an absolute URL to another host than endpoint %s (%s://%s): the endpoint's credentials are never sent to another host; write a path on the endpoint, or add an endpoint for that host", s.Endpoint, base.Scheme, base.Host)
		}
	}
	sameHost(providers.Path{"path"}, s.Path)
	if s.Lookup != nil {
		sameHost(providers.Path{"lookup", "path"}, s.Lookup.Path)
	}
	if s.Delete != nil {
		sameHost(providers.Path{"delete", "path"}, s.Delete.Path)
	}
}

type action struct {
	s          *Spec
	c          *rest.Client
	idempotent bool
}

// Apply implements providers.Action.
func (a *action) Apply(ctx context.Context, x *providers.Exec) (state.Outputs, error) {
	s := a.s
	if l := s.Lookup; l != nil {
		found, outs, err := a.lookup(ctx, x)
		if err != nil {
			return nil, err
		}
		if found && !x.Changed {
			// Found before any attempt of ours could have made it: adopted. Found in
			// doubt: most likely our own earlier create.
			x.Adopted = !x.InDoubt
			x.Log.Debug().Bool("adopted", x.Adopted).Msg("found by lookup")
			return outs, nil
		}
	} else if !a.idempotent && x.InDoubt {
		return nil, fmt.Errorf("%s %s: %w; add a lookup to the item, or check by hand and mark it idempotent", s.Method, s.Path, providers.ErrInDoubt)
	}
	body, err := expandAny(x, s.Body)
	if err != nil {
		return nil, err
	}
	hdr := http.Header{}
	for k, v := range s.Headers {
		hdr.Set(k, v)
	}
	req := &rest.Request{Method: s.Method, Path: s.Path, Query: values(s.Query), JSON: body, Header: hdr, OK: s.Expect, Idempotent: a.idempotent}
	resp, err := a.c.Do(ctx, req)
	if err != nil {
		if st := providers.StatusOf(err); st != 0 && contains(s.ExistsStatus, st) {
			if s.Lookup != nil {
				found, outs, lerr := a.lookup(ctx, x)
				if lerr != nil {
					return nil, fmt.Errorf("lookup after %d: %w", st, lerr)
				}
				if found {
					x.Adopted = !x.InDoubt
					return outs, nil
				}
				return nil, fmt.Errorf("%s %s answered %d (exists) but the lookup does not find it", s.Method, s.Path, st)
			}
			return state.Outputs{}, nil
		}
		return nil, err
	}
	return capture(s.Outputs, resp, req.Op)
}

func (a *action) lookup(ctx context.Context, x *providers.Exec) (bool, state.Outputs, error) {
	l := a.s.Lookup
	ok := append([]int{http.StatusNotFound}, l.Found...)
	resp, err := a.c.Do(ctx, &rest.Request{Method: l.Method, Path: l.Path, Query: values(l.Query), OK: ok, Idempotent: true, Op: "lookup " + l.Method + " " + l.Path})
	if err != nil {
		return false, nil, err
	}
	if resp.Status == http.StatusNotFound && !contains(l.Found, http.StatusNotFound) {
		return false, nil, nil
	}
	if l.match.text != "" {
		v, err := decodeJSON(resp.Body)
		if err != nil {
			return false, nil, fmt.Errorf("lookup answer is not JSON: %w", err)
		}
		if _, ok := l.match.Get(v); !ok {
			return false, nil, nil
		}
	}
	outs, err := capture(l.Outputs, resp, "lookup")
	return true, outs, err
}

func capture(defs map[string]Output, resp *rest.Response, op string) (state.Outputs, error) {
	outs := state.Outputs{}
	if len(defs) == 0 {
		return outs, nil
	}
	v, err := decodeJSON(resp.Body)
	if err != nil {
		return nil, &providers.Error{Op: op, Status: resp.Status, Message: "answer is not JSON, cannot capture outputs", Err: err}
	}
	names := make([]string, 0, len(defs))
	for n := range defs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d := defs[n]
		val, ok := d.path.Get(v)
		if !ok {
			return nil, fmt.Errorf("%s: output %q: path %q not found in the answer", op, n, d.Path)
		}
		outs[n] = state.Output{Value: Text(val), Secret: d.Secret}
	}
	return outs, nil
}

// expandAny resolves output references in strings of a free-form body.
func expandAny(x *providers.Exec, v any) (any, error) {
	switch t := v.(type) {
	case string:
		return x.Expand(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			r, err := expandAny(x, e)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			r, err := expandAny(x, e)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

func values(m map[string]string) map[string][]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = []string{v}
	}
	return out
}

func contains(l []int, v int) bool {
	for _, e := range l {
		if e == v {
			return true
		}
	}
	return false
}
