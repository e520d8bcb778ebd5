package main

import (
	"os"
	"path/filepath"
	"testing"

	"provision/plan"
)

// TestRegistry_DeclaresEveryEndpointKindInOrder: the binary's kinds declare the five
// endpoint kinds, in the order plan's messages list them.
func TestRegistry_DeclaresEveryEndpointKindInOrder(t *testing.T) {
	var got []string
	for _, ek := range registry().EndpointKinds() {
		got = append(got, ek.Name)
	}
	want := []string{"http", "nx-cloud", "edge", "openvcloud", "cloudneeti"}
	if len(got) != len(want) {
		t.Fatalf("endpoint kinds %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("endpoint kinds %q, want %q", got, want)
		}
	}
}

// TestTargetOf_NamesTheAccountOfEveryKind: the identity a state file records per
// endpoint (kind, URL, user, client_id, license, account; never a secret) comes from
// the keys each kind declares, in the order and wording state files already hold.
func TestTargetOf_NamesTheAccountOfEveryKind(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.yaml")
	src := `version: 1
name: target
endpoints:
  api: {kind: http, url: "https://api.example.com", auth: {type: oauth2-client-credentials, client_id: app-7, client_secret: "${env.SECRET_A}", token_url: /token}}
  basic: {kind: http, url: "https://b.example.com", auth: {type: basic, username: robot, password: "${env.SECRET_A}"}}
  nx: {kind: nx-cloud, url: "https://nxvms.com", auth: {username: ops@example.com, password: "${env.SECRET_A}"}}
  edge: {kind: edge, url: "https://edge.example.com:8995", auth: {username: admin, password: "${env.SECRET_A}"}}
  ovc: {kind: openvcloud, url: "https://ovc.example.com", auth: {client_id: ovc-app, client_secret: "${env.SECRET_A}"}}
  cn: {kind: cloudneeti, url: "https://api.cloudneeti.com", auth: {api_key: "${env.SECRET_B}", license_id: lic-1, client_id: cn-app, client_secret: "${env.SECRET_A}"}}
`
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	o := registry().LoadOptions()
	o.Getenv = func(k string) (string, bool) { return "secret-value-" + k, true }
	pl, err := plan.Load(p, o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"api":   "http https://api.example.com client_id=app-7",
		"basic": "http https://b.example.com user=robot",
		"nx":    "nx-cloud https://nxvms.com user=ops@example.com",
		"edge":  "edge https://edge.example.com:8995 user=admin",
		"ovc":   "openvcloud https://ovc.example.com client_id=ovc-app",
		"cn":    "cloudneeti https://api.cloudneeti.com client_id=cn-app license=lic-1",
	}
	got := targetOf(pl, "")
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
	if g := targetOf(pl, "sandbox (in-process fakes)")["nx"]; g != "sandbox (in-process fakes) standing in for "+want["nx"] {
		t.Errorf("sandbox target %q", g)
	}
}
