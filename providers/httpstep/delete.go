package httpstep

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
)

var (
	_ providers.Remover   = Kind{}
	_ providers.Refresher = (*action)(nil)
)

// DeleteCall is an item's optional `delete` field: how destroy removes the object
// the item made. Path and query values may hold {NAME} placeholders, replaced by the
// task's recorded output NAME (path-escaped in the path).
type DeleteCall struct {
	Method string            `yaml:"method"`
	Path   string            `yaml:"path"`
	Query  map[string]string `yaml:"query"`
	// Gone are statuses that mean the object is gone already (default 404 and 410).
	Gone []int `yaml:"gone"`
}

var placeholderRE = regexp.MustCompile(`\{([A-Za-z0-9_.-]+)\}`)

// placeholders lists the output names a delete call needs.
func (d *DeleteCall) placeholders() []string {
	var out []string
	seen := map[string]bool{}
	texts := []string{d.Path}
	for _, v := range d.Query {
		texts = append(texts, v)
	}
	for _, t := range texts {
		for _, m := range placeholderRE.FindAllStringSubmatch(t, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				out = append(out, m[1])
			}
		}
	}
	return out
}

// checkDelete applies the delete call's defaults and validates it: a method, a
// path, statuses, and placeholders that name outputs of the item.
func checkDelete(item *plan.Item, s *Spec) []error {
	d := s.Delete
	if d == nil {
		return nil
	}
	var errs []error
	bad := func(f string, a ...any) {
		errs = append(errs, plan.Where(providers.FieldPos(item, "delete"), fmt.Errorf("%s: delete: "+f, append([]any{item.Name}, a...)...)))
	}
	if d.Method == "" {
		d.Method = http.MethodDelete
	}
	d.Method = strings.ToUpper(d.Method)
	if !methods[d.Method] {
		bad("method %q: want GET, POST, PUT, PATCH or DELETE", d.Method)
	}
	if d.Path == "" {
		bad("path: required (e.g. /v1/things/{id}, with {id} an output of the item)")
	}
	if len(d.Gone) == 0 {
		d.Gone = []int{http.StatusNotFound, http.StatusGone}
	}
	for _, c := range d.Gone {
		if c < 100 || c > 599 {
			bad("gone: %d is not an HTTP status", c)
		}
	}
	for _, name := range d.placeholders() {
		_, inOutputs := s.Outputs[name]
		inLookup := false
		if s.Lookup != nil {
			_, inLookup = s.Lookup.Outputs[name]
		}
		if !inOutputs && !inLookup {
			bad("{%s} is not an output of the item (outputs name what the answer gives)", name)
		}
	}
	return errs
}

