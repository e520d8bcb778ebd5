package providers

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"provision/plan"
)

// CheckOutputRefs checks every ${outputs.ITEM.KEY} of the plan against the outputs
// ITEM's kind declares (Kind.Outputs), so that a mistyped key fails validation at
// its position instead of failing the task at run time after its dependencies ran.
// References to unknown items are the plan's to report; they are skipped here.
func CheckOutputRefs(reg *Registry, p *plan.Plan) []error {
	var items map[string]*plan.Item
	declared := map[string][]string{}
	var errs []error
	for _, it := range p.Items {
		for _, r := range it.Refs {
			if items == nil {
				items = make(map[string]*plan.Item, len(p.Items))
				for _, t := range p.Items {
					items[t.Name] = t
				}
			}
			target, ok := items[r.Item]
			if !ok {
				continue
			}
			k, ok := reg.Kind(target.Section)
			if !ok {
				continue
			}
			names, ok := declared[target.Name]
			if !ok {
				names = k.Outputs(target)
				declared[target.Name] = names
			}
			if slices.Contains(names, r.Key) {
				continue
			}
			has := "it has no outputs"
			if len(names) > 0 {
				sorted := slices.Sorted(slices.Values(names))
				has = "its outputs: " + strings.Join(sorted, ", ")
			}
			errs = append(errs, plan.Where(r.Pos, fmt.Errorf("${outputs.%s.%s}: item %q (%s) has no output %q; %s", r.Item, r.Key, r.Item, target.Section, r.Key, has)))
		}
	}
	return errs
}

// MappingKeys returns the keys of the mapping at path in an item's fields (for kinds
// whose outputs are named in the item, such as http's outputs map), in order.
func MappingKeys(item *plan.Item, path ...any) []string {
	n := FieldNode(item.Fields(), path...)
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	out := make([]string, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, n.Content[i].Value)
	}
	return out
}
