// Package milestone is the `milestones` plan section: named points in the graph that
// do no remote work. They group dependencies ("all stores connected" before the
// apps roll out) and let `--only milestone-name` run one phase of a rollout.
package milestone

import (
	"context"

	"provision/plan"
	"provision/providers"
	"provision/state"
)

// Section is the plan section of this kind.
const Section = "milestones"

// Kind builds milestone tasks.
type Kind struct{}

var _ providers.Kind = Kind{}

// Kinds returns the kinds of this package.
func Kinds() []providers.Kind { return []providers.Kind{Kind{}} }

func (Kind) Section() string { return Section }

func (Kind) Doc() string {
	return `milestones: a named point in the graph that does no remote work.
  note         free text shown in the graph
  depends_on   what the milestone waits for (globs allowed: "store-*")
Items that depend on a milestone wait for everything it depends on.
destroy: nothing to delete (a milestone makes nothing remotely).`
}

// Spec of a milestone.
type Spec struct {
	Note string `yaml:"note"`
}

// Build implements providers.Kind.
func (Kind) Build(_ *providers.Build, item *plan.Item) ([]*providers.Task, error) {
	var s Spec
	if err := providers.Decode(item, &s); err != nil {
		return nil, err
	}
	deps := providers.ItemDeps(item)
	return []*providers.Task{{
		ID: item.Name, Kind: Section, Pos: item.Pos, Deps: deps, Hash: item.Hash, Refs: item.Refs,
		Action: providers.ActionFunc(func(context.Context, *providers.Exec) (state.Outputs, error) { return nil, nil }),
	}}, nil
}

var _ providers.Remover = Kind{}

// Delete implements providers.Remover: a milestone has no remote object.
func (Kind) Delete(context.Context, *providers.Build, *providers.Deletion) error { return nil }
