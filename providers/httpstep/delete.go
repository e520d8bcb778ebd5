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

// Delete is the call that deletes an item's object (destroy, apply --prune).
type Delete struct {
	Method string            `yaml:"method"`
	Path   string            `yaml:"path"`
	Query  map[string]string `yaml:"query"`
	// Gone are statuses that mean "already deleted" (default 404 and 410).
	Gone []int `yaml:"gone"`
}

// checkDelete fills the delete call's defaults and reports its mistakes.
func checkDelete(s *Spec, p *providers.Problems) {
	d := s.Delete
	if d == nil {
		return
	}
	if d.Method == "" {
		d.Method = http.MethodDelete
	}
	checkMethod(p, providers.Path{"delete", "method"}, &d.Method)
	if d.Path == "" {
		p.Add(providers.Path{"delete", "path"}, "required")
	}
	if len(d.Gone) == 0 {
		d.Gone = []int{http.StatusNotFound, http.StatusGone}
	}
	checkStatuses(p, providers.Path{"delete", "gone"}, d.Gone)
	for _, name := range placeholders(d.Path) {
		if _, ok := s.Outputs[name]; !ok {
			p.Add(providers.Path{"delete", "path"}, "{%s} names no output of the item (outputs: %s)", name, strings.Join(sortedNames(s.Outputs), ", "))
		}
	}
}

// endpointClient is the shared client of an http endpoint.
func endpointClient(b *providers.Build, pos plan.Pos, name string) (*rest.Client, error) {
	return providers.EndpointClient(b, pos, name, EndpointKind, clientMaker(b))
}

// clientMaker makes the shared client of an http endpoint.
func clientMaker(b *providers.Build) func(*plan.Endpoint) (*rest.Client, error) {
	return func(ep *plan.Endpoint) (*rest.Client, error) {
		auth, err := rest.ForEndpoint(ep, b.Plan.Redactor)
		if err != nil {
			return nil, err
		}
		return rest.FromEndpoint(ep, auth)
	}
}

var _ providers.Remover = Kind{}

// Delete implements providers.Remover with the item's delete call; an item without
// one keeps its object (ErrCannotDelete). An object whose id was never recorded (a
// create in doubt) is found with the item's lookup first; not found means nothing
// to delete.
func (Kind) Delete(ctx context.Context, b *providers.Build, d *providers.Deletion) error {
	var s *Spec
	if d.Planned != nil {
		s, _ = d.Planned.Spec.(*Spec)
	}
	if s == nil && d.Info != nil && len(d.Info.Spec) > 0 {
		s = new(Spec)
		if err := yaml.Unmarshal(d.Info.Spec, s); err != nil { // JSON is YAML
			return fmt.Errorf("recorded spec of %s: %w", d.Task.ID, err)
		}
		compile(s)
	}
	if s == nil {
		return fmt.Errorf("no recorded spec: %w", providers.ErrCannotDelete)
	}
	if s.Delete == nil {
		return fmt.Errorf("the item declares no delete call: %w", providers.ErrCannotDelete)
	}
	c, err := endpointClient(b, d.Task.Pos, s.Endpoint)
	if err != nil {
		return err
	}
	outs := d.Prior
	if missing := missingOutputs(s.Delete.Path, outs); len(missing) > 0 {
		if !d.InDoubt && d.Info == nil {
			// Never done and not in doubt: the create never happened, and an object
			// the lookup finds is not this task's.
			d.Log.Debug().Msg("delete: the task never made its object: nothing to delete")
			return nil
		}
		if s.Lookup == nil {
			return fmt.Errorf("output %s was never recorded and the item has no lookup; check by hand: %w", missing[0], providers.ErrInDoubt)
		}
		a := &action{s: s, c: c}
		found, looked, err := a.lookup(ctx, d.Exec)
		if err != nil {
			return err
		}
		if !found {
			d.Log.Debug().Msg("delete: the lookup finds no object: nothing to delete")
			return nil
		}
		outs = looked
	}
	ok := append([]int{}, s.Delete.Gone...)
	for st := 200; st < 300; st++ {
		ok = append(ok, st)
	}
	_, err = c.Do(ctx, &rest.Request{Method: s.Delete.Method, Path: fillPlaceholders(s.Delete.Path, outs), Query: values(s.Delete.Query),
		OK: ok, Idempotent: true, Op: "delete " + s.Delete.Method + " " + s.Delete.Path})
	return err
}

// compile parses the output and match paths of a spec decoded from a record (Build
// does this for planned specs) and fills the lookup's defaults.
func compile(s *Spec) {
	parse := func(m map[string]Output) {
		for n, o := range m {
			o.path, _ = ParsePath(o.Path)
			m[n] = o
		}
	}
	parse(s.Outputs)
	if l := s.Lookup; l != nil {
		if l.Method == "" {
			l.Method = http.MethodGet
		}
		if len(l.Found) == 0 {
			l.Found = []int{http.StatusOK}
		}
		if l.Match != "" {
			l.match, _ = ParsePath(l.Match)
		}
		if l.Outputs == nil {
			l.Outputs = s.Outputs
		} else {
			parse(l.Outputs)
		}
	}
}

// placeholders returns the NAMEs of {NAME} in a delete path.
func placeholders(path string) []string {
	var out []string
	for rest := path; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, rest[i+1:i+j])
		rest = rest[i+j+1:]
	}
}

func missingOutputs(path string, outs state.Outputs) []string {
	var missing []string
	for _, n := range placeholders(path) {
		if _, ok := outs[n]; !ok {
			missing = append(missing, n)
		}
	}
	return missing
}

func fillPlaceholders(path string, outs state.Outputs) string {
	for _, n := range placeholders(path) {
		path = strings.ReplaceAll(path, "{"+n+"}", url.PathEscape(outs[n].Value))
	}
	return path
}

func sortedNames(m map[string]Output) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var _ providers.Refresher = (*action)(nil)

// Drift implements providers.Refresher for items with a lookup: an object the lookup
// no longer finds is reported missing. The fields of a free-form body are not
// compared (the answer's shape is the API's own).
func (a *action) Drift(ctx context.Context, x *providers.Exec) ([]providers.FieldDiff, error) {
	if a.s.Lookup == nil {
		return nil, nil
	}
	found, _, err := a.lookup(ctx, x)
	if err != nil {
		return nil, err
	}
	if !found {
		return []providers.FieldDiff{{Field: "", Want: "(exists)", Got: "(missing)"}}, nil
	}
	return nil, nil
}
