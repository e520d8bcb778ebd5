package runner

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"provision/providers"
)

// shardGraph: n widgets, each with a label that depends on it, and every tenth
// widget also waited for by a report (components of 2 or 3 tasks).
func shardGraph(t *testing.T, n int, shuffle bool) *Graph {
	t.Helper()
	var tasks []*providers.Task
	for i := 0; i < n; i++ {
		w := fmt.Sprintf("widget-%05d", i)
		tasks = append(tasks, &providers.Task{ID: w}, &providers.Task{ID: "label-" + w, Deps: []string{w}})
		if i%10 == 0 {
			tasks = append(tasks, &providers.Task{ID: "report-" + w, Deps: []string{w}})
		}
	}
	if shuffle {
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(tasks), func(i, j int) { tasks[i], tasks[j] = tasks[j], tasks[i] })
	}
	g, err := NewGraph(tasks)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestShardOf_EveryTaskOnceComponentsWholeStable(t *testing.T) {
	const n, shards = 10_000, 4
	g := shardGraph(t, n, false)
	owner := ShardOf(g, shards)
	if len(owner) != g.Len() {
		t.Fatalf("%d owners for %d tasks", len(owner), g.Len())
	}
	per := make([]int, shards)
	byID := map[string]int{}
	for k, t2 := range g.Tasks {
		if owner[k] < 0 || owner[k] >= shards {
			t.Fatalf("%s in shard %d", t2.ID, owner[k])
		}
		per[owner[k]]++
		byID[t2.ID] = owner[k]
	}
	// No edge crosses shards.
	for k, t2 := range g.Tasks {
		for _, d := range t2.Deps {
			if byID[d] != owner[k] {
				t.Fatalf("%s (shard %d) depends on %s (shard %d)", t2.ID, owner[k], d, byID[d])
			}
		}
	}
	// Balanced within 10% of an even split.
	for i, c := range per {
		if even := g.Len() / shards; c < even*9/10 || c > even*11/10 {
			t.Errorf("shard %d holds %d of %d tasks: %v", i, c, g.Len(), per)
		}
	}
	// Stable: the same plan in another order lands every task in the same shard.
	g2 := shardGraph(t, n, true)
	owner2 := ShardOf(g2, shards)
	for k, t2 := range g2.Tasks {
		if owner2[k] != byID[t2.ID] {
			t.Fatalf("%s: shard %d, then %d when the tasks come in another order", t2.ID, byID[t2.ID], owner2[k])
		}
	}
	// The shards of Shard together are the graph, each task once.
	seen := map[string]int{}
	for i := 0; i < shards; i++ {
		sg, err := Shard(g, i, shards)
		if err != nil {
			t.Fatal(err)
		}
		for _, t2 := range sg.Tasks {
			seen[t2.ID]++
		}
	}
	if len(seen) != g.Len() {
		t.Fatalf("shards cover %d of %d tasks", len(seen), g.Len())
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s in %d shards", id, c)
		}
	}
	if _, err := Shard(g, 4, 4); err == nil {
		t.Error("shard 4/4 accepted")
	}
}
