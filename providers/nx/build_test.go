package nx

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"provision/providers/nx/nxfake"
)

const secondItem = `    - name: store-2
      cloud: nxcloud
      url: https://10.0.0.2:7001
      admin: {password: admin}
`

const sharesSection = `nx_shares:
  defaults: {cloud: nxcloud}
  items:
`

func TestBuild_RejectsBadFields(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	for _, tc := range []struct{ name, from, to, want string }{
		{"bad role", "role: viewer", "role: watcher", `users[1].role: "watcher" is not one of none, disabled`},
		{"missing role", ", role: viewer", "", `users[1].role: required`},
		{"bad email", "email: noc@example.com", "email: not-an-email", `users[1].email: "not-an-email" is not an email address`},
		{"email with a display name", "email: noc@example.com", `email: "NOC <noc@example.com>"`, `users[1].email: "NOC <noc@example.com>" is not an email address`},
		{"duplicate user", "email: noc@example.com", "email: Manager@example.com", "users[1].email: Manager@example.com is listed twice (also users[0])"},
		{"custom without permissions", "role: viewer", "role: custom", "users[1].custom_permissions: required with role custom"},
		{"bad mode", "      url: https://10.0.0.1:7001", "      url: https://10.0.0.1:7001\n      mode: maybe", `mode: "maybe" is not one of new, existing, auto`},
		{"missing url", "      url: https://10.0.0.1:7001\n", "", "url: required"},
		{"url not http", "url: https://10.0.0.1:7001", "url: ftp://10.0.0.1", `url: "ftp://10.0.0.1" is not an http(s) URL with a host`},
		{"url with credentials", "url: https://10.0.0.1:7001", "url: https://admin:pw-canary@10.0.0.1:7001", "url: \"https://admin:xxxxx@10.0.0.1:7001\" carries credentials"},
		{"url port out of range", "url: https://10.0.0.1:7001", "url: https://10.0.0.1:70010", "port 70010 is out of range"},
		{"unknown field", "      url: https://10.0.0.1:7001", "      url: https://10.0.0.1:7001\n      adress: x", `adress`},
		{"wrong type", "settings: {statisticsAllowed: false, autoDiscoveryEnabled: true}", "settings: [a, b]", `settings`},
		{"nested setting", "statisticsAllowed: false", "statisticsAllowed: {a: 1}", "settings.statisticsAllowed: want a boolean, string or number, got a mapping"},
		{"empty setting", "statisticsAllowed: false", "statisticsAllowed: ", "settings.statisticsAllowed: want a boolean, string or number, got nothing"},
		{"no such endpoint", "cloud: nxcloud", "cloud: nope", `cloud: endpoint "nope": no such endpoint`},
		{"no endpoint", "      cloud: nxcloud\n", "", `cloud: required`},
		{"missing admin password", `admin: {password: "${env.NX_ADMIN_PASSWORD}"}`, "admin: {username: admin}", "admin.password: required"},
		{"literal local password", "local_password: ${env.NX_ADMIN_PASSWORD}", "local_password: short", "local_password: a secret field holds a value written in the plan"},
		{"conflicting tls", "      url: https://10.0.0.1:7001", "      url: https://10.0.0.1:7001\n      tls: {insecure: true, fingerprint_sha256: " + strings.Repeat("ab", 32) + "}", "tls.insecure: conflicting TLS options"},
		{"bad fingerprint", "      url: https://10.0.0.1:7001", "      url: https://10.0.0.1:7001\n      tls: {fingerprint_sha256: abc}", "tls.fingerprint_sha256: want"},
		{"missing ca file", "      url: https://10.0.0.1:7001", "      url: https://10.0.0.1:7001\n      tls: {ca_file: nope.pem}", "tls.ca_file: "},
		{"blank system name", "      url: https://10.0.0.1:7001", "      url: https://10.0.0.1:7001\n      system_name: \"  \"", "system_name: \"  \": want a non-blank name"},
		{"duplicate system name", "nx_systems:\n  items:\n", "nx_systems:\n  items:\n" + strings.Replace(secondItem, "name: store-2", "name: store-2\n      system_name: store-1", 1), `system_name: "store-1" is also the cloud system name of item store-2`},
		{"duplicate server", "nx_systems:\n  items:\n", "nx_systems:\n  items:\n" + strings.Replace(secondItem, "10.0.0.2", "10.0.0.1", 1), "url: https://10.0.0.1:7001 is also the server of item store-2"},
		{"endpoint without password", `password: "${env.NX_CLOUD_PASSWORD}"`, "password: \"\"", "endpoint nxcloud: auth.password: required"},
		{"endpoint auth type", `auth: {username`, `auth: {type: basic, username`, `auth.type "basic": nx-cloud endpoints use oauth2-password`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(onePlan, tc.from) {
				t.Fatalf("plan does not contain %q", tc.from)
			}
			_, _, err := e.tryBuild(strings.Replace(onePlan, tc.from, tc.to, 1))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
			if !regexp.MustCompile(`plan\.yaml:\d+`).MatchString(err.Error()) {
				t.Errorf("error has no position: %v", err)
			}
			if strings.Contains(err.Error(), cloudPW) || strings.Contains(err.Error(), serverPW) || strings.Contains(err.Error(), "pw-canary") {
				t.Fatal("secret in error")
			}
		})
	}
}

