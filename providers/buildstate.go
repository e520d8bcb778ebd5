package providers

import (
	"fmt"
	"sync"

	"provision/plan"
)

// Clients is the state one build shares between its items and their tasks: each
// vendor's typed state (API clients, user sessions, indexes of the plan), made once
// (StateOf), and the uniqueness claims of Build.Claim. The zero value is ready to
// use; it is safe for concurrent use.
type Clients struct {
	mu     sync.Mutex
	states map[string]any
	claims map[claimKey]claimant
}

type claimKey struct{ kind, key string }

type claimant struct {
	owner string
	pos   plan.Pos
}

// StateOf returns the state stored under key in the build, made by mk on first use
// (once per build). A vendor package calls it with one key and one type T (asking for
// one key with two types is a programming error and panics). mk runs with the
// build's lock held: it must not call StateOf or Claim.
func StateOf[T any](b *Build, key string, mk func() *T) *T {
	c := b.Clients
	c.mu.Lock()
	v, ok := c.states[key]
	if !ok {
		if c.states == nil {
			c.states = map[string]any{}
		}
		v = mk()
		c.states[key] = v
	}
	c.mu.Unlock()
	t, ok := v.(*T)
	if !ok {
		panic(fmt.Sprintf("providers: build state %q is a %T, not a %T", key, v, (*T)(nil)))
	}
	return t
}

// Cache holds one value per key (an API client per endpoint or server URL, a
// session per user), made on first use. The zero value is ready to use; it is safe
// for concurrent use.
type Cache[V any] struct {
	mu sync.Mutex
	m  map[string]V
}

// Get returns the value under key, creating it with mk on first use. A failed mk
// stores nothing (the next Get tries again).
func (c *Cache[V]) Get(key string, mk func() (V, error)) (V, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[key]; ok {
		return v, nil
	}
	v, err := mk()
	if err != nil {
		return v, err
	}
	if c.m == nil {
		c.m = map[string]V{}
	}
	c.m[key] = v
	return v, nil
}

// ClaimError is a uniqueness claim refused because another owner made it first.
type ClaimError struct {
	Kind, Key string
	// Owner and Pos name the refused claimant, By and ByPos the first one.
	Owner, By  string
	Pos, ByPos plan.Pos
}

func (e *ClaimError) Error() string {
	return fmt.Sprintf("%s %q is also claimed by %s (%s)", e.Kind, e.Key, e.By, e.ByPos)
}

// Claim records that the key of kind (a cloud system name, a server URL) belongs to
// owner, declared at pos, for this build. The first claimant wins: a claim of the
// same kind and key by another owner is a *ClaimError that names both owners and
// places; the same owner claiming again is no error (a Kind may build an item twice).
func (b *Build) Claim(kind, key, owner string, pos plan.Pos) error {
	c := b.Clients
	c.mu.Lock()
	defer c.mu.Unlock()
	k := claimKey{kind, key}
	if first, ok := c.claims[k]; ok {
		if first.owner == owner {
			return nil
		}
		return &ClaimError{Kind: kind, Key: key, Owner: owner, Pos: pos, By: first.owner, ByPos: first.pos}
	}
	if c.claims == nil {
		c.claims = map[claimKey]claimant{}
	}
	c.claims[k] = claimant{owner, pos}
	return nil
}
