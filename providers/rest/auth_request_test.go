package rest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"provision/plan"
)

// Two users on one client: each request carries its own user's token source
// (Request.Auth), the endpoint's Config.Auth applies only to requests naming none,
// NoAuth sends none, and an expired answer renews only the token that was used.
func TestClient_Do_AuthIsPerRequest(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := r.Header.Get("Authorization")
		mu.Lock()
		seen[r.URL.Path] = append(seen[r.URL.Path], a)
		mu.Unlock()
		if a == "alice-1" { // alice's first token has "expired"
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(204)
	}))
	defer srv.Close()
	user := func(name string) *TokenAuth {
		n := 0
		return &TokenAuth{Redactor: plan.NewRedactor(),
			Fetch: func(context.Context, *Client) (Token, error) {
				n++
				return Token{Value: name + "-" + string(rune('0'+n))}, nil
			},
			Apply: func(req *http.Request, tok string) { req.Header.Set("Authorization", tok) }}
	}
	alice, bob := user("alice"), user("bob")
	c, err := New(Config{Name: "t", BaseURL: srv.URL, Auth: BearerAuth{Token: plan.NewSecret("endpoint-token")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, r := range []*Request{
		{Method: "GET", Path: "/alice", Auth: alice},
		{Method: "GET", Path: "/bob", Auth: bob},
		{Method: "GET", Path: "/endpoint"},
		{Method: "GET", Path: "/anonymous", NoAuth: true, Auth: bob},
	} {
		if _, err := c.Do(ctx, r); err != nil {
			t.Fatalf("%s: %v", r.Path, err)
		}
	}
	want := map[string][]string{
		"/alice":     {"alice-1", "alice-2"},
		"/bob":       {"bob-1"},
		"/endpoint":  {"Bearer endpoint-token"},
		"/anonymous": {""},
	}
	for path, w := range want {
		if got := seen[path]; len(got) != len(w) || (len(w) > 0 && got[len(got)-1] != w[len(w)-1]) || got[0] != w[0] {
			t.Errorf("%s: server saw credentials %q, want %q", path, got, w)
		}
	}
	if alice.Fetches() != 2 || bob.Fetches() != 1 {
		t.Errorf("fetches alice %d bob %d, want 2 and 1 (only the expired token is renewed)", alice.Fetches(), bob.Fetches())
	}
}
