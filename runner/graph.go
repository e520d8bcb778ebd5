package runner

import (
	"container/heap"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"provision/plan"
	"provision/providers"
)

// Graph is the validated task graph. Edges point from a task to what it depends on
// (DependsOn(task) lists its dependencies). A Graph is read-only after NewGraph.
type Graph struct {
	Tasks []*providers.Task
	index map[string]int32
	deps  [][]int32 // deps[i]: tasks i waits for
	users [][]int32 // users[i]: tasks waiting for i
	// referenced[i]: some task reads i's outputs, so they are kept in memory.
	referenced []bool
}

// NewGraph checks IDs, dependencies and cycles and builds the graph. All problems
// are reported at once, with the task's plan position.
func NewGraph(tasks []*providers.Task) (*Graph, error) {
	g := &Graph{Tasks: tasks, index: make(map[string]int32, len(tasks))}
	var errs []error
	// IDs are unique in a valid plan: insert them all, and only when the map came out
	// short go back and name the duplicates, each with its first occurrence.
	for i, t := range tasks {
		g.index[t.ID] = int32(i)
	}
	if len(g.index) != len(tasks) {
		clear(g.index)
		for i, t := range tasks {
			if prev, dup := g.index[t.ID]; dup {
				errs = append(errs, plan.Where(t.Pos, fmt.Errorf("duplicate task %q (first at %s)", t.ID, tasks[prev].Pos)))
				continue
			}
			g.index[t.ID] = int32(i)
		}
	}
	// Each task's resolved dependencies go into one slab (deps[i] is a capped window
	// of it), and each task's users into another sized from the counts, so that a
	// graph of n tasks costs a few allocations rather than a few per task. mark[j] ==
	// i+1 when task i already waits for j.
	n := 0
	for _, t := range tasks {
		n += len(t.Deps) + len(t.Refs)
	}
	slab := make([]int32, 0, n)
	g.deps = make([][]int32, len(tasks))
	g.referenced = make([]bool, len(tasks))
	mark := make([]int32, len(tasks))
	nusers := make([]int32, len(tasks))
	for i, t := range tasks {
		from := len(slab)
		for _, d := range t.Deps {
			j, ok := g.index[d]
			if !ok {
				errs = append(errs, plan.Where(t.Pos, fmt.Errorf("%s: depends on unknown item %q", t.ID, d)))
				continue
			}
			if int(j) == i {
				errs = append(errs, plan.Where(t.Pos, fmt.Errorf("%s: depends on itself", t.ID)))
				continue
			}
			if mark[j] == int32(i)+1 {
				continue
			}
			mark[j] = int32(i) + 1
			slab = append(slab, j)
			nusers[j]++
		}
		for _, r := range t.Refs {
			j, ok := g.index[r.Item]
			if !ok {
				errs = append(errs, plan.Where(r.Pos, fmt.Errorf("%s: output reference to unknown item %q", t.ID, r.Item)))
				continue
			}
			g.referenced[j] = true
			if mark[j] != int32(i)+1 && int(j) != i {
				mark[j] = int32(i) + 1
				slab = append(slab, j)
				nusers[j]++
			}
		}
		if len(slab) > from {
			g.deps[i] = slab[from:len(slab):len(slab)]
		}
	}
	g.users = make([][]int32, len(tasks))
	uslab := make([]int32, len(slab))
	off := 0
	for j, c := range nusers {
		if c > 0 {
			g.users[j] = uslab[off : off : off+int(c)]
			off += int(c)
		}
	}
	for i, ds := range g.deps {
		for _, j := range ds {
			g.users[j] = append(g.users[j], int32(i))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cyc := g.cycle(); cyc != nil {
		t := tasks[g.index[cyc[0]]]
		return nil, plan.Where(t.Pos, fmt.Errorf("dependency cycle: %s", strings.Join(cyc, " -> ")))
	}
	return g, nil
}

// Len is the number of tasks.
func (g *Graph) Len() int { return len(g.Tasks) }

// Task returns a task by ID.
func (g *Graph) Task(id string) (*providers.Task, bool) {
	i, ok := g.index[id]
	if !ok {
		return nil, false
	}
	return g.Tasks[i], true
}

// DependsOn returns the IDs task id waits for.
func (g *Graph) DependsOn(id string) []string {
	i, ok := g.index[id]
	if !ok {
		return nil
	}
	out := make([]string, len(g.deps[i]))
	for k, j := range g.deps[i] {
		out[k] = g.Tasks[j].ID
	}
	return out
}

// cycle finds one cycle with an iterative DFS (no recursion limits at 100k+ tasks)
// and returns it as a path that ends where it starts, or nil.
func (g *Graph) cycle() []string {
	const (
		white = 0
		grey  = 1
		black = 2
	)
	color := make([]uint8, len(g.Tasks))
	type frame struct {
		node int32
		next int
	}
	parent := make([]int32, len(g.Tasks))
	var stack []frame // reused from root to root
	for s := range g.Tasks {
		if color[s] != white {
			continue
		}
		stack = append(stack[:0], frame{node: int32(s)})
		color[s] = grey
		parent[s] = -1
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next >= len(g.deps[top.node]) {
				color[top.node] = black
				stack = stack[:len(stack)-1]
				continue
			}
			n := g.deps[top.node][top.next]
			top.next++
			switch color[n] {
			case white:
				color[n] = grey
				parent[n] = top.node
				stack = append(stack, frame{node: n})
			case grey:
				// Cycle: n -> ... -> top.node -> n.
				path := []string{g.Tasks[n].ID}
				var rev []string
				for c := top.node; c != n && c >= 0; c = parent[c] {
					rev = append(rev, g.Tasks[c].ID)
				}
				for k := len(rev) - 1; k >= 0; k-- {
					path = append(path, rev[k])
				}
				return append(path, g.Tasks[n].ID)
			}
		}
	}
	return nil
}

// Select returns the tasks matching any of the patterns, plus everything they
// depend on (transitively), like Ansible's --limit. Patterns are globs in the
// dialect of depends_on (Match): * stops at "/", and a pattern that matches an
// item also selects its sub-tasks ("store-1" selects "store-1/share/a@example.com").
// It is an error when a pattern is malformed or matches nothing.
func (g *Graph) Select(patterns []string) (map[int32]bool, error) {
	return g.closure(patterns, g.deps, nil)
}

// SelectDependents is Select the other way round: the tasks matching any pattern
// plus every task that depends on them, directly or not (what a delete of the
// matching tasks must delete first), not going on past tasks for which through
// is false (they are selected, their dependents are not). Nil patterns select
// everything (nil map).
func (g *Graph) SelectDependents(patterns []string, through func(*providers.Task) bool) (map[int32]bool, error) {
	return g.closure(patterns, g.users, through)
}

// closure selects the tasks matching any pattern and follows edges from them
// (through every task when through is nil).
func (g *Graph) closure(patterns []string, edges [][]int32, through ...func(*providers.Task) bool) (map[int32]bool, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	sel := map[int32]bool{}
	var stack []int32
	var errs []error
	for _, p := range patterns {
		if err := CheckPattern(p); err != nil {
			errs = append(errs, fmt.Errorf("--only %w", err))
			continue
		}
		n := 0
		for i, t := range g.Tasks {
			if Match(p, t.ID) {
				n++
				if !sel[int32(i)] {
					sel[int32(i)] = true
					stack = append(stack, int32(i))
				}
			}
		}
		if n == 0 {
			errs = append(errs, fmt.Errorf("--only %q matches no task", p))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if len(through) > 0 && through[0] != nil && !through[0](g.Tasks[i]) {
			continue
		}
		for _, d := range edges[i] {
			if !sel[d] {
				sel[d] = true
				stack = append(stack, d)
			}
		}
	}
	return sel, nil
}

// Match reports whether a task ID matches a pattern in the plan's one glob dialect,
// the one depends_on uses: path.Match's, where * is any run of characters but "/",
// ? one character but "/", [...] a class and \ escapes the next character. The
// pattern matches the whole ID or the ID up to one of its "/", so that an item's
// name or pattern also selects the item's sub-tasks ("store-1" and "store-1*" both
// select "store-1/share/a@example.com"; "*@example.com" does not: "*/share/*@example.com"
// does). A malformed pattern matches nothing (CheckPattern tells why).
func Match(pattern, id string) bool {
	for j := 0; j < len(id); j++ {
		if id[j] == '/' {
			if ok, _ := path.Match(pattern, id[:j]); ok {
				return true
			}
		}
	}
	ok, _ := path.Match(pattern, id)
	return ok
}

// CheckPattern returns path.ErrBadPattern, wrapped with the pattern, when pattern
// is malformed (an unclosed "[", a trailing backslash).
func CheckPattern(pattern string) error {
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("%q: %w", pattern, err)
	}
	return nil
}

// DOT writes the graph in Graphviz DOT form, edges from a task to its dependencies.
func (g *Graph) DOT(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n", name)
	kinds := map[string][]string{}
	for _, t := range g.Tasks {
		kinds[t.Kind] = append(kinds[t.Kind], t.ID)
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "  subgraph %q {\n    label=%q;\n", "cluster_"+k, k)
		for _, id := range kinds[k] {
			fmt.Fprintf(&b, "    %q;\n", id)
		}
		b.WriteString("  }\n")
	}
	for i, t := range g.Tasks {
		for _, d := range g.deps[i] {
			fmt.Fprintf(&b, "  %q -> %q;\n", t.ID, g.Tasks[d].ID)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// Order returns the task IDs in dependency order: every task after the tasks it
// depends on, ties in ID order (for a delete graph, runner.DeleteTasks: every task
// before the tasks it depended on). It is deterministic: the same graph, the same
// order.
func (g *Graph) Order() []string {
	waiting := make([]int, len(g.Tasks))
	ready := &idHeap{g: g}
	for i := range g.Tasks {
		waiting[i] = len(g.deps[i])
		if waiting[i] == 0 {
			heap.Push(ready, int32(i))
		}
	}
	out := make([]string, 0, len(g.Tasks))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int32)
		out = append(out, g.Tasks[i].ID)
		for _, u := range g.users[i] {
			if waiting[u]--; waiting[u] == 0 {
				heap.Push(ready, u)
			}
		}
	}
	return out
}

// idHeap is a min-heap of task indexes by ID.
type idHeap struct {
	g  *Graph
	is []int32
}

func (h *idHeap) Len() int           { return len(h.is) }
func (h *idHeap) Less(a, b int) bool { return h.g.Tasks[h.is[a]].ID < h.g.Tasks[h.is[b]].ID }
func (h *idHeap) Swap(a, b int)      { h.is[a], h.is[b] = h.is[b], h.is[a] }
func (h *idHeap) Push(x any)         { h.is = append(h.is, x.(int32)) }
func (h *idHeap) Pop() any {
	x := h.is[len(h.is)-1]
	h.is = h.is[:len(h.is)-1]
	return x
}
