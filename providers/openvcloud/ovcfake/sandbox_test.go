package ovcfake

import (
	"testing"

	"provision/plan"
)

func TestExtension_RewriteMovesTheTokenURLToTheFake(t *testing.T) {
	const ep = "http://127.0.0.1:8700/ovc"
	for _, tc := range []struct {
		name string
		auth plan.Auth
		want string
	}{
		{"absolute token URL", plan.Auth{ClientID: "app", TokenURL: "https://itsyou.online/v1/oauth/access_token"}, ep + "/v1/oauth/access_token"},
		// No token URL means ItsYou.online itself: a rehearsal must not reach it.
		{"no token URL", plan.Auth{ClientID: "app"}, ep + "/v1/oauth/access_token"},
		{"relative token URL", plan.Auth{ClientID: "app", TokenURL: "/v1/oauth/access_token"}, "/v1/oauth/access_token"},
		{"session auth", plan.Auth{Username: "u"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &plan.Endpoint{URL: ep, Auth: tc.auth}
			Extension{}.Rewrite(e)
			if e.Auth.TokenURL != tc.want {
				t.Fatalf("token URL %q, want %q", e.Auth.TokenURL, tc.want)
			}
		})
	}
}