func TestBuild_ReportsEveryProblemAtItsField(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	text := strings.NewReplacer("role: viewer", "role: watcher", "      url: https://10.0.0.1:7001\n", "      mode: maybe\n").Replace(onePlan)
	_, _, err := e.tryBuild(text)
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(text, "\n")
	lineOf := func(s string) int {
		for i, l := range lines {
			if strings.Contains(l, s) {
				return i + 1
			}
		}
		return -1
	}
	for _, want := range []struct {
		field string
		line  int
	}{{"users[1].role", lineOf("role: watcher")}, {"mode:", lineOf("mode: maybe")}, {"url: required", lineOf("- name: store-1")}} {
		re := regexp.MustCompile(`plan\.yaml:` + strconv.Itoa(want.line) + `:\d+: store-1: ` + regexp.QuoteMeta(want.field))
		if !re.MatchString(err.Error()) {
			t.Errorf("no %q at line %d in:\n%v", want.field, want.line, err)
		}
	}
}

// testCertPEM returns a PEM certificate (httptest's).
func testCertPEM(t *testing.T) []byte {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func TestBuild_Shares(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	for _, tc := range []struct{ name, item, want string }{
		{"both system and id", "    - {name: s, system: store-1, cloud_system_id: 76cce8ca-d7c5-4172-93da-7f9749eb1db6, email: a@example.com, role: viewer}\n", "cloud_system_id: give either system or cloud_system_id, not both"},
		{"neither", "    - {name: s, email: a@example.com, role: viewer}\n", "system: required"},
		{"unknown system", "    - {name: s, system: store-9, email: a@example.com, role: viewer}\n", `system: no nx_systems item is named "store-9"`},
		{"bad id", "    - {name: s, cloud_system_id: not-a-uuid, email: a@example.com, role: viewer}\n", `cloud_system_id: "not-a-uuid" is not a cloud system id`},
		{"bad role", "    - {name: s, system: store-1, email: a@example.com, role: boss}\n", `role: "boss" is not one of`},
		{"missing email", "    - {name: s, system: store-1, role: viewer}\n", `email: required`},
		{"same share as a system user", "    - {name: s, system: store-1, email: NOC@example.com, role: viewer}\n", "the same share (system and noc@example.com) is also given by store-1/share/noc@example.com"},
		{"same share twice", "    - {name: s, system: store-1, email: a@example.com, role: viewer}\n    - {name: t, system: store-1, email: a@example.com, role: liveViewer}\n", "is also given by s"},
		{"unknown field", "    - {name: s, system: store-1, email: a@example.com, role: viewer, rol: x}\n", "rol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.tryBuild(onePlan + sharesSection + tc.item)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
	tasks := e.build(onePlan + sharesSection + "    - {name: s, system: store-1, email: a@example.com, role: viewer}\n")
	s := tasks["s"]
	if !contains(s.Deps, "store-1") || len(s.Refs) != 1 || s.Refs[0].Item != "store-1" || s.Refs[0].Key != "cloud_system_id" {
		t.Errorf("deps %v refs %v", s.Deps, s.Refs)
	}
	sub := tasks["store-1/share/noc@example.com"]
	if !contains(sub.Deps, "store-1") || sub.Kind != SystemsSection {
		t.Errorf("sub-task %+v", sub)
	}
}

func TestKinds_Docs(t *testing.T) {
	for _, k := range Kinds() {
		if !strings.HasPrefix(k.Doc(), k.Section()+":") || !strings.Contains(k.Doc(), "outputs:") {
			t.Errorf("%s: doc %q", k.Section(), k.Doc())
		}
	}
	for _, f := range []string{"cloud", "url", "admin", "mode", "system_name", "customization", "organization", "local_password", "settings", "tls", "users"} {
		if !strings.Contains((&SystemKind{}).Doc(), "  "+f+" ") {
			t.Errorf("nx_systems doc lacks %s", f)
		}
	}
}

func TestBuild_CAFileIsReadRelativeToThePlan(t *testing.T) {
	e := newEnv(t, nxfake.Options{})
	// Any PEM certificate will do; httptest's is at hand.
	pemPath := filepath.Join(e.dir, "certs", "ca.pem")
	if err := os.MkdirAll(filepath.Dir(pemPath), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pemPath, testCertPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	tasks := e.build(strings.Replace(onePlan, "      url: https://10.0.0.1:7001", "      url: https://10.0.0.1:7001\n      tls: {ca_file: certs/ca.pem}", 1))
	if len(tasks["store-1"].Spec.(*SystemSpec).TLS.CAPEM) == 0 {
		t.Error("CA bundle not read")
	}
}