// Delete implements providers.Remover: the item's delete call, with its {NAME}
// placeholders filled from the recorded outputs. An item without a delete call, or
// whose outputs were not recorded, is not deleted: what cannot be identified is
// never sent. In doubt, the item's lookup (when it has one) supplies the outputs.
func (Kind) Delete(ctx context.Context, b *providers.Build, d *providers.Deletion) error {
	s := &Spec{}
	var c *rest.Client
	switch {
	case d.Planned != nil:
		a, ok := d.Planned.Action.(*action)
		if !ok {
			return fmt.Errorf("%s: not an http task", d.Task.ID)
		}
		s, c = a.s, a.c
	case d.Info != nil:
		if err := providers.DecodeSpecJSON(d.Info.Spec, s); err != nil {
			return err
		}
		s.Headers = nil // masked values from the record, not the plan's: never sent
	}
	if s.Delete == nil {
		return providers.CannotDelete("the object of http item "+d.Task.ID, "the item declares no delete call: add delete: {method, path} to it, or remove the object by hand")
	}
	if c == nil {
		name := s.Endpoint
		if name == "" {
			name = d.Task.Endpoint
		}
		var err error
		c, err = providers.EndpointClient(b, plan.Pos{}, name, EndpointKind, func(ep *plan.Endpoint) (*rest.Client, error) {
			auth, err := rest.ForEndpoint(ep, b.Plan.Redactor)
			if err != nil {
				return nil, err
			}
			return rest.FromEndpoint(ep, auth)
		})
		if err != nil {
			return err
		}
	}
	outs := map[string]string{}
	for k, v := range d.Prior {
		outs[k] = v.Value
	}
	for _, name := range s.Delete.placeholders() {
		if outs[name] != "" {
			continue
		}
		if !d.InDoubt || s.Lookup == nil {
			if !d.InDoubt {
				d.Log.Info().Str("output", name).Msg("the output the delete call needs was not recorded: nothing identified, nothing deleted")
				return nil
			}
			return fmt.Errorf("delete %s: output %q was not recorded and the item has no lookup: cannot tell which object to delete", d.Task.ID, name)
		}
		a := &action{s: s, c: c}
		if err := a.parse(); err != nil {
			return err
		}
		found, louts, err := a.lookup(ctx, d.Exec)
		if err != nil {
			return fmt.Errorf("look up the object of %s before deleting it: %w", d.Task.ID, err)
		}
		if !found {
			d.Log.Info().Msg("the lookup finds no object: nothing to delete")
			return nil
		}
		for k, v := range louts {
			outs[k] = v.Value
		}
		if outs[name] == "" {
			return fmt.Errorf("delete %s: the lookup gives no output %q", d.Task.ID, name)
		}
	}
	fill := func(t string, escape bool) string {
		return placeholderRE.ReplaceAllStringFunc(t, func(m string) string {
			v := outs[m[1:len(m)-1]]
			if escape {
				return url.PathEscape(v)
			}
			return v
		})
	}
	q := map[string]string{}
	for k, v := range s.Delete.Query {
		q[k] = fill(v, false)
	}
	hdr := http.Header{}
	for k, v := range s.Headers {
		hdr.Set(k, v)
	}
	ok := []int{http.StatusOK, http.StatusAccepted, http.StatusNoContent}
	ok = append(ok, s.Delete.Gone...)
	req := &rest.Request{Method: s.Delete.Method, Path: fill(s.Delete.Path, true), Query: values(q), Header: hdr, OK: ok, Idempotent: true,
		Op: "delete " + s.Delete.Method + " " + s.Delete.Path}
	resp, err := c.Do(ctx, req)
	if err != nil {
		return err
	}
	if contains(s.Delete.Gone, resp.Status) {
		d.Log.Debug().Int("status", resp.Status).Msg("object gone already")
	}
	return nil
}

// parse compiles the output paths of a spec decoded from the record.
func (a *action) parse() error {
	compile := func(m map[string]Output) error {
		for name, o := range m {
			p, err := ParsePath(o.Path)
			if err != nil {
				return fmt.Errorf("output %s: %w", name, err)
			}
			o.path = p
			m[name] = o
		}
		return nil
	}
	if err := compile(a.s.Outputs); err != nil {
		return err
	}
	if l := a.s.Lookup; l != nil {
		if l.Outputs == nil {
			l.Outputs = a.s.Outputs
		} else if err := compile(l.Outputs); err != nil {
			return err
		}
		if len(l.Found) == 0 {
			l.Found = []int{http.StatusOK}
		}
		if l.Match != "" {
			p, err := ParsePath(l.Match)
			if err != nil {
				return err
			}
			l.match = p
		}
	}
	return nil
}

// ErrNoLookup is returned by Drift for items without a lookup: nothing can read
// their object back, so their drift is unknown.
var ErrNoLookup = errors.New("the item declares no lookup: drift cannot be checked")

// Drift implements providers.Refresher: the item's lookup, read-only; not found is
// the object missing. Fields are not compared (the item says nothing of the
// object's shape beyond its outputs).
func (a *action) Drift(ctx context.Context, x *providers.Exec) ([]providers.FieldDiff, error) {
	if a.s.Lookup == nil || a.s.Lookup.Method != http.MethodGet {
		return nil, ErrNoLookup
	}
	found, outs, err := a.lookup(ctx, x)
	if err != nil {
		return nil, err
	}
	if !found {
		return []providers.FieldDiff{providers.Missing("the object " + a.s.Lookup.Path + " finds")}, nil
	}
	var diffs []providers.FieldDiff
	for k, v := range outs {
		if prior, ok := x.Prior[k]; ok && !v.Secret && prior.Value != v.Value {
			diffs = append(diffs, providers.FieldDiff{Field: "outputs." + k, Want: prior.Value, Got: v.Value})
		}
	}
	return diffs, nil
}
