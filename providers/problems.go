package providers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"provision/plan"
)

// Path names a field of an item: string keys and int list indexes, outermost
// first, e.g. Path{"users", 0, "email"} for users[0].email.
type Path []any

// String is the path as users write it: "users[0].email".
func (p Path) String() string {
	var b strings.Builder
	for _, step := range p {
		switch k := step.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			b.WriteString("[" + strconv.Itoa(k) + "]")
		}
	}
	return b.String()
}

// Problems collects the validation errors of one item's Build, so that all of them
// are reported at once. Each names the item and the field ("ITEM: FIELD: message")
// and carries the position of the field's value, or of the nearest enclosing field
// the item has, or of the item. Not safe for concurrent use.
type Problems struct {
	item   *plan.Item
	errs   []error
	fields *yaml.Node // the item's fields, built on the first Pos (Item.Fields builds them on each call)
}

// NewProblems returns an empty collection for item.
func NewProblems(item *plan.Item) *Problems { return &Problems{item: item} }

// Item is the item the problems are about.
func (p *Problems) Item() *plan.Item { return p.item }

// Pos is the position of the value at path, of the nearest enclosing field that
// is present, or of the item.
func (p *Problems) Pos(path Path) plan.Pos {
	if p.fields == nil {
		p.fields = p.item.Fields()
	}
	for i := len(path); i > 0; i-- {
		if n := FieldNode(p.fields, path[:i]...); n != nil && n.Line > 0 {
			return plan.NodePos(p.item.Pos.File, n)
		}
	}
	return p.item.Pos
}

// name is the item's name as errors show it, with the row it came from for items
// expanded from a foreach.
func (p *Problems) name() string {
	if p.item.Origin != "" {
		return p.item.Name + " (" + p.item.Origin + ")"
	}
	return p.item.Name
}

// Add records a problem with the field at path.
func (p *Problems) Add(path Path, format string, args ...any) {
	p.AddErr(path, fmt.Errorf(format, args...))
}

// AddErr records err as a problem with the field at path (err stays reachable
// with errors.Is and errors.As).
func (p *Problems) AddErr(path Path, err error) {
	if err == nil {
		return
	}
	p.errs = append(p.errs, plan.Where(p.Pos(path), fmt.Errorf("%s: %s: %w", p.name(), path, err)))
}

// Also records an error found elsewhere (an endpoint's problem, a decode error):
// one that carries a position already is kept as it is, any other gets the
// item's position and name.
func (p *Problems) Also(err error) {
	if err == nil {
		return
	}
	var pe *plan.PosError
	if errors.As(err, &pe) {
		p.errs = append(p.errs, err)
		return
	}
	p.errs = append(p.errs, plan.Where(p.item.Pos, fmt.Errorf("%s: %w", p.name(), err)))
}

// Len is the number of problems recorded.
func (p *Problems) Len() int { return len(p.errs) }

// Err joins the problems (nil when there are none).
func (p *Problems) Err() error { return errors.Join(p.errs...) }

// ItemTask is the task of an item that makes one task: ID and position of the item,
// its dependencies (ItemDeps with extra), references, spec and the spec's hash
// (SpecHash under the item's section), the endpoint it talks to and its action.
func ItemTask(item *plan.Item, endpoint string, spec any, a Action, extraDeps ...string) *Task {
	return &Task{
		ID: item.Name, Kind: item.Section, Pos: item.Pos, Deps: ItemDeps(item, extraDeps...), Refs: item.Refs, Spec: spec, Endpoint: endpoint,
		Hash:   SpecHash(item.Section, item.Name, spec),
		Action: a,
	}
}

// BuildOne is the Build of a kind whose items make one task on one endpoint:
// decode the item strictly into a new S, let prepare fill its defaults, record its
// problems and name its endpoint, get that endpoint's shared client (made by
// mk(endpoint, plan redactor) on first use) and return the task with the action
// act makes, or all the problems at once.
func BuildOne[S, C any](b *Build, item *plan.Item, endpointKind string,
	prepare func(s *S, p *Problems) (endpoint string),
	mk func(*plan.Endpoint, *plan.Redactor) (C, error),
	act func(s *S, c C) Action) ([]*Task, error) {
	s := new(S)
	if err := Decode(item, s); err != nil {
		return nil, err
	}
	p := NewProblems(item)
	endpoint := prepare(s, p)
	c, _ := FieldClient(b, p, Path{"endpoint"}, endpoint, endpointKind, func(ep *plan.Endpoint) (C, error) { return mk(ep, b.Plan.Redactor) })
	if err := p.Err(); err != nil {
		return nil, err
	}
	return []*Task{ItemTask(item, endpoint, s, act(s, c))}, nil
}
