package plan

import (
	"reflect"
	"strconv"
	"testing"
)

func TestFindCycle(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ids   []string
		edges map[string][]string
		want  []string
	}{
		{"none", []string{"a", "b", "c"}, map[string][]string{"a": {"b"}, "b": {"c"}}, nil},
		{"self", []string{"a"}, map[string][]string{"a": {"a"}}, []string{"a", "a"}},
		{"two", []string{"a", "b"}, map[string][]string{"a": {"b"}, "b": {"a"}}, []string{"a", "b", "a"}},
		{"entered midway", []string{"x", "a", "b", "c"}, map[string][]string{"x": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a"}}, []string{"a", "b", "c", "a"}},
		{"diamond is no cycle", []string{"a", "b", "c", "d"}, map[string][]string{"a": {"b", "c"}, "b": {"d"}, "c": {"d"}}, nil},
		{"first in order", []string{"a", "b", "p", "q"}, map[string][]string{"p": {"q"}, "q": {"p"}, "a": {"b"}, "b": {"a"}}, []string{"a", "b", "a"}},
		{"via unlisted id", []string{"a"}, map[string][]string{"a": {"z"}, "z": {"a"}}, []string{"a", "z", "a"}},
		{"empty", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FindCycle(tc.ids, func(id string) []string { return tc.edges[id] })
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FindCycle = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFindCycle_LongChainIsIterative(t *testing.T) {
	const n = 500_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	next := func(id string) []string {
		i, _ := strconv.Atoi(id)
		if i+1 < n {
			return []string{ids[i+1]}
		}
		return nil
	}
	if c := FindCycle(ids, next); c != nil {
		t.Fatalf("cycle in a chain: %d ids", len(c))
	}
	closed := func(id string) []string {
		i, _ := strconv.Atoi(id)
		return []string{ids[(i+1)%n]}
	}
	c := FindCycle(ids, closed)
	if len(c) != n+1 || c[0] != "0" || c[n] != "0" || c[n-1] != strconv.Itoa(n-1) {
		t.Fatalf("cycle has %d ids", len(c))
	}
}
