package plan

// FindCycle returns one dependency cycle as a path [a b c a] (a depends on b, b on c,
// c on a), or nil if there is none. deps(id) lists what id depends on; ids it names
// that are not in ids are visited too. The search is iterative (no recursion, whatever
// the depth of the graph) and deterministic: ids in order, each one's deps in order.
func FindCycle(ids []string, deps func(id string) []string) []string {
	const done = -1
	// mark[id]: 0 not seen, done, or 1+ its index in stack while it is on it.
	mark := make(map[string]int, len(ids))
	type frame struct {
		id   string
		deps []string
		next int
	}
	var stack []frame
	for _, start := range ids {
		if mark[start] != 0 {
			continue
		}
		mark[start] = 1
		stack = append(stack[:0], frame{id: start, deps: deps(start)})
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next == len(top.deps) {
				mark[top.id] = done
				stack = stack[:len(stack)-1]
				continue
			}
			d := top.deps[top.next]
			top.next++
			switch m := mark[d]; {
			case m == done:
			case m > 0:
				cycle := make([]string, 0, len(stack)-m+2)
				for _, f := range stack[m-1:] {
					cycle = append(cycle, f.id)
				}
				return append(cycle, d)
			default:
				stack = append(stack, frame{id: d, deps: deps(d)})
				mark[d] = len(stack)
			}
		}
	}
	return nil
}
