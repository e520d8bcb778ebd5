package providers_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"provision/plan"
	"provision/providers"
)

const widgetsPlan = `version: 1
name: p
endpoints:
  api: {kind: http, url: "http://127.0.0.1:1"}
  other: {kind: edge, url: "http://127.0.0.1:2"}
widgets:
  items:
    - name: w1
      endpoint: api
      users:
        - {email: a@example.com}
    - name: w2
      endpoint: api
`

func parse(t *testing.T) *plan.Plan {
	t.Helper()
	pl, err := plan.Parse("p.yaml", []byte(widgetsPlan), plan.LoadOptions{Sections: []string{"widgets"},
		EndpointKinds: []plan.EndpointKind{{Name: "http"}, {Name: "edge"}}})
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func TestProblems_NamesItemFieldAndPosition(t *testing.T) {
	pl := parse(t)
	p := providers.NewProblems(pl.Items[0])
	p.Add(providers.Path{"users", 0, "email"}, "%q is not allowed", "a@example.com")
	p.Add(providers.Path{"users", 0, "role"}, "required")
	p.Add(providers.Path{"colour"}, "required")
	p.AddErr(providers.Path{"endpoint"}, nil)
	p.Also(errors.New("no position"))
	p.Also(plan.Where(plan.Pos{File: "p.yaml", Line: 4, Col: 3}, errors.New("endpoint api: broken")))
	if p.Len() != 5 {
		t.Fatalf("Len = %d, want 5 (a nil error is no problem)", p.Len())
	}
	got := strings.Split(p.Err().Error(), "\n")
	want := []string{
		`p.yaml:11:19: w1: users[0].email: "a@example.com" is not allowed`,
		// An absent field: the nearest enclosing field that is present.
		`p.yaml:11:11: w1: users[0].role: required`,
		// No enclosing field: the item.
		`p.yaml:8:7: w1: colour: required`,
		`p.yaml:8:7: w1: no position`,
		`p.yaml:4:3: endpoint api: broken`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if providers.NewProblems(pl.Items[0]).Err() != nil {
		t.Fatal("no problems must be a nil error")
	}
}

func TestBuild_Claim_FirstWinsAndBothPlacesAreNamed(t *testing.T) {
	b := &providers.Build{Plan: parse(t), Clients: &providers.Clients{}}
	first := plan.Pos{File: "p.yaml", Line: 8, Col: 7}
	second := plan.Pos{File: "p.yaml", Line: 13, Col: 7}
	if err := b.Claim("server", "https://a", "w1", first); err != nil {
		t.Fatal(err)
	}
	if err := b.Claim("server", "https://a", "w1", second); err != nil {
		t.Fatalf("the same owner claiming again: %v", err)
	}
	if err := b.Claim("name", "https://a", "w2", second); err != nil {
		t.Fatalf("another kind is another key: %v", err)
	}
	err := b.Claim("server", "https://a", "w2", second)
	var ce *providers.ClaimError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *ClaimError", err)
	}
	if ce.By != "w1" || ce.ByPos != first || ce.Owner != "w2" || ce.Pos != second {
		t.Fatalf("claim error %+v", ce)
	}
	if !strings.Contains(err.Error(), "w1 (p.yaml:8:7)") {
		t.Fatalf("err = %v, want the first claimant and its place", err)
	}
}

func TestStateOf_MadeOncePerBuild(t *testing.T) {
	type counter struct{ n int }
	b := &providers.Build{Clients: &providers.Clients{}}
	made := 0
	var wg sync.WaitGroup
	states := make([]*counter, 8)
	var mu sync.Mutex
	for i := range states {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := providers.StateOf(b, "test", func() *counter {
				mu.Lock()
				defer mu.Unlock()
				made++
				return &counter{n: made}
			})
			states[i] = s
		}()
	}
	wg.Wait()
	if made != 1 {
		t.Fatalf("made %d times, want once", made)
	}
	for _, s := range states {
		if s != states[0] {
			t.Fatal("two states for one key")
		}
	}
	other := providers.StateOf(&providers.Build{Clients: &providers.Clients{}}, "test", func() *counter { return &counter{} })
	if other == states[0] {
		t.Fatal("two builds share a state")
	}
}

func TestCache_FailedMakeIsNotKept(t *testing.T) {
	var c providers.Cache[int]
	if _, err := c.Get("k", func() (int, error) { return 0, errors.New("down") }); err == nil {
		t.Fatal("no error")
	}
	v, err := c.Get("k", func() (int, error) { return 7, nil })
	if err != nil || v != 7 {
		t.Fatalf("Get = %d, %v; want the second make's value", v, err)
	}
	if v, _ := c.Get("k", func() (int, error) { return 8, nil }); v != 7 {
		t.Fatalf("Get = %d, want the kept 7", v)
	}
}

func TestFieldClient_FieldProblemAtTheFieldEndpointProblemAtTheEndpoint(t *testing.T) {
	pl := parse(t)
	b := &providers.Build{Plan: pl, Clients: &providers.Clients{}}
	mk := func(*plan.Endpoint) (string, error) { return "client", nil }
	p := providers.NewProblems(pl.Items[1])
	if _, ok := providers.FieldClient(b, p, providers.Path{"endpoint"}, "other", "http", mk); ok {
		t.Fatal("an endpoint of another kind was accepted")
	}
	if _, ok := providers.FieldClient(b, p, providers.Path{"endpoint"}, "", "http", mk); ok {
		t.Fatal("a missing endpoint was accepted")
	}
	broken := func(*plan.Endpoint) (string, error) { return "", errors.New("auth.token: required") }
	if _, ok := providers.FieldClient(b, p, providers.Path{"endpoint"}, "api", "http", broken); ok {
		t.Fatal("a broken endpoint was accepted")
	}
	c, ok := providers.FieldClient(b, p, providers.Path{"endpoint"}, "api", "http", mk)
	if !ok || c != "client" {
		t.Fatalf("FieldClient = %q, %v", c, ok)
	}
	want := []string{
		`p.yaml:13:17: w2: endpoint: endpoint "other" is of kind "edge", want http`,
		`p.yaml:13:17: w2: endpoint: required (the name of an endpoint of kind http)`,
		`p.yaml:4:3: endpoint api: auth.token: required`,
	}
	if got := p.Err().Error(); got != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
