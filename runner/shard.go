package runner

import (
	"fmt"
	"hash/fnv"
)

// Shard returns the part of g that shard i of n runs. The graph is split along its
// connected components (ignoring edge direction), so no edge crosses shards. A
// component goes to the shard chosen by a hash of its smallest task ID, so an item
// lands in the same shard on every run as long as its component keeps that ID.
func Shard(g *Graph, i, n int) (*Graph, error) {
	if n < 1 || i < 0 || i >= n {
		return nil, fmt.Errorf("shard %d/%d: want 0 <= I < N", i, n)
	}
	if n == 1 {
		return g, nil
	}
	owner := ShardOf(g, n)
	var tasks = g.Tasks[:0:0]
	for k, t := range g.Tasks {
		if owner[k] == i {
			tasks = append(tasks, t)
		}
	}
	return NewGraph(tasks)
}

// ShardOf returns, for every task of g, the shard (of n) it belongs to.
func ShardOf(g *Graph, n int) []int {
	parent := make([]int32, len(g.Tasks))
	for k := range parent {
		parent[k] = int32(k)
	}
	find := func(x int32) int32 {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	for k := range g.Tasks {
		for _, d := range g.deps[k] {
			a, b := find(int32(k)), find(d)
			if a != b {
				parent[a] = b
			}
		}
	}
	minID := map[int32]string{}
	for k, t := range g.Tasks {
		r := find(int32(k))
		if cur, ok := minID[r]; !ok || t.ID < cur {
			minID[r] = t.ID
		}
	}
	out := make([]int, len(g.Tasks))
	for k := range g.Tasks {
		h := fnv.New64a()
		h.Write([]byte(minID[find(int32(k))]))
		out[k] = int(h.Sum64() % uint64(n))
	}
	return out
}
