package plan

import (
	"strings"
	"testing"
)

// testEndpointKinds are the endpoint kinds the plan tests may use. They mirror what
// the provider packages declare (their own tests check the real declarations):
// plan knows no kind by itself.
var testEndpointKinds = []EndpointKind{
	{Name: "http", Auth: []AuthField{{Name: "type"}, {Name: "username", Identity: "user"}, {Name: "password", Secret: true},
		{Name: "token", Secret: true}, {Name: "client_id", Identity: "client_id"}, {Name: "client_secret", Secret: true},
		{Name: "token_url"}, {Name: "scope"}}},
	{Name: "nx-cloud", Auth: []AuthField{{Name: "type"}, {Name: "username", Identity: "user"}, {Name: "password", Secret: true}, {Name: "scope"}}},
	{Name: "edge", Auth: []AuthField{{Name: "type"}, {Name: "username", Identity: "user"}, {Name: "password", Secret: true}}},
	{Name: "openvcloud", Auth: []AuthField{{Name: "type"}, {Name: "username", Identity: "user"}, {Name: "password", Secret: true},
		{Name: "client_id", Identity: "client_id"}, {Name: "client_secret", Secret: true}, {Name: "token_url"}}},
	{Name: "cloudneeti", Auth: []AuthField{{Name: "type"}, {Name: "client_id", Identity: "client_id"}, {Name: "client_secret", Secret: true},
		{Name: "api_key", Secret: true}, {Name: "license_id", Identity: "license"}, {Name: "account_id", Identity: "account"}}},
}

func TestLoad_EndpointAuthHoldsTheKeysItsKindDeclares(t *testing.T) {
	src := `version: 1
name: kinds
endpoints:
  cn:
    kind: cloudneeti
    url: https://api.example.com
    auth: {api_key: "${env.X}", license_id: lic-1, client_id: app-1, client_secret: "${env.CLOUD_PASSWORD}", account_id: acc-9}
  nx:
    kind: nx-cloud
    url: https://nx.example.com
    auth: {username: ops@example.com, password: "${env.CLOUD_PASSWORD}"}
`
	p, err := Parse("kinds.yaml", []byte(src), opts())
	if err != nil {
		t.Fatal(err)
	}
	cn := p.Endpoints["cn"]
	if got := cn.Auth.Extra; got["license_id"] != "lic-1" || got["account_id"] != "acc-9" || len(got) != 2 {
		t.Errorf("Extra = %v", got)
	}
	if got := cn.Auth.ExtraSecrets["api_key"].Reveal(); got != testEnv["X"] || len(cn.Auth.ExtraSecrets) != 1 {
		t.Errorf("ExtraSecrets[api_key] = %q (%d keys)", got, len(cn.Auth.ExtraSecrets))
	}
	if cn.Auth.ClientID != "app-1" || cn.Auth.ClientSecret.Reveal() != testEnv["CLOUD_PASSWORD"] {
		t.Errorf("common fields: %+v", cn.Auth)
	}
	if got, want := strings.Join(cn.Identity, " "), "client_id=app-1 license=lic-1 account=acc-9"; got != want {
		t.Errorf("cn identity %q, want %q", got, want)
	}
	if got, want := strings.Join(p.Endpoints["nx"].Identity, " "), "user=ops@example.com"; got != want {
		t.Errorf("nx identity %q, want %q", got, want)
	}
	if p.Endpoints["nx"].Auth.Extra != nil || p.Endpoints["nx"].Auth.ExtraSecrets != nil {
		t.Errorf("nx extras: %+v", p.Endpoints["nx"].Auth)
	}
}

func TestLoad_EndpointAuthKeyOfAnotherKindIsRefusedWithItsPlace(t *testing.T) {
	src := `version: 1
name: kinds
endpoints:
  nx:
    kind: nx-cloud
    url: https://nx.example.com
    auth: {username: ops@example.com, password: "${env.CLOUD_PASSWORD}", license_id: lic-1}
  odd:
    kind: ftp
    url: https://ftp.example.com
    auth: {api_key: plain-text-key, nope: 1}
  ftp: {kind: ftp, url: "https://ftp.example.com"}
`
	_, err := Parse("kinds.yaml", []byte(src), opts())
	if err == nil {
		t.Fatal("want errors")
	}
	msg := err.Error()
	for _, want := range []string{
		`kinds.yaml:7:74: endpoints.nx.auth: unknown field "license_id" (known: password, scope, type, username)`,
		`kinds.yaml:12:15: endpoints.ftp.kind: "ftp" is not one of http, nx-cloud, edge, openvcloud, cloudneeti`,
		// A kind no one declares: the keys of every kind are still checked.
		`kinds.yaml:11:21: endpoints.odd.auth.api_key:`,
		`kinds.yaml:11:37: endpoints.odd.auth: unknown field "nope"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "plain-text-key") {
		t.Errorf("a value given for a secret key is shown:\n%s", msg)
	}
}

func TestLoad_NoEndpointKindsMeansNoEndpoint(t *testing.T) {
	o := opts()
	o.EndpointKinds = nil
	_, err := Parse("kinds.yaml", []byte("version: 1\nname: k\nendpoints:\n  a: {kind: http, url: https://a.example.com}\n"), o)
	if err == nil || !strings.Contains(err.Error(), `kinds.yaml:4:13: endpoints.a.kind: "http" is not one of (no endpoint kind is known)`) {
		t.Fatalf("got %v", err)
	}
}

func TestEndpointKind_CheckRefusesBadDeclarations(t *testing.T) {
	for _, tc := range []struct {
		name string
		k    EndpointKind
		want string
	}{
		{"bad name", EndpointKind{Name: "a b"}, `endpoint kind "a b": want 1-64 letters`},
		{"bad key", EndpointKind{Name: "k", Auth: []AuthField{{Name: "Key"}}}, `auth key "Key": want lower-case`},
		{"duplicate key", EndpointKind{Name: "k", Auth: []AuthField{{Name: "a"}, {Name: "a"}}}, `auth key "a" declared twice`},
		{"common key with another type", EndpointKind{Name: "k", Auth: []AuthField{{Name: "password"}}}, `auth key "password" is a common key: its Secret must be true`},
		{"secret in the identity", EndpointKind{Name: "k", Auth: []AuthField{{Name: "key", Secret: true, Identity: "key"}}}, `"key" is a secret and cannot be part of the identity`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.k.Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check() = %v, want %q", err, tc.want)
			}
			o := opts()
			o.EndpointKinds = []EndpointKind{tc.k}
			if _, err := Parse("k.yaml", []byte("version: 1\nname: k\n"), o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want %q", err, tc.want)
			}
		})
	}
	for _, k := range testEndpointKinds {
		if err := k.Check(); err != nil {
			t.Errorf("%s: %v", k.Name, err)
		}
	}
	o := opts()
	o.EndpointKinds = append(o.EndpointKinds, testEndpointKinds[0])
	if _, err := Parse("k.yaml", []byte("version: 1\nname: k\n"), o); err == nil || !strings.Contains(err.Error(), "endpoint kind http declared twice") {
		t.Fatalf("Parse with a kind twice = %v", err)
	}
}
